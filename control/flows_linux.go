package control

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nswire/nswire/bpf"
	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/state"
)

// FlowRow is one flow of one attached target, in one direction, as the
// eBPF programs on its host veth counted it: every packet, also those the
// fast path redirected past the bridge.
type FlowRow struct {
	Name      string     `json:"name"` // the target (container) the flow belongs to
	ID        string     `json:"id"`
	Direction string     `json:"direction"` // "tx": sent by the target; "rx": towards it
	Proto     string     `json:"proto"`     // tcp, udp, icmp, icmpv6, or "proto N"
	Local     netip.Addr `json:"local"`     // the target's address
	LocalPort uint16     `json:"localPort,omitempty"`
	Peer      netip.Addr `json:"peer"`
	PeerPort  uint16     `json:"peerPort,omitempty"`
	// ICMPType and ICMPCode are set for ICMP and ICMPv6 flows (the ports
	// are then zero).
	ICMPType *uint8 `json:"icmpType,omitempty"`
	ICMPCode *uint8 `json:"icmpCode,omitempty"`
	// PeerName is the peer's name where the peer is another nswire target or
	// a Docker container.
	PeerName  string    `json:"peerName,omitempty"`
	Packets   uint64    `json:"packets"`
	Bytes     uint64    `json:"bytes"` // Ethernet header included, as the counters
	TCPFlags  string    `json:"tcpFlags,omitempty"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
	Rate      *Rate     `json:"rate,omitempty"` // with a previous read (WithFlowRates)
	key       flowKey
}

// flowKey identifies a flow between two reads.
type flowKey struct {
	slot             uint32
	dir              int
	proto            uint8
	src, dst         netip.Addr
	srcPort, dstPort uint16
}

// FlowReport is one read of the flows of the selected targets.
type FlowReport struct {
	Flows []FlowRow `json:"flows"`
	// Evicted counts the flows of the selected targets that the kernel's
	// LRU maps dropped to make room (their packets stay in the counters).
	Evicted uint64 `json:"evicted"`
	// Errors counts packets, of any target, whose flow entry the kernel
	// could not create.
	Errors   uint64    `json:"errors"`
	Capacity int       `json:"capacity"` // flows each of the IPv4 and IPv6 maps holds
	Time     time.Time `json:"time"`
}

// Flows reads the flows of the live targets named by refs (all of them when
// refs is empty), in one read of the flow maps. Targets that are not live
// have none: their flows belong to a namespace that is gone.
func (m *Manager) Flows(ctx context.Context, refs []string) (*FlowReport, error) {
	recs, _, err := m.selectRecords(ctx, refs)
	if err != nil {
		return nil, err
	}
	tr := m.newTruth(ctx, recs)
	bySlot := map[uint32]*state.Record{}
	for _, r := range recs {
		if r.Mode != datapath.Off && tr.status(r).Live() {
			bySlot[r.Slot] = r
		}
	}
	rep := &FlowReport{Flows: []FlowRow{}, Capacity: bpf.MaxFlows, Time: time.Now()}
	if len(bySlot) == 0 {
		return rep, nil
	}
	objs, err := m.dp.objects()
	if err != nil {
		return nil, err
	}
	t, err := objs.ReadFlows()
	if err != nil {
		return nil, err
	}
	rep.Errors, rep.Capacity = t.Errors, t.Capacity
	for slot := range bySlot {
		rep.Evicted += t.Slots[slot].Evicted
	}
	names := m.peerNames(ctx, tr)
	for _, f := range t.Flows {
		r := bySlot[f.Slot]
		if r == nil {
			continue
		}
		rep.Flows = append(rep.Flows, flowRow(r, f, names))
	}
	return rep, nil
}

// flowRow turns a kernel flow into a row seen from the target r.
func flowRow(r *state.Record, f bpf.Flow, names map[netip.Addr]string) FlowRow {
	row := FlowRow{
		Name: r.DisplayName(), ID: r.ID, Direction: "tx", Proto: protoName(f.Family, f.Proto),
		Local: f.Src, LocalPort: f.SrcPort, Peer: f.Dst, PeerPort: f.DstPort,
		Packets: f.Packets, Bytes: f.Bytes, FirstSeen: f.FirstSeen, LastSeen: f.LastSeen,
		key: flowKey{slot: f.Slot, dir: f.Dir, proto: f.Proto, src: f.Src, dst: f.Dst, srcPort: f.SrcPort, dstPort: f.DstPort},
	}
	if f.Dir == bpf.DirRX {
		row.Direction = "rx"
		row.Local, row.LocalPort, row.Peer, row.PeerPort = f.Dst, f.DstPort, f.Src, f.SrcPort
	}
	if f.ICMP() {
		typ, code := uint8(f.SrcPort), uint8(f.DstPort)
		row.ICMPType, row.ICMPCode = &typ, &code
		row.LocalPort, row.PeerPort = 0, 0
	}
	if f.Proto == 6 {
		row.TCPFlags = tcpFlags(f.TCPFlags)
	}
	row.PeerName = names[row.Peer]
	return row
}

// peerNames maps the addresses of nswire's records and of Docker's
// containers to their names.
func (m *Manager) peerNames(ctx context.Context, tr *truth) map[netip.Addr]string {
	names := map[netip.Addr]string{}
	if tr.containers == nil && tr.engineErr == nil {
		if cs, err := m.containersByID(ctx); err == nil {
			tr.containers = cs
		}
	}
	for _, c := range tr.containers {
		if c.Name == "" {
			continue
		}
		for _, n := range c.Networks {
			for _, a := range []netip.Addr{n.IPv4, n.IPv6} {
				if a.IsValid() {
					names[a] = c.Name
				}
			}
		}
	}
	recs, _, _ := m.store.List()
	for _, r := range recs {
		for _, a := range []netip.Prefix{r.Address, r.Address6} {
			if a.IsValid() {
				names[a.Addr()] = r.DisplayName()
			}
		}
	}
	return names
}

func protoName(family int, proto uint8) string {
	switch {
	case proto == 6:
		return "tcp"
	case proto == 17:
		return "udp"
	case proto == 1 && family == 4:
		return "icmp"
	case proto == 58 && family == 6:
		return "icmpv6"
	}
	return "proto " + strconv.Itoa(int(proto))
}

// tcpFlags names the TCP flags in flags, as tcpdump does (S, F, R, P, .
// for ACK, U, E, W).
func tcpFlags(flags uint8) string {
	var b strings.Builder
	for _, f := range []struct {
		bit  uint8
		name byte
	}{{0x02, 'S'}, {0x01, 'F'}, {0x04, 'R'}, {0x08, 'P'}, {0x10, '.'}, {0x20, 'U'}, {0x40, 'E'}, {0x80, 'W'}} {
		if flags&f.bit != 0 {
			b.WriteByte(f.name)
		}
	}
	return b.String()
}

// WithFlowRates sets each flow's rate against the same flow in prev.
func WithFlowRates(prev, cur *FlowReport) {
	if prev == nil {
		return
	}
	dt := cur.Time.Sub(prev.Time).Seconds()
	old := make(map[flowKey]FlowRow, len(prev.Flows))
	for _, f := range prev.Flows {
		old[f.key] = f
	}
	for i := range cur.Flows {
		f := &cur.Flows[i]
		p, ok := old[f.key]
		if !ok {
			p = FlowRow{} // new since the last read: all of it is new
		}
		f.Rate = rate(Flow{Packets: p.Packets, Bytes: p.Bytes}, Flow{Packets: f.Packets, Bytes: f.Bytes}, dt)
	}
}

// FlowSortKeys are the orders SortFlows knows.
var FlowSortKeys = []string{"bytes", "packets", "rate", "last"}

// SortFlows orders flows by key, largest (or latest) first; ties by name,
// then peer.
func SortFlows(flows []FlowRow, key string) error {
	var less func(a, b *FlowRow) bool
	switch key {
	case "bytes":
		less = func(a, b *FlowRow) bool { return a.Bytes > b.Bytes }
	case "packets":
		less = func(a, b *FlowRow) bool { return a.Packets > b.Packets }
	case "rate":
		r := func(f *FlowRow) float64 {
			if f.Rate == nil {
				return 0
			}
			return f.Rate.BytesPerSec
		}
		less = func(a, b *FlowRow) bool { return r(a) > r(b) }
	case "last":
		less = func(a, b *FlowRow) bool { return a.LastSeen.After(b.LastSeen) }
	default:
		return fmt.Errorf("--sort %q is not one of %s", key, strings.Join(FlowSortKeys, ", "))
	}
	sort.SliceStable(flows, func(i, j int) bool {
		a, b := &flows[i], &flows[j]
		if less(a, b) != less(b, a) {
			return less(a, b)
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Peer.Less(b.Peer)
	})
	return nil
}

// DropRow is one packet the spoof guard dropped.
type DropRow struct {
	Time      time.Time  `json:"time"`
	Name      string     `json:"name"` // the target that sent it ("" when its record is gone)
	ID        string     `json:"id,omitempty"`
	HostIf    string     `json:"hostIf,omitempty"`
	Reason    string     `json:"reason"`
	Family    int        `json:"family,omitempty"` // 4 or 6; 0 for ARP and other frames
	EtherType string     `json:"etherType"`
	Proto     string     `json:"proto,omitempty"`
	Src       netip.Addr `json:"src,omitzero"` // for ARP the sender's protocol address
	Dst       netip.Addr `json:"dst,omitzero"`
	SrcPort   uint16     `json:"srcPort,omitempty"` // ICMP: type; ARP: opcode
	DstPort   uint16     `json:"dstPort,omitempty"` // ICMP: code
	SrcMAC    string     `json:"srcMac"`
}

// DropLoss counts the drops that produced no event.
type DropLoss struct {
	Sent        uint64 `json:"sent"`
	RateLimited uint64 `json:"rateLimited"` // over the kernel's rate limit (per CPU)
	RingFull    uint64 `json:"ringFull"`    // the ring buffer was full
}

// Drops reads the guard's drop events of the targets named by refs (all
// when empty) and hands each to emit, until ctx ends or, without follow,
// until no event is waiting. Events of other targets are read and skipped
// (the ring buffer has one reader position). It returns the loss counters at
// the end.
func (m *Manager) Drops(ctx context.Context, refs []string, follow bool, emit func(DropRow) error) (DropLoss, error) {
	recs, _, err := m.selectRecords(ctx, refs)
	if err != nil {
		return DropLoss{}, err
	}
	bySlot := map[uint32]*state.Record{}
	for _, r := range recs {
		bySlot[r.Slot] = r
	}
	objs, err := m.dp.objects()
	if err != nil {
		return DropLoss{}, err
	}
	rd, err := objs.NewDropReader()
	if err != nil {
		return DropLoss{}, err
	}
	defer rd.Close()
	stop := context.AfterFunc(ctx, func() { rd.Close() })
	defer stop()
	for {
		wait := 50 * time.Millisecond
		if follow {
			wait = time.Second
		}
		rd.SetDeadline(time.Now().Add(wait))
		e, err := rd.Read()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if follow && ctx.Err() == nil {
				continue
			}
			return dropLoss(objs)
		case errors.Is(err, os.ErrClosed) || ctx.Err() != nil:
			return dropLoss(objs)
		case err != nil:
			return DropLoss{}, fmt.Errorf("read drop events: %w", err)
		}
		r, ok := bySlot[e.Slot]
		if !ok && len(refs) > 0 {
			continue
		}
		row := dropRow(e, r)
		if err := emit(row); err != nil {
			return DropLoss{}, err
		}
	}
}

func dropLoss(objs *bpf.Objects) (DropLoss, error) {
	s, err := objs.ReadStats()
	if err != nil {
		return DropLoss{}, err
	}
	return DropLoss{Sent: s.EventsSent, RateLimited: s.EventsRateLimited, RingFull: s.EventsRingbufFull}, nil
}

func dropRow(e bpf.DropEvent, r *state.Record) DropRow {
	row := DropRow{
		Time: e.Time, Family: e.Family, EtherType: fmt.Sprintf("%#04x", e.EtherType),
		Src: e.Src, Dst: e.Dst, SrcPort: e.SrcPort, DstPort: e.DstPort, SrcMAC: e.SrcMAC.String(),
	}
	if e.Reason >= 0 && e.Reason < len(DropReasons) {
		row.Reason = DropReasons[e.Reason]
	} else {
		row.Reason = "reason " + strconv.Itoa(e.Reason)
	}
	if e.Family != 0 {
		row.Proto = protoName(e.Family, e.Proto)
	} else if e.EtherType == 0x0806 {
		row.Proto = "arp"
	}
	if r != nil {
		row.Name, row.ID, row.HostIf = r.DisplayName(), r.ID, r.HostIf
	}
	return row
}

// FlowTotals are the datapath-wide figures of flow accounting and drop
// events, for Prometheus (no per-flow series).
type FlowTotals struct {
	Evicted uint64 // flows the LRU maps dropped, over the endpoints with a record
	Errors  uint64 // packets whose flow entry could not be created
	Drops   DropLoss
}

// FlowTotals reads the flow and drop-event counters of the running datapath.
// Returns an error wrapping bpf.ErrNoFlowMaps when it predates them.
func (m *Manager) FlowTotals() (FlowTotals, error) {
	objs, err := m.dp.objects()
	if err != nil {
		return FlowTotals{}, err
	}
	t, err := objs.ReadFlows()
	if err != nil {
		return FlowTotals{}, err
	}
	loss, err := dropLoss(objs)
	if err != nil {
		return FlowTotals{}, err
	}
	return FlowTotals{Evicted: t.Evicted, Errors: t.Errors, Drops: loss}, nil
}
