//go:build linux

package bpf

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// readEvents reads the events waiting in the ring buffer (the programs
// submit them before prog.Run returns, so none is still to come).
func readEvents(t *testing.T, o *Objects) []DropEvent {
	t.Helper()
	rd, err := o.NewDropReader()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var evs []DropEvent
	for {
		rd.SetDeadline(time.Now().Add(200 * time.Millisecond))
		e, err := rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return evs
		}
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
}

func readStats(t *testing.T, o *Objects) Stats {
	t.Helper()
	s, err := o.ReadStats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDropEvents: every drop reason of the guard emits one event that
// describes the dropped packet.
func TestDropEvents(t *testing.T) {
	o := loadTest(t)
	const slot = 21
	putEP(t, o, loIfindex, slot, macA, ip4A, ip6A, ModeFastpath, FlagGuard)
	noMAC := make(net.HardwareAddr, 6)
	none := netip.Addr{}
	cases := []struct {
		frame []byte
		want  DropEvent // Time and Ktime are not compared
	}{
		{ip4Pkt(macGW, macX, ip4A, ip4X, protoUDP, udpSeg(1000, 53, 4)),
			DropEvent{Reason: DropSrcMAC, Family: 4, EtherType: ethIPv4, Proto: protoUDP, Src: addr(ip4A), Dst: addr(ip4X), SrcPort: 1000, DstPort: 53, SrcMAC: macX}},
		{ip4Pkt(macGW, macA, ip4X, ip4B, protoTCP, tcpSeg(2000, 80, tcpSYN, 0)),
			DropEvent{Reason: DropSrcIP4, Family: 4, EtherType: ethIPv4, Proto: protoTCP, Src: addr(ip4X), Dst: addr(ip4B), SrcPort: 2000, DstPort: 80, SrcMAC: macA}},
		{ip6Pkt(macGW, macA, ip6X, ip6B, protoUDP, udpSeg(3000, 443, 0)),
			DropEvent{Reason: DropSrcIP6, Family: 6, EtherType: ethIPv6, Proto: protoUDP, Src: addr(ip6X), Dst: addr(ip6B), SrcPort: 3000, DstPort: 443, SrcMAC: macA}},
		{arpFrame(bcast, macA, 2, macA, ip4GW, noMAC, ip4B),
			DropEvent{Reason: DropARPSpoof, EtherType: ethARP, Src: addr(ip4GW), Dst: addr(ip4B), SrcPort: 2, SrcMAC: macA}},
		{ip6Pkt(macAllNode, macA, llA, allNodes, protoICMPv6, icmp6(icmp6RA, 0, 8)),
			DropEvent{Reason: DropRA, Family: 6, EtherType: ethIPv6, Proto: protoICMPv6, Src: addr(llA), Dst: addr(allNodes), SrcPort: icmp6RA, SrcMAC: macA}},
		{ip6Pkt(macGW, macA, llA, llGW, protoHopOpt, ext(protoICMPv6), icmp6(icmp6Redirect, 0, 32)),
			DropEvent{Reason: DropRedirect, Family: 6, EtherType: ethIPv6, Proto: protoICMPv6, Src: addr(llA), Dst: addr(llGW), SrcPort: icmp6Redirect, SrcMAC: macA}},
		{ip6Pkt(macGW, macA, llA, llGW, protoICMPv6),
			DropEvent{Reason: DropIP6Unparsed, Family: 6, EtherType: ethIPv6, Proto: protoICMPv6, Src: addr(llA), Dst: addr(llGW), SrcMAC: macA}},
		{ip6Pkt(macAllNode, macA, ip6A, allNodes, protoICMPv6, nd(icmp6NA, ip6X, llOpt(2, macA))),
			DropEvent{Reason: DropNDSpoof, Family: 6, EtherType: ethIPv6, Proto: protoICMPv6, Src: addr(ip6A), Dst: addr(allNodes), SrcPort: icmp6NA, SrcMAC: macA}},
		{cat(ethHdr(macGW, macA, ethVLAN), vlanTag(1, ethIPv4), make([]byte, 10)),
			DropEvent{Reason: DropSrcIP4, Family: 4, EtherType: ethIPv4, Src: none, Dst: none, SrcMAC: macA}},
	}
	reasons := map[int]bool{}
	before := time.Now()
	for _, tc := range cases {
		if ret, _ := run(t, o.FromContainer, tc.frame, 1); ret != ActShot {
			t.Fatalf("reason %d: verdict %d, want shot", tc.want.Reason, int32(ret))
		}
		reasons[tc.want.Reason] = true
	}
	if len(reasons) != NumDropReason {
		t.Fatalf("the cases cover %d reasons of %d", len(reasons), NumDropReason)
	}
	evs := readEvents(t, o)
	if len(evs) != len(cases) {
		t.Fatalf("%d events, want %d", len(evs), len(cases))
	}
	for i, e := range evs {
		w := cases[i].want
		w.Slot, w.Ifindex, w.Time, w.Ktime = slot, loIfindex, e.Time, e.Ktime
		if e.String() != w.String() {
			t.Errorf("event %d:\n got  %s\n want %s", i, e, w)
		}
		if e.Time.Before(before.Add(-time.Second)) || time.Since(e.Time) > time.Minute {
			t.Errorf("event %d: time %v, test started %v", i, e.Time, before)
		}
	}
	if s := readStats(t, o); s != (Stats{EventsSent: uint64(len(cases))}) {
		t.Errorf("stats %+v", s)
	}
}

// TestDropEventsRingFull: with no reader and no rate limit, drops beyond
// what the ring buffer holds are counted as lost to a full ring, and the
// ones it holds are all read.
func TestDropEventsRingFull(t *testing.T) {
	o := loadTest(t)
	putEP(t, o, loIfindex, 22, macA, ip4A, ip6A, ModeObserve, FlagGuard)
	if err := o.SetDropEventRate(DropEventsUnlimited, 0); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	const fits = DropEventsRingSize / (64 + 8) // event + ring record header
	frame := ip4Pkt(macGW, macX, ip4A, ip4X, protoUDP, udpSeg(1, 2, 0))
	if ret, _ := run(t, o.FromContainer, frame, n); ret != ActShot {
		t.Fatalf("verdict %d", int32(ret))
	}
	s := readStats(t, o)
	if s.EventsSent != fits || s.EventsRingbufFull != n-fits || s.EventsRateLimited != 0 || s.EventsLost() != n-fits {
		t.Errorf("stats %+v, want %d sent and %d lost to a full ring", s, fits, n-fits)
	}
	if c := readSlot(t, o, 22); c.Drops[DropSrcMAC] != n {
		t.Errorf("%d drops counted, want %d", c.Drops[DropSrcMAC], n)
	}
	if evs := readEvents(t, o); len(evs) != fits {
		t.Errorf("read %d events, want %d", len(evs), fits)
	}
	// Read, the ring has room again.
	run(t, o.FromContainer, frame, 1)
	if s := readStats(t, o); s.EventsSent != fits+1 {
		t.Errorf("after reading: %d sent, want %d", s.EventsSent, fits+1)
	}
}

// TestDropEventsRateLimited: beyond the burst, drops are counted as
// rate-limited events; every drop is either an event or counted as lost.
func TestDropEventsRateLimited(t *testing.T) {
	o := loadTest(t)
	putEP(t, o, loIfindex, 23, macA, ip4A, ip6A, ModeObserve, FlagGuard)
	if r, b, err := o.DropEventRate(); err != nil || r != 0 || b != 0 {
		t.Errorf("default rate %d burst %d (%v), want zeros (the defaults)", r, b, err)
	}
	const burst = 5
	if err := o.SetDropEventRate(1, burst); err != nil {
		t.Fatal(err)
	}
	if r, b, _ := o.DropEventRate(); r != 1 || b != burst {
		t.Errorf("rate %d burst %d", r, b)
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	frame := ip4Pkt(macGW, macA, ip4X, ip4B, protoUDP, udpSeg(1, 2, 0))
	if ret, _ := run(t, o.FromContainer, frame, n); ret != ActShot {
		t.Fatalf("verdict %d", int32(ret))
	}
	s := readStats(t, o)
	t.Logf("stats %+v", s)
	// The bucket is per CPU, and the test run may move between CPUs; it
	// refills one event per second.
	if s.EventsSent+s.EventsRateLimited != n || s.EventsRingbufFull != 0 ||
		s.EventsSent < burst || s.EventsSent >= n || s.EventsRateLimited == 0 {
		t.Errorf("stats %+v: want %d drops split into >= %d sent and the rest rate-limited (%d CPUs)", s, n, burst, ncpu)
	}
	if evs := readEvents(t, o); uint64(len(evs)) != s.EventsSent {
		t.Errorf("read %d events, %d sent", len(evs), s.EventsSent)
	}
}
