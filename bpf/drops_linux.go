//go:build linux

package bpf

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

const (
	// DropEventsRingSize is the size in bytes of the drop_events ring
	// buffer: room for 3640 events of 72 bytes (64 and the ring's header).
	DropEventsRingSize = 256 * 1024
	// DefaultDropEventsPerSec is the kernel's default rate limit of drop
	// events, per CPU, with bursts of as many (one second's worth).
	DefaultDropEventsPerSec = 1000
	// DropEventsUnlimited as the rate turns the limit off.
	DropEventsUnlimited = ^uint32(0)
)

// DropEvent is one packet the guard dropped, as read from the drop_events
// ring buffer.
type DropEvent struct {
	// Time is the kernel's CLOCK_MONOTONIC time of the drop (Ktime),
	// converted to wall-clock time.
	Time    time.Time
	Ktime   uint64
	Slot    uint32 // endpoint slot
	Ifindex uint32 // host veth ifindex
	Reason  int    // DropSrcMAC …
	// Family is 4 or 6, or 0 when the frame is not IP.
	Family    int
	EtherType uint16
	// Proto is the IP protocol (after IPv6 extension headers), as in Flow.
	Proto uint8
	// Src and Dst are the packet's IP addresses; for ARP the sender and
	// target protocol addresses. The zero Addr when absent or truncated.
	Src, Dst netip.Addr
	// SrcPort and DstPort are as in Flow (ICMP/ICMPv6: type and code); for
	// ARP SrcPort is the opcode.
	SrcPort, DstPort uint16
	SrcMAC           net.HardwareAddr // the frame's source MAC
}

// ICMP reports whether the packet is ICMP or ICMPv6, whose type and code
// are SrcPort and DstPort.
func (e DropEvent) ICMP() bool {
	return (e.Family == 4 && e.Proto == 1) || (e.Family == 6 && e.Proto == 58)
}

// DropReader reads drop events from the pinned ring buffer. The ring has
// one consumer position: with two readers open, each event goes to one of
// them. Events wait in the ring until read, so a reader opened late first
// gets the oldest ones still there (see DropEvent.Time); while the ring is
// full, new drops are counted in Stats.EventsRingbufFull instead.
type DropReader struct {
	rd  *ringbuf.Reader
	clk monoClock
	rec ringbuf.Record
}

// NewDropReader opens a reader on the drop_events ring buffer. Returns an
// error wrapping ErrNoFlowMaps if the pinned datapath has none.
func (o *Objects) NewDropReader() (*DropReader, error) {
	if o.DropEvents == nil {
		return nil, fmt.Errorf("read drop events: %w", ErrNoFlowMaps)
	}
	clk, err := newMonoClock()
	if err != nil {
		return nil, fmt.Errorf("read drop events: %w", err)
	}
	rd, err := ringbuf.NewReader(o.DropEvents)
	if err != nil {
		return nil, fmt.Errorf("read drop events: %w", err)
	}
	return &DropReader{rd: rd, clk: clk}, nil
}

// Read returns the next event, blocking until one arrives, the deadline
// passes (an error wrapping os.ErrDeadlineExceeded) or the reader is closed
// (an error wrapping os.ErrClosed).
func (r *DropReader) Read() (DropEvent, error) {
	if err := r.rd.ReadInto(&r.rec); err != nil {
		return DropEvent{}, fmt.Errorf("read drop event: %w", err)
	}
	var raw DatapathDropEvent
	if len(r.rec.RawSample) < int(unsafe.Sizeof(raw)) {
		return DropEvent{}, fmt.Errorf("read drop event: %d bytes, want %d", len(r.rec.RawSample), unsafe.Sizeof(raw))
	}
	if _, err := binary.Decode(r.rec.RawSample, binary.NativeEndian, &raw); err != nil {
		return DropEvent{}, fmt.Errorf("decode drop event: %w", err)
	}
	return dropEventOf(&raw, r.clk), nil
}

// SetDeadline sets when Read gives up waiting; the zero time waits forever.
func (r *DropReader) SetDeadline(t time.Time) { r.rd.SetDeadline(t) }

// Close releases the reader and interrupts a blocked Read.
func (r *DropReader) Close() error { return r.rd.Close() }

func dropEventOf(e *DatapathDropEvent, clk monoClock) DropEvent {
	out := DropEvent{
		Time: clk.time(e.Ktime), Ktime: e.Ktime, Slot: e.Slot, Ifindex: e.Ifindex,
		Reason: int(e.Reason), Family: int(e.Family), EtherType: e.Ethertype, Proto: e.Proto,
		SrcPort: e.Sport, DstPort: e.Dport,
		SrcMAC: net.HardwareAddr(append([]byte(nil), e.SrcMac[:]...)),
	}
	if e.HasAddrs != 0 {
		family := e.Family
		if family == 0 { // ARP: IPv4 protocol addresses
			family = 4
		}
		out.Src, out.Dst = keyAddr(family, &e.Src), keyAddr(family, &e.Dst)
	}
	return out
}

// Stats are the datapath-wide counters, summed over CPUs.
type Stats struct {
	EventsSent        uint64 // drop events written to the ring buffer
	EventsRateLimited uint64 // drop events not written: over the rate limit
	EventsRingbufFull uint64 // drop events not written: the ring buffer was full
	FlowErrors        uint64 // packets whose flow entry could not be created
}

// EventsLost is the number of drops that produced no event.
func (s Stats) EventsLost() uint64 { return s.EventsRateLimited + s.EventsRingbufFull }

// ReadStats returns the datapath-wide counters. Returns an error wrapping
// ErrNoFlowMaps if the pinned datapath has no dp_stats map.
func (o *Objects) ReadStats() (Stats, error) {
	if o.DpStats == nil {
		return Stats{}, fmt.Errorf("read datapath stats: %w", ErrNoFlowMaps)
	}
	var per []DatapathStats
	if err := o.DpStats.Lookup(uint32(0), &per); err != nil {
		return Stats{}, fmt.Errorf("read datapath stats: %w", err)
	}
	var s Stats
	for _, p := range per {
		s.EventsSent += p.EventsSent
		s.EventsRateLimited += p.EventsRatelimited
		s.EventsRingbufFull += p.EventsRingbufFull
		s.FlowErrors += p.FlowErrors
	}
	return s, nil
}

// SetDropEventRate sets the kernel's rate limit of drop events: perSec
// events per second per CPU (0: DefaultDropEventsPerSec;
// DropEventsUnlimited: no limit), in bursts of up to burst (0: perSec).
// It applies to the running datapath at once.
func (o *Objects) SetDropEventRate(perSec, burst uint32) error {
	if o.DpConfig == nil {
		return fmt.Errorf("set drop event rate: %w", ErrNoFlowMaps)
	}
	cfg := DatapathConfig{DropEventsPerSec: perSec, DropEventsBurst: burst}
	if err := o.DpConfig.Update(uint32(0), &cfg, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set drop event rate: %w", err)
	}
	return nil
}

// DropEventRate returns the rate limit as SetDropEventRate set it (zeros
// mean the defaults).
func (o *Objects) DropEventRate() (perSec, burst uint32, err error) {
	if o.DpConfig == nil {
		return 0, 0, fmt.Errorf("drop event rate: %w", ErrNoFlowMaps)
	}
	var cfg DatapathConfig
	if err := o.DpConfig.Lookup(uint32(0), &cfg); err != nil {
		return 0, 0, fmt.Errorf("drop event rate: %w", err)
	}
	return cfg.DropEventsPerSec, cfg.DropEventsBurst, nil
}

// String formats e on one line (for logs and tests).
func (e DropEvent) String() string {
	return fmt.Sprintf("slot %d ifindex %d reason %d family %d ethertype %#04x proto %d %s:%d > %s:%d mac %s",
		e.Slot, e.Ifindex, e.Reason, e.Family, e.EtherType, e.Proto, e.Src, e.SrcPort, e.Dst, e.DstPort, e.SrcMAC)
}
