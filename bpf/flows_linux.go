//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// MaxFlows is the capacity of each of the flows4 and flows6 maps (LRU maps:
// when one is full, creating a flow evicts its least recently used one).
const MaxFlows = 32768

type (
	// FlowKey4 is the key of the flows4 map.
	FlowKey4 = DatapathFlowKey4
	// FlowKey6 is the key of the flows6 map.
	FlowKey6 = DatapathFlowKey6
	// FlowStats is the value of the flows4 and flows6 maps.
	FlowStats = DatapathFlowStats
)

// ErrNoFlowMaps is wrapped by the flow and drop-event readers when the
// datapath was pinned by an nswire without flow accounting (its maps lack
// flows4, flows6, ep_counters_ext, drop_events, dp_stats or dp_config).
// Load adds them.
var ErrNoFlowMaps = errors.New("datapath pinned by an older nswire: no flow or drop-event maps (attach anything with this version to add them)")

// Flow is one flow of one endpoint in one direction: what the flows4 and
// flows6 maps hold, in Go types. Only IP packets with a complete IP header
// are flows; other frames (ARP, LLDP …) are in the endpoint's Counters only.
type Flow struct {
	Slot   uint32 // endpoint slot
	Dir    int    // DirRX (towards the container) or DirTX (sent by it)
	Family int    // 4 or 6
	// Proto is the IP protocol of the upper-layer header, after IPv6
	// extension headers (0 when the IPv6 header chain could not be
	// followed).
	Proto uint8
	// Src and Dst are the packet's addresses (for DirTX Src is the
	// container's, for DirRX Dst is).
	Src, Dst netip.Addr
	// SrcPort and DstPort are the TCP/UDP ports; for ICMP and ICMPv6 the
	// type and the code. Zero for other protocols, for IP fragments after
	// the first, and when the header is truncated.
	SrcPort, DstPort uint16
	Packets, Bytes   uint64 // bytes include the Ethernet header, as Counters
	// FirstSeen and LastSeen are the kernel's coarse CLOCK_MONOTONIC times
	// (as of the last timer tick, so 1–10 ms early) of the first and the
	// last packet, converted to wall-clock time.
	FirstSeen, LastSeen time.Time
	// TCPFlags is the OR of the TCP flags seen (FIN 0x01 … CWR 0x80).
	TCPFlags uint8
}

// ICMP reports whether the flow is ICMP (IPv4) or ICMPv6, whose SrcPort and
// DstPort hold the type and the code.
func (f Flow) ICMP() bool {
	return (f.Family == 4 && f.Proto == 1) || (f.Family == 6 && f.Proto == 58)
}

// FlowSlotStats is the flow bookkeeping of one endpoint.
type FlowSlotStats struct {
	Created uint64 // flow entries the endpoint created since its counters were zeroed
	Present uint64 // of these, still in the map
	// Evicted = Created - Present: entries the LRU map evicted to make room
	// (the kernel evicts silently; user space never deletes a live
	// endpoint's flows). Exact when no packet arrives during the read; while
	// flows are being created it can lag by the ones created meanwhile
	// (never negative).
	Evicted uint64
}

// FlowTable is one read of the flows4 and flows6 maps.
type FlowTable struct {
	// Flows of the endpoints that have a record (slots of detached
	// endpoints are left out), in map order.
	Flows []Flow
	// Slots holds the bookkeeping of every endpoint with a record.
	Slots map[uint32]FlowSlotStats
	// Evicted is the sum of Slots[*].Evicted.
	Evicted uint64
	// Errors counts packets whose flow entry could not be created (the
	// kernel refused the LRU update); their packets are in the counters but
	// in no flow.
	Errors uint64
	// Capacity is the size of each of the IPv4 and IPv6 flow maps
	// (MaxFlows).
	Capacity int
}

// monoClock converts the kernel's CLOCK_MONOTONIC nanoseconds
// (bpf_ktime_get_ns) to wall-clock time, against one reading of both clocks.
type monoClock struct {
	wall time.Time
	mono int64
}

func newMonoClock() (monoClock, error) {
	var ts unix.Timespec
	wall := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return monoClock{}, fmt.Errorf("read CLOCK_MONOTONIC: %w", err)
	}
	return monoClock{wall: wall, mono: ts.Nano()}, nil
}

func (c monoClock) time(ktime uint64) time.Time {
	if ktime == 0 {
		return time.Time{}
	}
	return c.wall.Add(time.Duration(int64(ktime) - c.mono))
}

// KtimeToTime converts a bpf_ktime_get_ns value (CLOCK_MONOTONIC ns) to
// wall-clock time, as FlowTable and DropEvent do.
func KtimeToTime(ktime uint64) (time.Time, error) {
	c, err := newMonoClock()
	if err != nil {
		return time.Time{}, err
	}
	return c.time(ktime), nil
}

func keyAddr(family uint8, a *[16]uint8) netip.Addr {
	switch family {
	case 4:
		return netip.AddrFrom4([4]byte(a[:4]))
	case 6:
		return netip.AddrFrom16(*a)
	}
	return netip.Addr{}
}

func flowOf(v *FlowStats, clk monoClock) Flow {
	f := Flow{
		Packets: v.Packets, Bytes: v.Bytes,
		FirstSeen: clk.time(v.FirstSeen), LastSeen: clk.time(v.LastSeen),
	}
	for i, seen := range v.TcpFlags {
		if seen != 0 {
			f.TCPFlags |= 1 << i
		}
	}
	return f
}

func flow4Of(k *FlowKey4, v *FlowStats, clk monoClock) Flow {
	f := flowOf(v, clk)
	f.Slot, f.Dir, f.Family, f.Proto = uint32(k.Slot), int(k.Dir), 4, k.Proto
	f.Src, f.Dst = netip.AddrFrom4(k.Src), netip.AddrFrom4(k.Dst)
	f.SrcPort, f.DstPort = k.Sport, k.Dport
	return f
}

func flow6Of(k *FlowKey6, v *FlowStats, clk monoClock) Flow {
	f := flowOf(v, clk)
	f.Slot, f.Dir, f.Family, f.Proto = uint32(k.Slot), int(k.Dir), 6, k.Proto
	f.Src, f.Dst = netip.AddrFrom16(k.Src), netip.AddrFrom16(k.Dst)
	f.SrcPort, f.DstPort = k.Sport, k.Dport
	return f
}

// flowBatch is how many entries one batch syscall reads.
const flowBatch = 4096

// forEach calls fn for every entry of m: by batch lookups where the kernel
// has them (5.6+), else by iteration. An entry that changes during the walk
// may be seen with either value; one created or evicted during it may be
// missed.
func forEach[K comparable](m *ebpf.Map, fn func(*K, *FlowStats)) error {
	keys := make([]K, flowBatch)
	vals := make([]FlowStats, flowBatch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			fn(&keys[i], &vals[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", m, err)
		}
	}
	var (
		k K
		v FlowStats
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		fn(&k, &v)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read %s: %w", m, err)
	}
	return nil
}

// ReadFlows reads every flow of the endpoints that have a record, with the
// eviction figure of each. It reads the endpoints' records and their
// flows created first, then the flows4 and flows6 maps in batches of 4096
// entries. Returns an error wrapping ErrNoFlowMaps if the pinned datapath
// has no flow maps.
func (o *Objects) ReadFlows() (*FlowTable, error) {
	if o.Flows4 == nil || o.Flows6 == nil || o.EpCountersExt == nil || o.DpStats == nil {
		return nil, fmt.Errorf("read flows: %w", ErrNoFlowMaps)
	}
	slots, err := o.usedSlots()
	if err != nil {
		return nil, fmt.Errorf("read flows: %w", err)
	}
	n := 0
	for s := range slots {
		n = max(n, int(s)+1)
	}
	ext, err := o.readExt(n)
	if err != nil {
		return nil, fmt.Errorf("read flows: %w", err)
	}
	clk, err := newMonoClock()
	if err != nil {
		return nil, fmt.Errorf("read flows: %w", err)
	}
	t := &FlowTable{Slots: make(map[uint32]FlowSlotStats, len(slots)), Capacity: MaxFlows}
	for slot := range slots {
		t.Slots[slot] = FlowSlotStats{Created: ext[slot].FlowsCreated}
	}
	add := func(f Flow) {
		s, ok := t.Slots[f.Slot]
		if !ok {
			return
		}
		s.Present++
		t.Slots[f.Slot] = s
		t.Flows = append(t.Flows, f)
	}
	// A batch walk that races with updates of a bucket can return an entry
	// twice; keep the first.
	seen4 := make(map[FlowKey4]struct{})
	err = forEach(o.Flows4, func(k *FlowKey4, v *FlowStats) {
		if _, dup := seen4[*k]; !dup {
			seen4[*k] = struct{}{}
			add(flow4Of(k, v, clk))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read flows: %w", err)
	}
	seen6 := make(map[FlowKey6]struct{})
	err = forEach(o.Flows6, func(k *FlowKey6, v *FlowStats) {
		if _, dup := seen6[*k]; !dup {
			seen6[*k] = struct{}{}
			add(flow6Of(k, v, clk))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read flows: %w", err)
	}
	for slot, s := range t.Slots {
		if s.Created > s.Present {
			s.Evicted = s.Created - s.Present
		}
		t.Slots[slot] = s
		t.Evicted += s.Evicted
	}
	st, err := o.ReadStats()
	if err != nil {
		return nil, fmt.Errorf("read flows: %w", err)
	}
	t.Errors = st.FlowErrors
	return t, nil
}

// deleteFlows deletes every flow of slot.
func (o *Objects) deleteFlows(slot uint32) error {
	var stale4 []FlowKey4
	var stale6 []FlowKey6
	err := forEach(o.Flows4, func(k *FlowKey4, _ *FlowStats) {
		if uint32(k.Slot) == slot {
			stale4 = append(stale4, *k)
		}
	})
	if err != nil {
		return err
	}
	err = forEach(o.Flows6, func(k *FlowKey6, _ *FlowStats) {
		if uint32(k.Slot) == slot {
			stale6 = append(stale6, *k)
		}
	})
	if err != nil {
		return err
	}
	return errors.Join(deleteKeys(o.Flows4, stale4), deleteKeys(o.Flows6, stale6))
}

// deleteKeys deletes keys from m; keys that are gone already (the LRU
// evicted them) are no error.
func deleteKeys[K any](m *ebpf.Map, keys []K) error {
	for len(keys) > 0 {
		n, err := m.BatchDelete(keys, nil)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ebpf.ErrKeyNotExist) && n < len(keys):
			keys = keys[n+1:] // keys[n] is gone
		case errors.Is(err, ebpf.ErrNotSupported):
			for i := range keys {
				if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
					return fmt.Errorf("delete flows: %w", err)
				}
			}
			return nil
		default:
			return fmt.Errorf("delete flows: %w", err)
		}
	}
	return nil
}
