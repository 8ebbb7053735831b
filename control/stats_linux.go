package control

import (
	"net/netip"
	"time"

	"github.com/nswire/nswire/control/state"

	"github.com/nswire/nswire/bpf"
)

// Flow is a packet and byte count. Bytes include the 14-byte Ethernet header
// and exclude the FCS, as the kernel's interface counters count them.
type Flow struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Rate is a per-second rate over the interval between two snapshots.
type Rate struct {
	PacketsPerSec float64 `json:"packetsPerSec"`
	BytesPerSec   float64 `json:"bytesPerSec"`
}

// EndpointStats are one attached target's counters at one moment.
type EndpointStats struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	HostIf     string            `json:"hostIf"`
	Address    string            `json:"address"`
	Address6   string            `json:"address6,omitempty"` // dual stack: the IPv6 address with its prefix
	Mode       string            `json:"mode"`
	Bridge     string            `json:"bridge,omitempty"`
	CNI        *state.CNIInfo    `json:"cni,omitempty"`    // for a CNI attachment: the runtime's container and pod
	State      RecordState       `json:"state"`            // live, restarted, stopped, gone, broken, damaged
	Reason     string            `json:"reason,omitempty"` // why it is not live, or not counted
	Counted    bool              `json:"counted"`          // false in mode off and when the record is not live: no current counters
	RX         Flow              `json:"rx"`               // towards the container
	TX         Flow              `json:"tx"`               // sent by the container
	RXByProto  map[string]Flow   `json:"rxByProto,omitempty"`
	TXByProto  map[string]Flow   `json:"txByProto,omitempty"`
	Drops      map[string]uint64 `json:"drops,omitempty"`
	Fastpathed Flow              `json:"fastpathed"` // sent by this container past the bridge
	RXRate     *Rate             `json:"rxRate,omitempty"`
	TXRate     *Rate             `json:"txRate,omitempty"`
	Time       time.Time         `json:"time"`
}

// DropReasons names bpf's drop reasons, in index order.
var DropReasons = [bpf.NumDropReason]string{
	bpf.DropSrcMAC:   "src-mac",
	bpf.DropSrcIP4:   "src-ipv4",
	bpf.DropSrcIP6:   "src-ipv6",
	bpf.DropARPSpoof: "arp-spoof",
	// Rogue-router guard (ICMPv6 router advertisement, redirect, an IPv6
	// header chain it cannot follow).
	bpf.DropRA:          "router-advert",
	bpf.DropRedirect:    "redirect",
	bpf.DropIP6Unparsed: "ipv6-unparsed",
	// Neighbour discovery for an address or MAC not the container's.
	bpf.DropNDSpoof: "nd-spoof",
}

var l3Names = [...]string{bpf.L3IPv4: "ipv4", bpf.L3IPv6: "ipv6", bpf.L3Other: "other"}
var l4Names = [...]string{bpf.L4TCP: "tcp", bpf.L4UDP: "udp", bpf.L4ICMP: "icmp", bpf.L4Other: "other"}

// ProtoKey names a counter bucket: "ipv4/tcp", "ipv6/icmp", "other" (non-IP).
func ProtoKey(l3, l4 int) string {
	if l3 == bpf.L3Other {
		return "other"
	}
	return l3Names[l3] + "/" + l4Names[l4]
}

// statsFrom turns a record and its (summed) counters into EndpointStats.
func statsFrom(r *state.Record, c *bpf.Counters, now time.Time) EndpointStats {
	s := EndpointStats{Name: r.DisplayName(), ID: r.ID, HostIf: r.HostIf, Address: prefixString(r.Address), Address6: prefixString(r.Address6), Mode: string(r.Mode), Bridge: r.Bridge, CNI: r.CNI, State: StateLive, Time: now}
	if c == nil {
		return s
	}
	s.Counted = true
	s.RXByProto, s.TXByProto, s.Drops = map[string]Flow{}, map[string]Flow{}, map[string]uint64{}
	for dir, by := range []map[string]Flow{bpf.DirRX: s.RXByProto, bpf.DirTX: s.TXByProto} {
		for l3 := range c.V[dir] {
			for l4 := range c.V[dir][l3] {
				v := c.V[dir][l3][l4]
				if v.Packets == 0 {
					continue
				}
				k := ProtoKey(l3, l4)
				f := by[k]
				f.Packets += v.Packets
				f.Bytes += v.Bytes
				by[k] = f
			}
		}
	}
	s.RX.Packets, s.RX.Bytes = c.Total(bpf.DirRX)
	s.TX.Packets, s.TX.Bytes = c.Total(bpf.DirTX)
	for i, n := range c.Drops {
		if n > 0 {
			s.Drops[DropReasons[i]] = n
		}
	}
	s.Fastpathed = Flow{Packets: c.FastpathPackets, Bytes: c.FastpathBytes}
	return s
}

// WithRates fills the rates of cur from prev (the same endpoints earlier).
// A counter that went backwards (the endpoint was re-attached) gives no rate.
func WithRates(prev, cur []EndpointStats) []EndpointStats {
	old := map[string]EndpointStats{}
	for _, p := range prev {
		old[p.ID] = p
	}
	for i := range cur {
		p, ok := old[cur[i].ID]
		dt := cur[i].Time.Sub(p.Time).Seconds()
		if !ok || !cur[i].Counted || !p.Counted || dt <= 0 {
			continue
		}
		cur[i].RXRate = rate(p.RX, cur[i].RX, dt)
		cur[i].TXRate = rate(p.TX, cur[i].TX, dt)
	}
	return cur
}

func rate(a, b Flow, dt float64) *Rate {
	if b.Packets < a.Packets || b.Bytes < a.Bytes {
		return nil
	}
	return &Rate{PacketsPerSec: float64(b.Packets-a.Packets) / dt, BytesPerSec: float64(b.Bytes-a.Bytes) / dt}
}

// prefixString is p in CIDR form, or "" when there is none.
func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}
