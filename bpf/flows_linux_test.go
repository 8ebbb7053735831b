//go:build linux

package bpf

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/nswire/nswire/test/testenv"
)

// Segment builders with ports and flags, for exact flow keys.

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpPSH = 0x08
	tcpACK = 0x10
)

func tcpSeg(sport, dport uint16, flags byte, payload int) []byte {
	b := make([]byte, 20+payload)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4
	b[13] = flags
	return b
}

func udpSeg(sport, dport uint16, payload int) []byte {
	b := make([]byte, 8+payload)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+payload))
	return b
}

func icmp4(typ, code byte, payload int) []byte {
	b := make([]byte, 8+payload)
	b[0], b[1] = typ, code
	return b
}

func ip4Pkt(dmac, smac net.HardwareAddr, src, dst net.IP, proto byte, seg []byte) []byte {
	return cat(ethHdr(dmac, smac, ethIPv4), ip4Hdr(src, dst, proto, len(seg)), seg)
}

// flowID is what identifies a flow in the tests.
type flowID struct {
	Slot             uint32
	Dir              int
	Family           int
	Proto            uint8
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}

type flowVal struct {
	Packets, Bytes uint64
	TCPFlags       uint8
}

func idOf(f Flow) flowID {
	return flowID{f.Slot, f.Dir, f.Family, f.Proto, f.Src, f.Dst, f.SrcPort, f.DstPort}
}

func addr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// flowGen sends frames through a program and records the flows they must
// make.
type flowGen struct {
	t    *testing.T
	want map[flowID]flowVal
}

func newFlowGen(t *testing.T) *flowGen { return &flowGen{t: t, want: map[flowID]flowVal{}} }

// send runs frame n times through prog and, unless id is nil, expects it
// in flow *id.
func (g *flowGen) send(o *Objects, dir int, frame []byte, n uint32, want uint32, ids ...flowID) {
	g.t.Helper()
	prog := o.FromContainer
	if dir == DirRX {
		prog = o.ToContainer
	}
	if ret, _ := run(g.t, prog, frame, n); ret != want {
		g.t.Fatalf("verdict %d, want %d", int32(ret), int32(want))
	}
	var flags uint8
	eth := 14
	switch binary.BigEndian.Uint16(frame[12:]) {
	case ethIPv4:
		if frame[eth+9] == protoTCP {
			flags = frame[eth+20+13]
		}
	case ethIPv6:
		switch {
		case frame[eth+6] == protoTCP:
			flags = frame[eth+40+13]
		case frame[eth+6] == protoDstOpts && frame[eth+40] == protoTCP: // one 8-byte header
			flags = frame[eth+48+13]
		}
	}
	for _, id := range ids {
		v := g.want[id]
		v.Packets += uint64(n)
		v.Bytes += uint64(n) * uint64(len(frame))
		v.TCPFlags |= flags
		g.want[id] = v
	}
}

// check compares the flows of the slots in g.want (and of extra slots, which
// must have none) with what ReadFlows returns, exactly.
func (g *flowGen) check(o *Objects, extra ...uint32) *FlowTable {
	g.t.Helper()
	tab, err := o.ReadFlows()
	if err != nil {
		g.t.Fatal(err)
	}
	slots := map[uint32]bool{}
	created := map[uint32]uint64{}
	for id := range g.want {
		slots[id.Slot] = true
		created[id.Slot]++
	}
	for _, s := range extra {
		slots[s] = true
	}
	got := map[flowID]flowVal{}
	for _, f := range tab.Flows {
		if !slots[f.Slot] {
			continue
		}
		id := idOf(f)
		if _, dup := got[id]; dup {
			g.t.Errorf("flow %+v listed twice", id)
		}
		got[id] = flowVal{f.Packets, f.Bytes, f.TCPFlags}
		if f.FirstSeen.IsZero() || f.LastSeen.Before(f.FirstSeen) {
			g.t.Errorf("flow %+v: first seen %v, last seen %v", id, f.FirstSeen, f.LastSeen)
		}
		if d := time.Since(f.LastSeen); d < -time.Second || d > time.Hour {
			g.t.Errorf("flow %+v: last seen %v, %v ago", id, f.LastSeen, d)
		}
	}
	for id, w := range g.want {
		if got[id] != w {
			g.t.Errorf("flow %s: got %+v, want %+v", fmtID(id), got[id], w)
		}
	}
	for id, v := range got {
		if _, ok := g.want[id]; !ok {
			g.t.Errorf("unexpected flow %s: %+v", fmtID(id), v)
		}
	}
	for s := range slots {
		st := tab.Slots[s]
		if st.Created != created[s] || st.Present != created[s] || st.Evicted != 0 {
			g.t.Errorf("slot %d: %+v, want %d created and present, none evicted", s, st, created[s])
		}
	}
	if tab.Errors != 0 {
		g.t.Errorf("%d flow errors", tab.Errors)
	}
	return tab
}

func fmtID(id flowID) string {
	dir := "rx"
	if id.Dir == DirTX {
		dir = "tx"
	}
	return fmt.Sprintf("slot %d %s v%d proto %d %s:%d > %s:%d", id.Slot, dir, id.Family, id.Proto, id.Src, id.SrcPort, id.Dst, id.DstPort)
}

// knownTraffic sends N TCP connections to distinct ports, a UDP burst,
// pings, IPv6 UDP and TCP with an extension header, and ARP (no flow) from
// and to slot's endpoint (MAC macA, addresses ip4A/ip6A) towards X.
func knownTraffic(g *flowGen, o *Objects, slot uint32) {
	a4, x4, a6, x6 := addr(ip4A), addr(ip4X), addr(ip6A), addr(ip6X)
	for i := range uint16(3) {
		sport, dport := 50000+i, 8080+i
		tx := flowID{slot, DirTX, 4, protoTCP, a4, x4, sport, dport}
		rx := flowID{slot, DirRX, 4, protoTCP, x4, a4, dport, sport}
		g.send(o, DirTX, ip4Pkt(macGW, macA, ip4A, ip4X, protoTCP, tcpSeg(sport, dport, tcpSYN, 0)), 1, ActNext, tx)
		g.send(o, DirRX, ip4Pkt(macA, macGW, ip4X, ip4A, protoTCP, tcpSeg(dport, sport, tcpSYN|tcpACK, 0)), 1, ActNext, rx)
		g.send(o, DirTX, ip4Pkt(macGW, macA, ip4A, ip4X, protoTCP, tcpSeg(sport, dport, tcpACK|tcpPSH, 100+int(i))), 5+uint32(i), ActNext, tx)
		g.send(o, DirRX, ip4Pkt(macA, macGW, ip4X, ip4A, protoTCP, tcpSeg(dport, sport, tcpACK, 0)), 2, ActNext, rx)
		g.send(o, DirTX, ip4Pkt(macGW, macA, ip4A, ip4X, protoTCP, tcpSeg(sport, dport, tcpFIN|tcpACK, 0)), 1, ActNext, tx)
	}
	g.send(o, DirTX, ip4Pkt(macGW, macA, ip4A, ip4X, protoUDP, udpSeg(5353, 53, 100)), 10, ActNext,
		flowID{slot, DirTX, 4, protoUDP, a4, x4, 5353, 53})
	g.send(o, DirTX, ip4Pkt(macGW, macA, ip4A, ip4X, protoICMP, icmp4(8, 0, 56)), 4, ActNext,
		flowID{slot, DirTX, 4, protoICMP, a4, x4, 8, 0})
	g.send(o, DirRX, ip4Pkt(macA, macGW, ip4X, ip4A, protoICMP, icmp4(0, 0, 56)), 4, ActNext,
		flowID{slot, DirRX, 4, protoICMP, x4, a4, 0, 0})
	g.send(o, DirTX, ip6Pkt(macGW, macA, ip6A, ip6X, protoUDP, udpSeg(1234, 5678, 30)), 2, ActNext,
		flowID{slot, DirTX, 6, protoUDP, a6, x6, 1234, 5678})
	g.send(o, DirTX, ip6Pkt(macGW, macA, ip6A, ip6X, protoDstOpts, ext(protoTCP), tcpSeg(40000, 443, tcpSYN, 0)), 1, ActNext,
		flowID{slot, DirTX, 6, protoTCP, a6, x6, 40000, 443})
	g.send(o, DirRX, ip6Pkt(macA, macGW, ip6X, ip6A, protoICMPv6, icmp6(icmp6EchoReply, 0, 8)), 3, ActNext,
		flowID{slot, DirRX, 6, protoICMPv6, x6, a6, icmp6EchoReply, 0})
	// Not IP: counted, but no flow.
	g.send(o, DirTX, arpFrame(bcast, macA, 1, macA, ip4A, make(net.HardwareAddr, 6), ip4GW), 2, ActNext)
}

// TestFlowsExact: known traffic appears as exactly its flows, with exact
// packets, bytes and TCP flags, in observe and in fastpath mode (to a
// destination that is not an endpoint), and the per-endpoint counters agree.
func TestFlowsExact(t *testing.T) {
	for _, mode := range []uint8{ModeObserve, ModeFastpath} {
		t.Run(modeName(mode), func(t *testing.T) {
			o := loadTest(t)
			const slot = 1
			putEP(t, o, loIfindex, slot, macA, ip4A, ip6A, mode, FlagGuard)
			g := newFlowGen(t)
			knownTraffic(g, o, slot)
			tab := g.check(o)
			// The flows add up to the counters, but for the ARP frames.
			c := readSlot(t, o, slot)
			var fp, fb uint64
			for _, f := range tab.Flows {
				fp, fb = fp+f.Packets, fb+f.Bytes
			}
			rxp, rxb := c.Total(DirRX)
			txp, txb := c.Total(DirTX)
			arp := c.V[DirTX][L3Other][L4Other]
			if fp != rxp+txp-arp.Packets || fb != rxb+txb-arp.Bytes {
				t.Errorf("flows sum to %d packets %d bytes; counters %d, %d (ARP %d, %d)",
					fp, fb, rxp+txp, rxb+txb, arp.Packets, arp.Bytes)
			}
		})
	}
}

// TestFlowsFastpath: a fast-pathed packet is a tx flow of the sender and an
// rx flow of the receiver (the receiver's own program never sees it).
func TestFlowsFastpath(t *testing.T) {
	o := loadTest(t)
	const slotA, slotB, ifB = 1, 2, 4242
	a4, b4, a6, b6 := addr(ip4A), addr(ip4B), addr(ip6A), addr(ip6B)
	putEP(t, o, loIfindex, slotA, macA, ip4A, ip6A, ModeFastpath, FlagGuard)
	putEP(t, o, ifB, slotB, macB, ip4B, ip6B, ModeFastpath, FlagGuard)
	g := newFlowGen(t)
	g.send(o, DirTX, ip4Pkt(macGW, macA, ip4A, ip4B, protoTCP, tcpSeg(33000, 80, tcpACK, 200)), 7, ActRedirect,
		flowID{slotA, DirTX, 4, protoTCP, a4, b4, 33000, 80}, flowID{slotB, DirRX, 4, protoTCP, a4, b4, 33000, 80})
	g.send(o, DirTX, ip6Pkt(macB, macA, ip6A, ip6B, protoUDP, udpSeg(9, 9, 20)), 3, ActRedirect,
		flowID{slotA, DirTX, 6, protoUDP, a6, b6, 9, 9}, flowID{slotB, DirRX, 6, protoUDP, a6, b6, 9, 9})
	g.check(o)

	// Receiver in observe: the packet takes the bridge; only the sender's
	// program counts it (the receiver's to_container would, on the host).
	if err := o.SetMode(ifB, ModeObserve); err != nil {
		t.Fatal(err)
	}
	g.send(o, DirTX, ip4Pkt(macGW, macA, ip4A, ip4B, protoUDP, udpSeg(7, 7, 0)), 2, ActNext,
		flowID{slotA, DirTX, 4, protoUDP, a4, b4, 7, 7})
	g.check(o)

	// Sender without flows, receiver with: the receiver's rx flow only.
	if err := o.SetMode(ifB, ModeFastpath); err != nil {
		t.Fatal(err)
	}
	if err := o.SetFlows(loIfindex, false); err != nil {
		t.Fatal(err)
	}
	g.send(o, DirTX, ip4Pkt(macGW, macA, ip4A, ip4B, protoUDP, udpSeg(8, 8, 0)), 2, ActRedirect,
		flowID{slotB, DirRX, 4, protoUDP, a4, b4, 8, 8})
	g.check(o)
}

// TestFlowsOff: with FlagNoFlows an endpoint is counted but makes no flows;
// SetFlows turns them on and off at run time.
func TestFlowsOff(t *testing.T) {
	o := loadTest(t)
	const slot = 3
	putEP(t, o, loIfindex, slot, macA, ip4A, ip6A, ModeObserve, FlagGuard|FlagNoFlows)
	frame := ip4Pkt(macGW, macA, ip4A, ip4X, protoUDP, udpSeg(1, 2, 10))
	g := newFlowGen(t)
	g.send(o, DirTX, frame, 5, ActNext)
	g.send(o, DirRX, ip4Pkt(macA, macGW, ip4X, ip4A, protoUDP, udpSeg(2, 1, 10)), 5, ActNext)
	g.check(o, slot)
	if c := readSlot(t, o, slot); c.V[DirTX][L3IPv4][L4UDP] != (Counter{Packets: 5, Bytes: 5 * uint64(len(frame))}) {
		t.Errorf("counters %+v", c)
	}

	if err := o.SetFlows(loIfindex, true); err != nil {
		t.Fatal(err)
	}
	if ep, _ := o.Endpoint(loIfindex); ep.Flags != FlagGuard {
		t.Errorf("flags %#x, want %#x", ep.Flags, FlagGuard)
	}
	g.send(o, DirTX, frame, 2, ActNext, flowID{slot, DirTX, 4, protoUDP, addr(ip4A), addr(ip4X), 1, 2})
	g.check(o)
	if err := o.SetFlows(loIfindex, false); err != nil {
		t.Fatal(err)
	}
	g.send(o, DirTX, frame, 4, ActNext) // not counted in the flow any more
	g.check(o)
	if err := o.SetFlows(99, true); err == nil {
		t.Error("SetFlows on a missing endpoint succeeded")
	}
}

// TestZeroCountersDeletesFlows: a slot's flows go with its counters, so a
// new endpoint in a reused slot starts empty; other slots keep theirs.
func TestZeroCountersDeletesFlows(t *testing.T) {
	o := loadTest(t)
	putEP(t, o, loIfindex, 4, macA, ip4A, ip6A, ModeObserve, FlagGuard)
	knownTraffic(newFlowGen(t), o, 4)
	// The lo endpoint moves to slot 5 and makes a flow there; then another
	// endpoint takes slot 4 (attach zeroes its counters).
	putEP(t, o, loIfindex, 5, macA, ip4A, ip6A, ModeObserve, FlagGuard)
	g5 := newFlowGen(t)
	g5.send(o, DirTX, ip4Pkt(macGW, macA, ip4A, ip4X, protoUDP, udpSeg(1, 1, 0)), 1, ActNext,
		flowID{5, DirTX, 4, protoUDP, addr(ip4A), addr(ip4X), 1, 1})
	putEP(t, o, 4242, 4, macB, ip4B, ip6B, ModeObserve, FlagGuard)
	tab, err := o.ReadFlows()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tab.Flows {
		if f.Slot == 4 {
			t.Errorf("slot 4 kept a flow after ZeroCounters: %s", fmtID(idOf(f)))
		}
	}
	if s := tab.Slots[4]; s != (FlowSlotStats{}) {
		t.Errorf("slot 4: %+v, want zero", s)
	}
	g5.check(o)
}

// TestFlowEviction: more flows than the map holds: the oldest are evicted,
// the rest are exact, and the eviction figure is exactly the flows created
// minus those present; nothing fails.
func TestFlowEviction(t *testing.T) {
	o := loadTest(t)
	const slot = 6
	putEP(t, o, loIfindex, slot, macA, ip4A, ip6A, ModeObserve, FlagGuard)
	const n = MaxFlows + 1000
	frame := ip4Pkt(macGW, macA, ip4A, ip4X, protoUDP, udpSeg(0, 53, 10))
	for i := range n {
		binary.BigEndian.PutUint16(frame[14+20:], uint16(i+1)) // source port
		if ret, _ := run(t, o.FromContainer, frame, 1); ret != ActNext {
			t.Fatalf("verdict %d", int32(ret))
		}
	}
	tab, err := o.ReadFlows()
	if err != nil {
		t.Fatal(err)
	}
	s := tab.Slots[slot]
	t.Logf("created %d, present %d, evicted %d (map holds %d)", s.Created, s.Present, s.Evicted, MaxFlows)
	if s.Created != n {
		t.Errorf("created %d, want %d", s.Created, n)
	}
	if s.Present > MaxFlows || s.Present != uint64(len(tab.Flows)) {
		t.Errorf("present %d, %d flows listed, map holds %d", s.Present, len(tab.Flows), MaxFlows)
	}
	if s.Evicted != n-s.Present || s.Evicted < n-MaxFlows || tab.Evicted != s.Evicted {
		t.Errorf("evicted %d (table %d), want %d = created - present, at least %d", s.Evicted, tab.Evicted, n-s.Present, n-MaxFlows)
	}
	if tab.Errors != 0 {
		t.Errorf("%d flow errors", tab.Errors)
	}
	for _, f := range tab.Flows {
		if f.Packets != 1 || f.Bytes != uint64(len(frame)) || f.DstPort != 53 {
			t.Fatalf("flow %s: %d packets, %d bytes", fmtID(idOf(f)), f.Packets, f.Bytes)
		}
	}
	// The most recent flow is never the one evicted.
	last := flowID{slot, DirTX, 4, protoUDP, addr(ip4A), addr(ip4X), uint16(n), 53}
	found := false
	for _, f := range tab.Flows {
		found = found || idOf(f) == last
	}
	if !found {
		t.Errorf("the last flow created was evicted")
	}
}

// TestOldPins: a pin directory made by an nswire without flow maps (only
// endpoints, endpoints_by_ip and ep_counters) can be read by OpenMaps
// (flows: ErrNoFlowMaps), and Load adopts its maps, endpoint records
// included, and adds the new ones.
func TestOldPins(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testPinDir(t)
	o1, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	putEP(t, o1, loIfindex, 7, macA, ip4A, nil, ModeObserve, FlagGuard)
	for name := range mapSpecs {
		if name != DatapathMapEndpoints && name != DatapathMapEndpointsByIp && name != DatapathMapEpCounters {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	o1.Close()

	r, err := OpenMaps(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.ReadFlows(); !errors.Is(err, ErrNoFlowMaps) {
		t.Errorf("ReadFlows on old pins: %v, want ErrNoFlowMaps", err)
	}
	if _, err := r.NewDropReader(); !errors.Is(err, ErrNoFlowMaps) {
		t.Errorf("NewDropReader on old pins: %v, want ErrNoFlowMaps", err)
	}
	if _, err := r.ReadAllCounters(); err != nil {
		t.Errorf("ReadAllCounters on old pins: %v", err)
	}

	o2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	if _, err := o2.Endpoint(loIfindex); err != nil {
		t.Errorf("endpoint record lost: %v", err)
	}
	g := newFlowGen(t)
	g.send(o2, DirTX, ip4Pkt(macGW, macA, ip4A, ip4X, protoUDP, udpSeg(1, 2, 3)), 2, ActNext,
		flowID{7, DirTX, 4, protoUDP, addr(ip4A), addr(ip4X), 1, 2})
	g.check(o2)
	entries, _ := os.ReadDir(dir)
	if len(entries) != numPins {
		t.Errorf("pin dir holds %d entries, want %d", len(entries), numPins)
	}
}

// helperEnv names the pin directory for TestHelperReadPins, which runs as a
// second process.
const helperEnv = "NSWIRE_TEST_READ_PINS"

type helperOut struct {
	Flows  []Flow
	Slots  map[uint32]FlowSlotStats
	Events []DropEvent
	Stats  Stats
}

// TestHelperReadPins is not a test: TestSecondProcessReads runs it in a
// child process to read a running datapath's flows and drop events from
// its pins, printing them as JSON.
func TestHelperReadPins(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper for TestSecondProcessReads")
	}
	o, err := OpenMaps(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	tab, err := o.ReadFlows()
	if err != nil {
		t.Fatal(err)
	}
	out := helperOut{Flows: tab.Flows, Slots: tab.Slots}
	rd, err := o.NewDropReader()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	rd.SetDeadline(time.Now().Add(time.Second))
	for {
		e, err := rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out.Events = append(out.Events, e)
	}
	if out.Stats, err = o.ReadStats(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(out)
	fmt.Printf("HELPER-OUT %s\n", b)
}

// TestSecondProcessReads: a fresh process that opens only the pins reads
// the flows and the drop events of the running datapath.
func TestSecondProcessReads(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testPinDir(t)
	o, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	const slot = 8
	putEP(t, o, loIfindex, slot, macA, ip4A, ip6A, ModeObserve, FlagGuard)
	g := newFlowGen(t)
	knownTraffic(g, o, slot)
	spoof := ip4Pkt(macGW, macA, ip4X, ip4B, protoUDP, udpSeg(666, 53, 0))
	if ret, _ := run(t, o.FromContainer, spoof, 2); ret != ActShot {
		t.Fatalf("verdict %d, want shot", int32(ret))
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperReadPins$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, b)
	}
	var out helperOut
	for _, line := range strings.Split(string(b), "\n") {
		if j, ok := strings.CutPrefix(line, "HELPER-OUT "); ok {
			if err := json.Unmarshal([]byte(j), &out); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := map[flowID]flowVal{}
	for _, f := range out.Flows {
		got[idOf(f)] = flowVal{f.Packets, f.Bytes, f.TCPFlags}
	}
	if len(got) != len(g.want) {
		t.Errorf("second process read %d flows, want %d", len(got), len(g.want))
	}
	for id, w := range g.want {
		if got[id] != w {
			t.Errorf("flow %s: second process read %+v, want %+v", fmtID(id), got[id], w)
		}
	}
	if s := out.Slots[slot]; s.Created != uint64(len(g.want)) || s.Evicted != 0 {
		t.Errorf("slot stats %+v", s)
	}
	if len(out.Events) != 2 || out.Stats.EventsSent != 2 {
		t.Fatalf("second process read %d events (stats %+v), want 2", len(out.Events), out.Stats)
	}
	for _, e := range out.Events {
		if e.Reason != DropSrcIP4 || e.Src != addr(ip4X) || e.Dst != addr(ip4B) || e.SrcPort != 666 || e.DstPort != 53 || e.Slot != slot {
			t.Errorf("event %+v", e)
		}
	}
}

// BenchmarkFlowCost measures what flow accounting adds per packet in
// observe mode with the guard on: a program on one endpoint, with flows on
// and off (FlagNoFlows), in alternating rounds of b.N runs so that load
// changes hit both alike. It reports the medians of the kernel's own
// per-run time with flows (flows-kns/op), without (noflows-kns/op) and of
// the paired differences (delta-kns/op): from_container with a 60-byte TCP
// ACK over IPv4 and a 66-byte UDP packet over IPv6, to_container with a TCP
// ACK; each packet of a flow that exists already.
func BenchmarkFlowCost(b *testing.B) {
	for _, tc := range []struct {
		name  string
		prog  func(*Objects) *ebpf.Program
		frame []byte
	}{
		{"from/ipv4-tcp", fromContainer, ip4Pkt(macB, macA, ip4A, ip4B, protoTCP, tcpSeg(40000, 80, tcpACK, 6))},
		{"from/ipv6-udp", fromContainer, ip6Pkt(macB, macA, ip6A, ip6B, protoUDP, udpSeg(40000, 53, 4))},
		{"to/ipv4-tcp", toContainer, ip4Pkt(macA, macB, ip4B, ip4A, protoTCP, tcpSeg(80, 40000, tcpACK, 6))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			o := loadTest(b)
			putEP(b, o, loIfindex, 0, macA, ip4A, ip6A, ModeObserve, FlagGuard)
			const rounds = 9
			var with, without, delta []float64
			for range rounds {
				var d [2]float64
				for i, on := range []bool{true, false} {
					if err := o.SetFlows(loIfindex, on); err != nil {
						b.Fatal(err)
					}
					ret, dur, err := tc.prog(o).Benchmark(tc.frame, b.N, nil)
					if err != nil {
						b.Fatal(err)
					}
					if ret != ActNext {
						b.Fatalf("verdict %d", int32(ret))
					}
					d[i] = float64(dur.Nanoseconds())
				}
				with, without, delta = append(with, d[0]), append(without, d[1]), append(delta, d[0]-d[1])
			}
			b.ReportMetric(median(with), "flows-kns/op")
			b.ReportMetric(median(without), "noflows-kns/op")
			b.ReportMetric(median(delta), "delta-kns/op")
		})
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// BenchmarkZeroCountersFullFlows: what deleting a slot's flows adds to
// ZeroCounters (so to an attach) when both flow maps are full of other
// endpoints' flows: one walk over each map.
func BenchmarkZeroCountersFullFlows(b *testing.B) {
	o := loadTest(b)
	putEP(b, o, loIfindex, 1, macA, ip4A, ip6A, ModeObserve, 0)
	f4 := ip4Pkt(macGW, macA, ip4A, ip4X, protoUDP, udpSeg(0, 53, 0))
	f6 := ip6Pkt(macGW, macA, ip6A, ip6X, protoUDP, udpSeg(0, 53, 0))
	for i := range MaxFlows {
		binary.BigEndian.PutUint16(f4[14+20:], uint16(i))
		binary.BigEndian.PutUint16(f6[14+40:], uint16(i))
		run(b, o.FromContainer, f4, 1)
		run(b, o.FromContainer, f6, 1)
	}
	for b.Loop() {
		if err := o.ZeroCounters(2); err != nil {
			b.Fatal(err)
		}
	}
}
