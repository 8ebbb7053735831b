//go:build linux

package bpf

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nswire/nswire/test/testenv"
)

// testPinDir returns a fresh pin directory on bpffs, removed at cleanup.
func testPinDir(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("/sys/fs/bpf", "nswire-test-"+hex.EncodeToString(b[:]))
	if err := EnsureBPFFS(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func loadTest(t testing.TB) *Objects {
	t.Helper()
	testenv.RequireRoot(t)
	o, err := Load(testPinDir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// Frame builders. Lengths are exact so byte counters can be asserted.

var (
	macA  = net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0x00, 0x02}
	macB  = net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0x00, 0x03}
	macGW = net.HardwareAddr{0x02, 0x42, 0x9e, 0x00, 0x00, 0x01}
	macX  = net.HardwareAddr{0x02, 0x66, 0x66, 0x66, 0x66, 0x66}
	bcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	ip4A  = net.ParseIP("10.99.0.2").To4()
	ip4B  = net.ParseIP("10.99.0.3").To4()
	ip4GW = net.ParseIP("10.99.0.1").To4()
	ip4X  = net.ParseIP("10.99.0.66").To4()
	ip6A  = net.ParseIP("fd99::2")
	ip6B  = net.ParseIP("fd99::3")
	ip6X  = net.ParseIP("fd99::66")
	// EUI-64 link-local of macA: 02 → 00 (U/L bit flipped), ff:fe inserted.
	llA = net.ParseIP("fe80::42:acff:fe11:2")
	llX = net.ParseIP("fe80::42:acff:fe11:99")
)

const (
	ethIPv4 = 0x0800
	ethIPv6 = 0x86dd
	ethARP  = 0x0806
	ethVLAN = 0x8100
	ethQinQ = 0x88a8
	ethLLDP = 0x88cc

	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoGRE    = 47
	protoHopOpt = 0
)

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func ethHdr(dst, src net.HardwareAddr, typ uint16) []byte {
	b := cat(dst, src)
	return binary.BigEndian.AppendUint16(b, typ)
}

func vlanTag(vid, inner uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, vid)
	return binary.BigEndian.AppendUint16(b, inner)
}

func ip4Hdr(src, dst net.IP, proto byte, payloadLen int) []byte {
	b := make([]byte, 20)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+payloadLen))
	b[8] = 64
	b[9] = proto
	copy(b[12:], src.To4())
	copy(b[16:], dst.To4())
	return b
}

func ip6Hdr(src, dst net.IP, next byte, payloadLen int) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(payloadLen))
	b[6] = next
	b[7] = 64
	copy(b[8:], src.To16())
	copy(b[24:], dst.To16())
	return b
}

func l4(proto byte, payload int) []byte {
	switch proto {
	case protoTCP:
		b := make([]byte, 20+payload)
		b[12] = 5 << 4
		return b
	default: // UDP, ICMP, ICMPv6: 8-byte header
		return make([]byte, 8+payload)
	}
}

func ip4Frame(dmac, smac net.HardwareAddr, src, dst net.IP, proto byte, payload int) []byte {
	seg := l4(proto, payload)
	return cat(ethHdr(dmac, smac, ethIPv4), ip4Hdr(src, dst, proto, len(seg)), seg)
}

func ip6Frame(dmac, smac net.HardwareAddr, src, dst net.IP, proto byte, payload int) []byte {
	seg := l4(proto, payload)
	return cat(ethHdr(dmac, smac, ethIPv6), ip6Hdr(src, dst, proto, len(seg)), seg)
}

func arpFrame(dmac, smac net.HardwareAddr, op uint16, sha net.HardwareAddr, spa net.IP, tha net.HardwareAddr, tpa net.IP) []byte {
	b := []byte{0, 1, 0x08, 0, 6, 4}
	b = binary.BigEndian.AppendUint16(b, op)
	b = cat(b, sha, spa.To4(), tha, tpa.To4())
	return cat(ethHdr(dmac, smac, ethARP), b, make([]byte, 18)) // padded to 60
}

// run runs prog once per repeat on frame with skb->ifindex = 1 (test runs use
// the loopback device), returning the verdict and the output frame.
func run(t testing.TB, prog *ebpf.Program, frame []byte, repeat uint32) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame, DataOut: out, Repeat: repeat})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return ret, out[:len(frame)]
}

const loIfindex = 1

// numPins is what Load pins in its directory: the maps and progs-<hash>.
var numPins = len(mapSpecs) + 1

func putEP(t testing.TB, o *Objects, ifindex int, slot uint32, mac net.HardwareAddr, ip4, ip6 net.IP, mode, flags uint8) {
	t.Helper()
	ep, err := NewEndpoint(ifindex, slot, mac, ip4, ip6, mode, flags)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.PutEndpoint(ep); err != nil {
		t.Fatal(err)
	}
	if err := o.ZeroCounters(slot); err != nil {
		t.Fatal(err)
	}
}

func readSlot(t testing.TB, o *Objects, slot uint32) Counters {
	t.Helper()
	all, err := o.ReadAllCounters()
	if err != nil {
		t.Fatal(err)
	}
	c, ok := all[slot]
	if !ok {
		t.Fatalf("slot %d not in ReadAllCounters", slot)
	}
	return c
}

// wantOnly checks that c has exactly packets/bytes in bucket [dir][l3][l4]
// and nothing anywhere else.
func wantOnly(t testing.TB, c Counters, dir, l3, l4 int, packets, bytes uint64) {
	t.Helper()
	var want Counters
	want.V[dir][l3][l4] = Counter{Packets: packets, Bytes: bytes}
	if c != want {
		t.Errorf("counters:\n got  %+v\n want %+v", c, want)
	}
}

type classCase struct {
	name   string
	frame  []byte
	l3, l4 int
}

func classCases() []classCase {
	return []classCase{
		{"ipv4 tcp", ip4Frame(macB, macA, ip4A, ip4B, protoTCP, 10), L3IPv4, L4TCP},
		{"ipv4 udp", ip4Frame(macB, macA, ip4A, ip4B, protoUDP, 200), L3IPv4, L4UDP},
		{"ipv4 icmp", ip4Frame(macB, macA, ip4A, ip4B, protoICMP, 56), L3IPv4, L4ICMP},
		{"ipv4 gre", ip4Frame(macB, macA, ip4A, ip4B, protoGRE, 4), L3IPv4, L4Other},
		{"ipv6 tcp", ip6Frame(macB, macA, ip6A, ip6B, protoTCP, 0), L3IPv6, L4TCP},
		{"ipv6 udp", ip6Frame(macB, macA, ip6A, ip6B, protoUDP, 100), L3IPv6, L4UDP},
		{"ipv6 icmpv6", ip6Frame(macB, macA, ip6A, ip6B, protoICMPv6, 56), L3IPv6, L4ICMP},
		{"ipv6 icmp (v4 number) is other", ip6Frame(macB, macA, ip6A, ip6B, protoICMP, 8), L3IPv6, L4Other},
		{"ipv6 hop-by-hop ext header is other", ip6Frame(macB, macA, ip6A, ip6B, protoHopOpt, 8), L3IPv6, L4Other},
		{"arp", arpFrame(bcast, macA, 1, macA, ip4A, make(net.HardwareAddr, 6), ip4GW), L3Other, L4Other},
		{"lldp", cat(ethHdr(macB, macA, ethLLDP), make([]byte, 46)), L3Other, L4Other},
		{"vlan ipv4 udp", cat(ethHdr(macB, macA, ethVLAN), vlanTag(10, ethIPv4), ip4Hdr(ip4A, ip4B, protoUDP, 108), l4(protoUDP, 100)), L3IPv4, L4UDP},
		{"qinq ipv6 tcp", cat(ethHdr(macB, macA, ethQinQ), vlanTag(10, ethVLAN), vlanTag(20, ethIPv6), ip6Hdr(ip6A, ip6B, protoTCP, 20), l4(protoTCP, 0)), L3IPv6, L4TCP},
		{"truncated vlan tag", cat(ethHdr(macB, macA, ethVLAN), []byte{0, 10}), L3Other, L4Other},
		// The test run refuses untagged IPv4/IPv6 frames with a truncated
		// IP header (it parses skb->protocol itself), so these hide the
		// truncated header behind a VLAN tag; the program's bound check is
		// the same.
		{"header-only ipv4 (truncated)", cat(ethHdr(macB, macA, ethVLAN), vlanTag(1, ethIPv4)), L3IPv4, L4Other},
		{"truncated ipv4 header", cat(ethHdr(macB, macA, ethVLAN), vlanTag(1, ethIPv4), ip4Hdr(ip4A, ip4B, protoTCP, 0)[:19]), L3IPv4, L4Other},
		{"truncated ipv6 header", cat(ethHdr(macB, macA, ethVLAN), vlanTag(1, ethIPv6), ip6Hdr(ip6A, ip6B, protoUDP, 0)[:39]), L3IPv6, L4Other},
	}
}

func TestClassify(t *testing.T) {
	o := loadTest(t)
	const slot = 7
	// Observe mode, no guard: from_container only counts.
	putEP(t, o, loIfindex, slot, macA, ip4A, ip6A, ModeObserve, 0)

	for _, prog := range []struct {
		name string
		p    *ebpf.Program
		dir  int
	}{{"from_container", o.FromContainer, DirTX}, {"to_container", o.ToContainer, DirRX}} {
		for _, tc := range classCases() {
			t.Run(prog.name+"/"+tc.name, func(t *testing.T) {
				if err := o.ZeroCounters(slot); err != nil {
					t.Fatal(err)
				}
				const n = 3
				ret, out := run(t, prog.p, tc.frame, n)
				if ret != ActNext {
					t.Errorf("verdict %d, want %d (next)", int32(ret), -1)
				}
				if string(out) != string(tc.frame) {
					t.Errorf("frame modified")
				}
				wantOnly(t, readSlot(t, o, slot), prog.dir, tc.l3, tc.l4, n, n*uint64(len(tc.frame)))
			})
		}
	}
}

// A frame shorter than an Ethernet header cannot be fed through
// BPF_PROG_TEST_RUN (the kernel wants ≥ 14 bytes), nor reach tc on an
// Ethernet device (AF_PACKET pads it). The programs bound-check anyway; this
// records that the kernel rejects the input and nothing is counted.
func TestRunt(t *testing.T) {
	o := loadTest(t)
	putEP(t, o, loIfindex, 1, macA, ip4A, nil, ModeObserve, FlagGuard)
	_, err := o.FromContainer.Run(&ebpf.RunOptions{Data: make([]byte, 10)})
	if err == nil {
		t.Log("kernel accepted a 10-byte frame")
		c := readSlot(t, o, 1)
		wantOnly(t, c, DirTX, L3Other, L4Other, 1, 10)
	} else {
		t.Logf("10-byte frame rejected by test run as expected: %v", err)
		wantOnly(t, readSlot(t, o, 1), DirTX, 0, 0, 0, 0)
	}
}

func TestNoEndpointPasses(t *testing.T) {
	o := loadTest(t)
	// An endpoint that is not ifindex 1 must not see lo's frames.
	putEP(t, o, 4242, 3, macA, ip4A, nil, ModeFastpath, FlagGuard)
	frame := ip4Frame(macB, macX, ip4X, ip4B, protoUDP, 10)
	for _, p := range []*ebpf.Program{o.FromContainer, o.ToContainer} {
		if ret, _ := run(t, p, frame, 1); ret != ActNext {
			t.Errorf("verdict %d, want next", int32(ret))
		}
	}
	wantOnly(t, readSlot(t, o, 3), 0, 0, 0, 0, 0)
}

func TestGuard(t *testing.T) {
	o := loadTest(t)
	const slot = 9
	noMAC := make(net.HardwareAddr, 6)
	cases := []struct {
		name   string
		frame  []byte
		drop   int // -1: passes
		l3, l4 int
	}{
		{"legit ipv4", ip4Frame(macGW, macA, ip4A, ip4X, protoUDP, 10), -1, L3IPv4, L4UDP},
		{"dhcp 0.0.0.0", ip4Frame(bcast, macA, net.IPv4zero, net.IPv4bcast, protoUDP, 300), -1, L3IPv4, L4UDP},
		{"wrong src mac", ip4Frame(macGW, macX, ip4A, ip4X, protoUDP, 10), DropSrcMAC, 0, 0},
		{"wrong src mac on ipv6", ip6Frame(macGW, macX, ip6A, ip6X, protoUDP, 10), DropSrcMAC, 0, 0},
		{"wrong src ipv4", ip4Frame(macGW, macA, ip4X, ip4B, protoTCP, 0), DropSrcIP4, 0, 0},
		{"wrong src ipv4 in vlan", cat(ethHdr(macGW, macA, ethVLAN), vlanTag(5, ethIPv4), ip4Hdr(ip4X, ip4B, protoUDP, 8), l4(protoUDP, 0)), DropSrcIP4, 0, 0},
		{"truncated ipv4 cannot be verified", cat(ethHdr(macGW, macA, ethVLAN), vlanTag(1, ethIPv4), make([]byte, 10)), DropSrcIP4, 0, 0},
		{"truncated ipv6 cannot be verified", cat(ethHdr(macGW, macA, ethVLAN), vlanTag(1, ethIPv6), make([]byte, 30)), DropSrcIP6, 0, 0},
		{"legit ipv6", ip6Frame(macGW, macA, ip6A, ip6X, protoTCP, 0), -1, L3IPv6, L4TCP},
		{"wrong ipv6", ip6Frame(macGW, macA, ip6X, ip6B, protoTCP, 0), DropSrcIP6, 0, 0},
		{"eui-64 link-local", ip6Frame(macGW, macA, llA, net.ParseIP("fe80::1"), protoICMPv6, 24), -1, L3IPv6, L4ICMP},
		{"other link-local", ip6Frame(macGW, macA, llX, net.ParseIP("fe80::1"), protoICMPv6, 24), DropSrcIP6, 0, 0},
		{"unspecified :: for DAD", ip6Pkt(snm(ip6A), macA, net.IPv6unspecified, snmIP(ip6A), protoICMPv6, nd(icmp6NS, ip6A)), -1, L3IPv6, L4ICMP},
		{"legit arp request for gateway", arpFrame(bcast, macA, 1, macA, ip4A, noMAC, ip4GW), -1, L3Other, L4Other},
		{"legit arp reply", arpFrame(macGW, macA, 2, macA, ip4A, macGW, ip4GW), -1, L3Other, L4Other},
		{"arp probe 0.0.0.0", arpFrame(bcast, macA, 1, macA, net.IPv4zero, noMAC, ip4A), -1, L3Other, L4Other},
		{"arp spoofed sender ip", arpFrame(bcast, macA, 2, macA, ip4GW, noMAC, ip4B), DropARPSpoof, 0, 0},
		{"arp spoofed sender mac", arpFrame(bcast, macA, 1, macX, ip4A, noMAC, ip4GW), DropARPSpoof, 0, 0},
		{"arp wrong eth src", arpFrame(bcast, macX, 1, macA, ip4A, noMAC, ip4GW), DropSrcMAC, 0, 0},
		{"truncated arp", cat(ethHdr(bcast, macA, ethARP), []byte{0, 1, 8, 0, 6, 4}), DropARPSpoof, 0, 0},
		{"other ethertype passes", cat(ethHdr(macGW, macA, ethLLDP), make([]byte, 46)), -1, L3Other, L4Other},
	}
	for _, mode := range []uint8{ModeObserve, ModeFastpath} {
		putEP(t, o, loIfindex, slot, macA, ip4A, ip6A, mode, FlagGuard)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				checkGuarded(t, o, slot, tc.frame, 2, tc.drop, tc.l3, tc.l4)
			})
		}
	}

	// Without the guard flag nothing is dropped.
	putEP(t, o, loIfindex, slot, macA, ip4A, ip6A, ModeObserve, 0)
	frame := ip4Frame(macGW, macX, ip4X, ip4B, protoUDP, 10)
	if ret, _ := run(t, o.FromContainer, frame, 1); ret != ActNext {
		t.Errorf("unguarded: verdict %d, want next", int32(ret))
	}
	wantOnly(t, readSlot(t, o, slot), DirTX, L3IPv4, L4UDP, 1, uint64(len(frame)))
}

// checkGuarded sends frame n times from the guarded endpoint in slot and
// checks the verdict and the counters: with drop < 0 it passes and is
// counted as tx in l3/l4, else it is dropped and counted only as drop.
func checkGuarded(t *testing.T, o *Objects, slot uint32, frame []byte, n uint64, drop, l3, l4 int) {
	t.Helper()
	if err := o.ZeroCounters(slot); err != nil {
		t.Fatal(err)
	}
	ret, _ := run(t, o.FromContainer, frame, uint32(n))
	c := readSlot(t, o, slot)
	if drop < 0 {
		if ret != ActNext {
			t.Errorf("verdict %d, want next", int32(ret))
		}
		wantOnly(t, c, DirTX, l3, l4, n, n*uint64(len(frame)))
		return
	}
	if ret != ActShot {
		t.Errorf("verdict %d, want shot", int32(ret))
	}
	var want Counters
	want.Drops[drop] = n
	if c != want {
		t.Errorf("counters:\n got  %+v\n want %+v", c, want)
	}
}

func TestGuardNoIPv6(t *testing.T) {
	o := loadTest(t)
	putEP(t, o, loIfindex, 2, macA, ip4A, nil, ModeObserve, FlagGuard)
	// Without an IPv6 address only the EUI-64 link-local passes, and ::
	// for duplicate address detection of it; no neighbour advertisement
	// for the address it does not have.
	for _, tc := range []struct {
		name  string
		frame []byte
		want  uint32
	}{
		{"udp from its link-local", ip6Frame(macGW, macA, llA, ip6X, protoUDP, 0), ActNext},
		{"udp from ::", ip6Frame(macGW, macA, net.IPv6unspecified, ip6X, protoUDP, 0), ActShot},
		{"udp from a global address", ip6Frame(macGW, macA, ip6A, ip6X, protoUDP, 0), ActShot},
		{"DAD of its link-local", ip6Pkt(snm(llA), macA, net.IPv6unspecified, snmIP(llA), protoICMPv6, nd(icmp6NS, llA)), ActNext},
		{"DAD of a global address", ip6Pkt(snm(ip6A), macA, net.IPv6unspecified, snmIP(ip6A), protoICMPv6, nd(icmp6NS, ip6A)), ActShot},
		{"advertisement of its link-local", ip6Pkt(macAllNode, macA, llA, allNodes, protoICMPv6, nd(icmp6NA, llA, llOpt(2, macA))), ActNext},
		{"advertisement of a global address", ip6Pkt(macAllNode, macA, llA, allNodes, protoICMPv6, nd(icmp6NA, ip6A, llOpt(2, macA))), ActShot},
	} {
		if ret, _ := run(t, o.FromContainer, tc.frame, 1); ret != tc.want {
			t.Errorf("%s: verdict %d, want %d", tc.name, int32(ret), int32(tc.want))
		}
	}
}

func TestFastpath(t *testing.T) {
	o := loadTest(t)
	const (
		slotA, slotB = 1, 2
		ifB          = 4242 // need not exist: test runs do not perform the redirect
	)
	cases := []struct {
		name         string
		modeA, modeB uint8
		frame        []byte
		fast         bool
		l3, l4       int
	}{
		{"ipv4 via gateway mac", ModeFastpath, ModeFastpath, ip4Frame(macGW, macA, ip4A, ip4B, protoTCP, 10), true, L3IPv4, L4TCP},
		{"ipv4 direct mac", ModeFastpath, ModeFastpath, ip4Frame(macB, macA, ip4A, ip4B, protoUDP, 200), true, L3IPv4, L4UDP},
		{"ipv6", ModeFastpath, ModeFastpath, ip6Frame(macB, macA, ip6A, ip6B, protoICMPv6, 56), true, L3IPv6, L4ICMP},
		{"receiver observes only", ModeFastpath, ModeObserve, ip4Frame(macB, macA, ip4A, ip4B, protoUDP, 10), false, L3IPv4, L4UDP},
		{"sender observes only", ModeObserve, ModeFastpath, ip4Frame(macB, macA, ip4A, ip4B, protoUDP, 10), false, L3IPv4, L4UDP},
		{"broadcast takes the bridge", ModeFastpath, ModeFastpath, ip4Frame(bcast, macA, ip4A, ip4B, protoUDP, 10), false, L3IPv4, L4UDP},
		{"unknown destination", ModeFastpath, ModeFastpath, ip4Frame(macGW, macA, ip4A, ip4X, protoUDP, 10), false, L3IPv4, L4UDP},
		{"to itself", ModeFastpath, ModeFastpath, ip4Frame(macA, macA, ip4A, ip4A, protoUDP, 10), false, L3IPv4, L4UDP},
		{"vlan takes the bridge", ModeFastpath, ModeFastpath, cat(ethHdr(macB, macA, ethVLAN), vlanTag(3, ethIPv4), ip4Hdr(ip4A, ip4B, protoUDP, 8), l4(protoUDP, 0)), false, L3IPv4, L4UDP},
		{"arp takes the bridge", ModeFastpath, ModeFastpath, arpFrame(bcast, macA, 1, macA, ip4A, make(net.HardwareAddr, 6), ip4B), false, L3Other, L4Other},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			putEP(t, o, loIfindex, slotA, macA, ip4A, ip6A, tc.modeA, FlagGuard)
			putEP(t, o, ifB, slotB, macB, ip4B, ip6B, tc.modeB, FlagGuard)
			const n = 4
			ret, out := run(t, o.FromContainer, tc.frame, n)
			size := uint64(len(tc.frame))
			a, b := readSlot(t, o, slotA), readSlot(t, o, slotB)
			if !tc.fast {
				if ret != ActNext {
					t.Errorf("verdict %d, want next", int32(ret))
				}
				if string(out) != string(tc.frame) {
					t.Errorf("frame modified")
				}
				wantOnly(t, a, DirTX, tc.l3, tc.l4, n, n*size)
				wantOnly(t, b, 0, 0, 0, 0, 0)
				return
			}
			if ret != ActRedirect {
				t.Errorf("verdict %d, want redirect (7)", int32(ret))
			}
			if got := net.HardwareAddr(out[:6]); got.String() != macB.String() {
				t.Errorf("dst mac %s, want %s", got, macB)
			}
			if string(out[6:]) != string(tc.frame[6:]) {
				t.Errorf("frame modified beyond the destination MAC")
			}
			var wantA Counters
			wantA.V[DirTX][tc.l3][tc.l4] = Counter{Packets: n, Bytes: n * size}
			wantA.FastpathPackets, wantA.FastpathBytes = n, n*size
			if a != wantA {
				t.Errorf("sender:\n got  %+v\n want %+v", a, wantA)
			}
			wantOnly(t, b, DirRX, tc.l3, tc.l4, n, n*size)
		})
	}
	// A spoofed packet towards a fast-path peer is dropped before the fast path.
	putEP(t, o, loIfindex, slotA, macA, ip4A, ip6A, ModeFastpath, FlagGuard)
	putEP(t, o, ifB, slotB, macB, ip4B, ip6B, ModeFastpath, FlagGuard)
	if ret, _ := run(t, o.FromContainer, ip4Frame(macB, macA, ip4X, ip4B, protoUDP, 10), 1); ret != ActShot {
		t.Errorf("spoofed: verdict %d, want shot", int32(ret))
	}
	if b := readSlot(t, o, slotB); b != (Counters{}) {
		t.Errorf("receiver counted a spoofed packet: %+v", b)
	}
}

func TestEndpointMaps(t *testing.T) {
	o := loadTest(t)
	putEP(t, o, 10, 1, macA, ip4A, ip6A, ModeObserve, 0)
	// Same address on another live endpoint: refused.
	ep, _ := NewEndpoint(11, 2, macB, ip4A, nil, ModeObserve, 0)
	if err := o.PutEndpoint(ep); err == nil {
		t.Fatal("duplicate address accepted")
	}
	// Re-put with a new IPv4 drops the old address entry.
	putEP(t, o, 10, 1, macA, ip4B, ip6A, ModeObserve, 0)
	var owner uint32
	k := IPKey{Family: 4}
	copy(k.Addr[:], ip4A)
	if err := o.EndpointsByIp.Lookup(&k, &owner); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("old address still mapped: %v (owner %d)", err, owner)
	}
	if err := o.SetMode(10, ModeFastpath); err != nil {
		t.Fatal(err)
	}
	if got, _ := o.Endpoint(10); got.Mode != ModeFastpath {
		t.Errorf("mode %d, want fastpath", got.Mode)
	}
	if err := o.SetMode(99, ModeFastpath); err == nil {
		t.Error("SetMode on a missing endpoint succeeded")
	}
	if err := o.DeleteEndpoint(10, ip4B, ip6A); err != nil {
		t.Fatal(err)
	}
	if err := o.DeleteEndpoint(10, ip4B, ip6A); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if n := countEntries(t, o.Endpoints) + countEntries(t, o.EndpointsByIp); n != 0 {
		t.Errorf("%d entries left", n)
	}
}

func countEntries(t testing.TB, m *ebpf.Map) int {
	t.Helper()
	var n int
	var k, v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAdoptPinnedMaps: a second Load shares the maps of the first.
func TestAdoptPinnedMaps(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testPinDir(t)
	o1, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	putEP(t, o1, loIfindex, 5, macA, ip4A, nil, ModeObserve, 0)
	o1.Close()

	o2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	frame := ip4Frame(macB, macA, ip4A, ip4B, protoUDP, 1)
	run(t, o2.ToContainer, frame, 1)
	wantOnly(t, readSlot(t, o2, 5), DirRX, L3IPv4, L4UDP, 1, uint64(len(frame)))
}

// TestIncompatiblePin: a map pinned with another spec is a clear error.
func TestIncompatiblePin(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testPinDir(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "endpoints", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Pin(filepath.Join(dir, "endpoints")); err != nil {
		t.Fatal(err)
	}
	_, err = Load(dir)
	if !errors.Is(err, ebpf.ErrMapIncompatible) {
		t.Fatalf("want ErrMapIncompatible, got %v", err)
	}
	t.Log(err)
}

// skbCtx is the head of struct __sk_buff, enough to set ifindex.
type skbCtx struct {
	Len, PktType, Mark, QueueMapping, Protocol, VlanPresent, VlanTCI, VlanProto, Priority, IngressIfindex, Ifindex uint32
}

// TestRealIfindex keys an endpoint by the ifindex of a veth in a
// throwaway netns and passes it through the test-run context, so the lookup
// runs on skb->ifindex of a real device.
func TestRealIfindex(t *testing.T) {
	o := loadTest(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New() // switches this thread
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(err) // thread is in the wrong netns; do not let it be reused
		}
		ns.Close()
	}()
	la := netlink.NewLinkAttrs()
	la.Name = "nswtest0"
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "nswtest1"}); err != nil {
		t.Fatal(err)
	}
	l, err := netlink.LinkByName("nswtest0")
	if err != nil {
		t.Fatal(err)
	}
	idx := l.Attrs().Index
	putEP(t, o, idx, 6, macA, ip4A, nil, ModeObserve, 0)

	frame := ip4Frame(macB, macA, ip4A, ip4B, protoICMP, 56)
	ret, err := o.FromContainer.Run(&ebpf.RunOptions{Data: frame, Context: skbCtx{Ifindex: uint32(idx)}})
	if err != nil {
		t.Fatal(err)
	}
	if ret != ActNext {
		t.Errorf("verdict %d", int32(ret))
	}
	wantOnly(t, readSlot(t, o, 6), DirTX, L3IPv4, L4ICMP, 1, uint64(len(frame)))
}

// TestReadAllCounters500: one batch read returns every one of 500 endpoints
// (BenchmarkReadCounters500 measures how long it takes).
func TestReadAllCounters500(t *testing.T) {
	o := loadTest(t)
	for i := range 500 {
		ep, err := NewEndpoint(1000+i, uint32(i), macA, nil, nil, ModeObserve, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.PutEndpoint(ep); err != nil {
			t.Fatal(err)
		}
	}
	all, err := o.ReadAllCounters()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 500 {
		t.Errorf("%d slots, want 500", len(all))
	}
	for i := range uint32(500) {
		if _, ok := all[i]; !ok {
			t.Fatalf("slot %d missing", i)
		}
	}
}

func benchProg(b *testing.B, pick func(*Objects) *ebpf.Program, dir int, modeA, modeB uint8, want uint32) {
	benchProgFlags(b, pick, dir, modeA, modeB, FlagGuard, want)
}

func benchProgFlags(b *testing.B, pick func(*Objects) *ebpf.Program, dir int, modeA, modeB, flags uint8, want uint32) {
	o := loadTest(b)
	putEP(b, o, loIfindex, 0, macA, ip4A, ip6A, modeA, flags)
	putEP(b, o, 4242, 1, macB, ip4B, ip6B, modeB, flags)
	frame := ip4Frame(macB, macA, ip4A, ip4B, protoTCP, 6) // 60 bytes + FCS = 64 on the wire
	ret, d, err := pick(o).Benchmark(frame, b.N, nil)
	if err != nil {
		b.Fatal(err)
	}
	if ret != want {
		b.Fatalf("verdict %d, want %d", int32(ret), int32(want))
	}
	b.ReportMetric(float64(d.Nanoseconds()), "kns/op")
	c := readSlot(b, o, 0)
	if p, _ := c.Total(dir); p < uint64(b.N) {
		b.Fatalf("counted %d packets, ran %d", p, b.N)
	}
}

func fromContainer(o *Objects) *ebpf.Program { return o.FromContainer }
func toContainer(o *Objects) *ebpf.Program   { return o.ToContainer }

// The benchmarks report "kns/op", the kernel's own per-run duration of
// BPF_PROG_TEST_RUN with repeat (whole nanoseconds), which includes the
// test-run loop itself: BenchmarkEmptyProgram measures that baseline. On
// the 2-CPU development VM the numbers swing by ±50 % unless the whole test
// process is bound to one CPU (pinning only the test-run thread does not
// help):
//
//	taskset -c 1 go test -run '^$' -bench . -benchtime 20000000x -count 8 ./bpf

// BenchmarkEmptyProgram: a tc program that only returns TC_ACT_UNSPEC, on
// the same frame: the cost of the test-run loop, to subtract.
func BenchmarkEmptyProgram(b *testing.B) {
	testenv.RequireRoot(b)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		License:      "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Close()
	frame := ip4Frame(macB, macA, ip4A, ip4B, protoTCP, 6)
	ret, d, err := prog.Benchmark(frame, b.N, nil)
	if err != nil {
		b.Fatal(err)
	}
	if ret != ActNext {
		b.Fatalf("verdict %d", int32(ret))
	}
	b.ReportMetric(float64(d.Nanoseconds()), "kns/op")
}

// BenchmarkFromContainer: observe mode with the spoof guard on and flow
// accounting on (the default): endpoint lookup, guard, count, flow update.
func BenchmarkFromContainer(b *testing.B) {
	benchProg(b, fromContainer, DirTX, ModeObserve, ModeObserve, ActNext)
}

// BenchmarkFromContainerNoFlows: as BenchmarkFromContainer with flow
// accounting off for the endpoint (FlagNoFlows): the difference is the cost
// of flow accounting.
func BenchmarkFromContainerNoFlows(b *testing.B) {
	benchProgFlags(b, fromContainer, DirTX, ModeObserve, ModeObserve, FlagGuard|FlagNoFlows, ActNext)
}

// BenchmarkFromContainerFastpathMiss: fast-path mode, destination a local
// endpoint in observe mode, so the destination lookups run and the packet
// is counted and passed to the bridge (the slowest pass path).
func BenchmarkFromContainerFastpathMiss(b *testing.B) {
	benchProg(b, fromContainer, DirTX, ModeFastpath, ModeObserve, ActNext)
}

// BenchmarkFromContainerFastpathHit: both endpoints in fast-path mode: the
// packet is counted on both sides and redirected (the test run reports the
// verdict without redirecting).
func BenchmarkFromContainerFastpathHit(b *testing.B) {
	benchProg(b, fromContainer, DirTX, ModeFastpath, ModeFastpath, ActRedirect)
}

func BenchmarkToContainer(b *testing.B) {
	benchProg(b, toContainer, DirRX, ModeObserve, ModeObserve, ActNext)
}

func BenchmarkToContainerNoFlows(b *testing.B) {
	benchProgFlags(b, toContainer, DirRX, ModeObserve, ModeObserve, FlagGuard|FlagNoFlows, ActNext)
}

// TestMapSpecs: the map properties Load checks pins against without parsing
// the object are the object's.
func TestMapSpecs(t *testing.T) {
	spec, err := LoadDatapath()
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Maps) != len(mapSpecs) {
		t.Errorf("object has %d maps, mapSpecs %d", len(spec.Maps), len(mapSpecs))
	}
	for name, ms := range spec.Maps {
		want := mapSpecs[name]
		if want == nil {
			t.Errorf("map %s missing from mapSpecs", name)
			continue
		}
		if ms.Type != want.Type || ms.KeySize != want.KeySize || ms.ValueSize != want.ValueSize ||
			ms.MaxEntries != want.MaxEntries || ms.Flags != want.Flags || ms.Pinning != want.Pinning {
			t.Errorf("map %s: object %+v, mapSpecs %+v", name, ms, want)
		}
	}
}

func progIDs(t testing.TB, o *Objects) [2]ebpf.ProgramID {
	t.Helper()
	var ids [2]ebpf.ProgramID
	for i, p := range []*ebpf.Program{o.FromContainer, o.ToContainer} {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		ids[i], _ = info.ID()
	}
	return ids
}

// TestAdoptPinnedPrograms: Load pins the programs under a directory named
// by the object hash and a second Load adopts them instead of loading anew.
func TestAdoptPinnedPrograms(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testPinDir(t)
	o1, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o1.Close()
	if len(ObjectHash()) != 12 {
		t.Errorf("ObjectHash %q", ObjectHash())
	}
	for _, name := range []string{DatapathProgFromContainer, DatapathProgToContainer} {
		if _, err := os.Stat(filepath.Join(ProgPinDir(dir), name)); err != nil {
			t.Errorf("program pin: %v", err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != numPins { // maps + progs-<hash>, no temporary directory left
		t.Errorf("pin dir holds %d entries, want %d: %v", len(entries), numPins, entries)
	}
	o2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	if a, b := progIDs(t, o1), progIDs(t, o2); a != b {
		t.Errorf("second Load made new programs: %v, then %v", a, b)
	}
}

// TestReloadWhenMapsRecreated: pinned programs that use other maps than the
// pinned ones (maps unpinned and recreated) are replaced, not adopted.
func TestReloadWhenMapsRecreated(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testPinDir(t)
	o1, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := progIDs(t, o1)
	for _, m := range []*ebpf.Map{o1.Endpoints, o1.EndpointsByIp, o1.EpCounters} {
		if err := m.Unpin(); err != nil {
			t.Fatal(err)
		}
	}
	defer o1.Close()
	o2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	if progIDs(t, o2) == old {
		t.Fatal("adopted programs that use the old maps")
	}
	putEP(t, o2, loIfindex, 3, macA, ip4A, nil, ModeObserve, 0)
	frame := ip4Frame(macB, macA, ip4A, ip4B, protoUDP, 1)
	run(t, o2.FromContainer, frame, 1)
	wantOnly(t, readSlot(t, o2, 3), DirTX, L3IPv4, L4UDP, 1, uint64(len(frame)))
	entries, _ := os.ReadDir(dir)
	if len(entries) != numPins {
		t.Errorf("pin dir holds %d entries, want %d: %v", len(entries), numPins, entries)
	}
}

// TestReplaceForeignPin: something else pinned where a program belongs is
// replaced.
func TestReplaceForeignPin(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testPinDir(t)
	pd := ProgPinDir(dir)
	if err := os.Mkdir(pd, 0o700); err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Pin(filepath.Join(pd, DatapathProgFromContainer)); err != nil {
		t.Fatal(err)
	}
	o, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.FromContainer.Type() != ebpf.SchedCLS {
		t.Errorf("type %s", o.FromContainer.Type())
	}
}

// TestConcurrentLoad: loaders racing on an empty pin dir all end up with
// the same pinned programs and leave no temporary directory.
func TestConcurrentLoad(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testPinDir(t)
	const n = 6
	objs := make([]*Objects, n)
	errs := make([]error, n)
	done := make(chan int)
	for i := range n {
		go func() {
			objs[i], errs[i] = Load(dir)
			done <- i
		}()
	}
	for range n {
		<-done
	}
	var want [2]ebpf.ProgramID
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("loader %d: %v", i, errs[i])
		}
		defer objs[i].Close()
	}
	o, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	want = progIDs(t, o)
	for i := range n {
		if got := progIDs(t, objs[i]); got != want {
			t.Errorf("loader %d holds programs %v, pinned %v", i, got, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != numPins {
		t.Errorf("pin dir holds %d entries, want %d: %v", len(entries), numPins, entries)
	}
}

func TestOpenMaps(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testPinDir(t)
	_, err := OpenMaps(dir)
	if !errors.Is(err, ErrNotPinned) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenMaps on an empty dir: %v", err)
	}
	t.Log(err)
	o, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	putEP(t, o, loIfindex, 4, macA, ip4A, nil, ModeObserve, 0)
	frame := ip4Frame(macB, macA, ip4A, ip4B, protoTCP, 1)
	run(t, o.ToContainer, frame, 2)

	r, err := OpenMaps(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.FromContainer != nil || r.ToContainer != nil {
		t.Error("OpenMaps opened programs")
	}
	wantOnly(t, readSlot(t, r, 4), DirRX, L3IPv4, L4TCP, 2, 2*uint64(len(frame)))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestGCPrograms: program pins of another object version go unless a tcx
// link runs them; this version's pins stay.
func TestGCPrograms(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testPinDir(t)
	o, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	spec, err := LoadDatapath()
	if err != nil {
		t.Fatal(err)
	}
	// Two "old versions": the same programs pinned under other hashes.
	pinOld := func(name string) *ebpf.Program {
		var p DatapathPrograms
		if err := spec.LoadAndAssign(&p, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: dir}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := p.FromContainer.Pin(filepath.Join(d, DatapathProgFromContainer)); err != nil {
			t.Fatal(err)
		}
		return p.FromContainer
	}
	pinOld("progs-000000000001")
	used := pinOld("progs-000000000002")

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(err)
		}
		ns.Close()
	}()
	l, err := link.AttachTCX(link.TCXOptions{Interface: loIfindex, Program: used, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	if would, err := GCPrograms(dir, true); err != nil || !slices.Equal(would, []string{filepath.Join(dir, "progs-000000000001")}) {
		t.Fatalf("GCPrograms dry run: %v, %v; want only progs-000000000001", would, err)
	}
	removed, err := GCPrograms(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(dir, "progs-000000000001")}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, d := range []string{ProgPinDir(dir), filepath.Join(dir, "progs-000000000002")} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	if err := o.Unpin(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ProgPinDir(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Unpin left the program pins: %v", err)
	}
}

// BenchmarkReadCounters500: ReadAllCounters with 500 endpoint records
// (two batch lookups and the per-CPU sums).
func BenchmarkReadCounters500(b *testing.B) {
	o := loadTest(b)
	for i := range 500 {
		ep, err := NewEndpoint(1000+i, uint32(i), macA, nil, nil, ModeObserve, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := o.PutEndpoint(ep); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		all, err := o.ReadAllCounters()
		if err != nil {
			b.Fatal(err)
		}
		if len(all) != 500 {
			b.Fatalf("%d slots, want 500", len(all))
		}
	}
}
