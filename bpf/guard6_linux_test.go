//go:build linux

package bpf

import (
	"encoding/binary"
	"net"
	"testing"
)

// Builders for the rogue-router guard's cases: ICMPv6 messages by type,
// IPv6 extension headers, fragments.

const (
	protoDstOpts  = 60
	protoFragment = 44
	protoRouting  = 43

	icmp6EchoRequest = 128
	icmp6EchoReply   = 129
	icmp6MLDReport   = 143
	icmp6RS          = 133
	icmp6RA          = 134
	icmp6NS          = 135
	icmp6NA          = 136
	icmp6Redirect    = 137
)

var (
	allNodes   = net.ParseIP("ff02::1")
	allRouters = net.ParseIP("ff02::2")
	macAllNode = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	llGW       = net.ParseIP("fe80::1")
)

// icmp6 is an ICMPv6 message: type, code, checksum (left zero: the programs
// do not check it), 4 bytes of message body, then payload bytes.
func icmp6(typ, code byte, payload int) []byte {
	b := make([]byte, 8+payload)
	b[0], b[1] = typ, code
	return b
}

// nd is a neighbour solicitation or advertisement (typ) for target,
// followed by the options opts.
func nd(typ byte, target net.IP, opts ...[]byte) []byte {
	b := icmp6(typ, 0, 16)
	if typ == icmp6NA {
		b[4] = 0x20 // override
	}
	copy(b[8:], target.To16())
	return cat(b, cat(opts...))
}

// llOpt is a source (1) or target (2) link-layer address option.
func llOpt(typ byte, mac net.HardwareAddr) []byte { return cat([]byte{typ, 1}, mac) }

// nonceOpt is an 8-byte nonce option (RFC 3971), one the guard skips.
func nonceOpt() []byte { return []byte{14, 1, 1, 2, 3, 4, 5, 6} }

// ext is an 8-byte hop-by-hop, routing or destination-options header (a
// PadN option fills it).
func ext(next byte) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }

// frag is an 8-byte fragment header; offset in 8-byte units.
func frag(next byte, offset uint16, more bool) []byte {
	b := []byte{next, 0, 0, 0, 0, 0, 0x12, 0x34}
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	return b
}

// ip6Pkt builds an IPv6 frame whose header names first and whose payload is
// the concatenation of parts (extension headers, then the upper layer).
func ip6Pkt(dmac, smac net.HardwareAddr, src, dst net.IP, first byte, parts ...[]byte) []byte {
	payload := cat(parts...)
	return cat(ethHdr(dmac, smac, ethIPv6), ip6Hdr(src, dst, first, len(payload)), payload)
}

// snmIP is the solicited-node multicast address of ip, snm its MAC.
func snmIP(ip net.IP) net.IP {
	a := net.ParseIP("ff02::1:ff00:0")
	copy(a[13:], ip.To16()[13:])
	return a
}

func snm(ip net.IP) net.HardwareAddr {
	a := snmIP(ip)
	return net.HardwareAddr{0x33, 0x33, a[12], a[13], a[14], a[15]}
}

type guard6Case struct {
	name  string
	frame []byte
	drop  int // -1: passes
	l4    int // when it passes: the IPv6 bucket it is counted in
}

func guard6Cases() []guard6Case {
	ra := icmp6(icmp6RA, 0, 8)
	manyExt := [][]byte{}
	for range 9 {
		manyExt = append(manyExt, ext(protoDstOpts))
	}
	manyExt[8] = ext(protoICMPv6)
	manyExt = append(manyExt, ra)
	return []guard6Case{
		{"router advertisement", ip6Pkt(macAllNode, macA, llA, allNodes, protoICMPv6, ra), DropRA, 0},
		{"router advertisement from ::", ip6Pkt(macAllNode, macA, net.IPv6unspecified, allNodes, protoICMPv6, ra), DropRA, 0},
		{"router advertisement from its global address", ip6Pkt(macAllNode, macA, ip6A, allNodes, protoICMPv6, ra), DropRA, 0},
		{"router advertisement with code 1", ip6Pkt(macAllNode, macA, llA, allNodes, protoICMPv6, icmp6(icmp6RA, 1, 8)), DropRA, 0},
		{"router advertisement in a vlan", cat(ethHdr(macAllNode, macA, ethVLAN), vlanTag(7, ethIPv6), ip6Hdr(llA, allNodes, protoICMPv6, len(ra)), ra), DropRA, 0},
		{"router advertisement after hop-by-hop", ip6Pkt(macAllNode, macA, llA, allNodes, protoHopOpt, ext(protoICMPv6), ra), DropRA, 0},
		{"router advertisement after hop-by-hop, routing and destination options", ip6Pkt(macAllNode, macA, llA, allNodes, protoHopOpt, ext(protoRouting), ext(protoDstOpts), ext(protoICMPv6), ra), DropRA, 0},
		{"router advertisement in a first fragment", ip6Pkt(macAllNode, macA, llA, allNodes, protoFragment, frag(protoICMPv6, 0, true), ra), DropRA, 0},
		{"router advertisement with a spoofed source", ip6Pkt(macAllNode, macA, llX, allNodes, protoICMPv6, ra), DropSrcIP6, 0},
		{"redirect", ip6Pkt(macGW, macA, llA, llGW, protoICMPv6, icmp6(icmp6Redirect, 0, 32)), DropRedirect, 0},
		{"redirect after destination options", ip6Pkt(macGW, macA, llA, llGW, protoDstOpts, ext(protoICMPv6), icmp6(icmp6Redirect, 0, 32)), DropRedirect, 0},
		{"runt icmpv6: no header", ip6Pkt(macGW, macA, llA, llGW, protoICMPv6), DropIP6Unparsed, 0},
		{"runt icmpv6: one byte", ip6Pkt(macGW, macA, llA, llGW, protoICMPv6, []byte{icmp6RA}), DropIP6Unparsed, 0},
		{"truncated extension header", ip6Pkt(macAllNode, macA, llA, allNodes, protoHopOpt, []byte{protoICMPv6}), DropIP6Unparsed, 0},
		{"extension header longer than the packet", ip6Pkt(macAllNode, macA, llA, allNodes, protoHopOpt, []byte{protoICMPv6, 4, 1, 2, 0, 0, 0, 0}, ra), DropIP6Unparsed, 0},
		{"nine extension headers", ip6Pkt(macAllNode, macA, llA, allNodes, protoDstOpts, manyExt...), DropIP6Unparsed, 0},

		{"router solicitation", ip6Pkt(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 2}, macA, llA, allRouters, protoICMPv6, icmp6(icmp6RS, 0, 0)), -1, L4ICMP},
		{"neighbour solicitation", ip6Pkt(snm(ip6X), macA, ip6A, snmIP(ip6X), protoICMPv6, nd(icmp6NS, ip6X, llOpt(1, macA))), -1, L4ICMP},
		{"neighbour solicitation without options", ip6Pkt(snm(llGW), macA, llA, snmIP(llGW), protoICMPv6, nd(icmp6NS, llGW)), -1, L4ICMP},
		{"neighbour solicitation for DAD from ::", ip6Pkt(snm(ip6A), macA, net.IPv6unspecified, snmIP(ip6A), protoICMPv6, nd(icmp6NS, ip6A)), -1, L4ICMP},
		{"neighbour solicitation for DAD of its link-local", ip6Pkt(snm(llA), macA, net.IPv6unspecified, snmIP(llA), protoICMPv6, nd(icmp6NS, llA, nonceOpt())), -1, L4ICMP},
		{"neighbour advertisement", ip6Pkt(macGW, macA, ip6A, llGW, protoICMPv6, nd(icmp6NA, ip6A, llOpt(2, macA))), -1, L4ICMP},
		{"unsolicited neighbour advertisement of its link-local", ip6Pkt(macAllNode, macA, llA, allNodes, protoICMPv6, nd(icmp6NA, llA, llOpt(2, macA))), -1, L4ICMP},
		{"neighbour advertisement without options", ip6Pkt(macGW, macA, llA, llGW, protoICMPv6, nd(icmp6NA, llA)), -1, L4ICMP},
		{"neighbour advertisement with a nonce before its option", ip6Pkt(macGW, macA, llA, llGW, protoICMPv6, nd(icmp6NA, ip6A, nonceOpt(), llOpt(2, macA))), -1, L4ICMP},

		{"neighbour advertisement for another's address", ip6Pkt(macAllNode, macA, ip6A, allNodes, protoICMPv6, nd(icmp6NA, ip6X, llOpt(2, macA))), DropNDSpoof, 0},
		{"neighbour advertisement for the gateway's link-local", ip6Pkt(macAllNode, macA, llA, allNodes, protoICMPv6, nd(icmp6NA, llGW, llOpt(2, macA))), DropNDSpoof, 0},
		{"neighbour advertisement with another MAC", ip6Pkt(macAllNode, macA, ip6A, allNodes, protoICMPv6, nd(icmp6NA, ip6A, llOpt(2, macX))), DropNDSpoof, 0},
		{"neighbour advertisement with another MAC after a nonce", ip6Pkt(macAllNode, macA, ip6A, allNodes, protoICMPv6, nd(icmp6NA, ip6A, nonceOpt(), llOpt(2, macX))), DropNDSpoof, 0},
		{"neighbour advertisement with another MAC in a source option", ip6Pkt(macAllNode, macA, ip6A, allNodes, protoICMPv6, nd(icmp6NA, ip6A, llOpt(1, macX))), DropNDSpoof, 0},
		{"neighbour advertisement spoofed in a vlan", cat(ethHdr(macAllNode, macA, ethVLAN), vlanTag(7, ethIPv6), ip6Hdr(ip6A, allNodes, protoICMPv6, 32), nd(icmp6NA, ip6X, llOpt(2, macA))), DropNDSpoof, 0},
		{"neighbour advertisement spoofed after hop-by-hop", ip6Pkt(macAllNode, macA, ip6A, allNodes, protoHopOpt, ext(protoICMPv6), nd(icmp6NA, ip6X, llOpt(2, macA))), DropNDSpoof, 0},
		{"neighbour advertisement with a zero-length option", ip6Pkt(macGW, macA, ip6A, llGW, protoICMPv6, nd(icmp6NA, ip6A, []byte{2, 0, 0, 0, 0, 0, 0, 0})), DropNDSpoof, 0},
		{"neighbour advertisement with an option past its end", ip6Pkt(macGW, macA, ip6A, llGW, protoICMPv6, nd(icmp6NA, ip6A, []byte{14, 2, 0, 0, 0, 0, 0, 0})), DropNDSpoof, 0},
		{"neighbour advertisement with five options", ip6Pkt(macGW, macA, ip6A, llGW, protoICMPv6, nd(icmp6NA, ip6A, nonceOpt(), nonceOpt(), nonceOpt(), nonceOpt(), llOpt(2, macX))), DropNDSpoof, 0},
		{"truncated neighbour advertisement", ip6Pkt(macGW, macA, ip6A, llGW, protoICMPv6, nd(icmp6NA, ip6A)[:20]), DropNDSpoof, 0},
		{"neighbour solicitation with another MAC", ip6Pkt(snm(llGW), macA, llA, snmIP(llGW), protoICMPv6, nd(icmp6NS, llGW, llOpt(1, macX))), DropNDSpoof, 0},
		{"neighbour solicitation with another MAC in a target option", ip6Pkt(snm(llGW), macA, llA, snmIP(llGW), protoICMPv6, nd(icmp6NS, llGW, llOpt(2, macX))), DropNDSpoof, 0},
		{"DAD from :: for another's address", ip6Pkt(snm(ip6X), macA, net.IPv6unspecified, snmIP(ip6X), protoICMPv6, nd(icmp6NS, ip6X)), DropNDSpoof, 0},
		{"neighbour advertisement from ::", ip6Pkt(macAllNode, macA, net.IPv6unspecified, allNodes, protoICMPv6, nd(icmp6NA, ip6A, llOpt(2, macA))), DropSrcIP6, 0},
		{"echo request from ::", ip6Pkt(macGW, macA, net.IPv6unspecified, ip6X, protoICMPv6, icmp6(icmp6EchoRequest, 0, 56)), DropSrcIP6, 0},
		{"router solicitation from ::", ip6Pkt(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 2}, macA, net.IPv6unspecified, allRouters, protoICMPv6, icmp6(icmp6RS, 0, 0)), DropSrcIP6, 0},
		{"udp from ::", ip6Pkt(macGW, macA, net.IPv6unspecified, ip6X, protoUDP, l4(protoUDP, 4)), DropSrcIP6, 0},
		{"later fragment from ::", ip6Pkt(macGW, macA, net.IPv6unspecified, ip6X, protoFragment, frag(protoICMPv6, 1, false), make([]byte, 16)), DropSrcIP6, 0},
		{"MLDv2 report from ::", ip6Pkt(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 0x16}, macA, net.IPv6unspecified, net.ParseIP("ff02::16"), protoHopOpt, ext(protoICMPv6), icmp6(icmp6MLDReport, 0, 20)), -1, L4ICMP},
		{"echo request", ip6Pkt(macGW, macA, ip6A, ip6X, protoICMPv6, icmp6(icmp6EchoRequest, 0, 56)), -1, L4ICMP},
		{"echo reply", ip6Pkt(macGW, macA, ip6A, ip6X, protoICMPv6, icmp6(icmp6EchoReply, 0, 56)), -1, L4ICMP},
		{"MLDv2 report after hop-by-hop", ip6Pkt(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 0x16}, macA, llA, net.ParseIP("ff02::16"), protoHopOpt, ext(protoICMPv6), icmp6(icmp6MLDReport, 0, 20)), -1, L4ICMP},
		{"tcp after destination options", ip6Pkt(macGW, macA, ip6A, ip6X, protoDstOpts, ext(protoTCP), l4(protoTCP, 0)), -1, L4TCP},
		// A later fragment has no ICMPv6 header to check; hosts drop
		// fragmented neighbour discovery (RFC 6980).
		{"later fragment of icmpv6", ip6Pkt(macGW, macA, ip6A, ip6X, protoFragment, frag(protoICMPv6, 1, false), make([]byte, 16)), -1, L4ICMP},
	}
}

// TestRouterGuard: a guarded endpoint's router advertisements and
// redirects are dropped and counted by reason, in observe and fastpath;
// the rest of neighbour discovery and ICMPv6 passes and is counted.
func TestRouterGuard(t *testing.T) {
	o := loadTest(t)
	const slot = 11
	for _, mode := range []uint8{ModeObserve, ModeFastpath} {
		putEP(t, o, loIfindex, slot, macA, ip4A, ip6A, mode, FlagGuard)
		for _, tc := range guard6Cases() {
			t.Run(modeName(mode)+"/"+tc.name, func(t *testing.T) {
				checkGuarded(t, o, slot, tc.frame, 3, tc.drop, L3IPv6, tc.l4)
			})
		}
	}
}

// TestRouterGuardOffWithoutGuardFlag: an endpoint without FlagGuard (one
// nswire observes but did not wire) has no guard at all: a router
// advertisement from it passes and is counted.
func TestRouterGuardOffWithoutGuardFlag(t *testing.T) {
	o := loadTest(t)
	putEP(t, o, loIfindex, 12, macA, ip4A, ip6A, ModeObserve, 0)
	frame := ip6Pkt(macAllNode, macA, llA, allNodes, protoICMPv6, icmp6(icmp6RA, 0, 8))
	if ret, _ := run(t, o.FromContainer, frame, 1); ret != ActNext {
		t.Errorf("verdict %d, want next", int32(ret))
	}
	wantOnly(t, readSlot(t, o, 12), DirTX, L3IPv6, L4ICMP, 1, uint64(len(frame)))
}

// TestRouterAdvertToContainerPasses: the guard is on the container's
// sending side only; a router advertisement towards it (from the bridge's
// real router) is counted and passes.
func TestRouterAdvertToContainerPasses(t *testing.T) {
	o := loadTest(t)
	putEP(t, o, loIfindex, 13, macA, ip4A, ip6A, ModeFastpath, FlagGuard)
	frame := ip6Pkt(macAllNode, macGW, llGW, allNodes, protoICMPv6, icmp6(icmp6RA, 0, 8))
	if ret, _ := run(t, o.ToContainer, frame, 1); ret != ActNext {
		t.Errorf("verdict %d, want next", int32(ret))
	}
	wantOnly(t, readSlot(t, o, 13), DirRX, L3IPv6, L4ICMP, 1, uint64(len(frame)))
}

func modeName(m uint8) string {
	switch m {
	case ModeObserve:
		return "observe"
	case ModeFastpath:
		return "fastpath"
	}
	return "off"
}
