//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// DefaultPinDir is where nswire pins its maps and per-endpoint links.
const DefaultPinDir = "/sys/fs/bpf/nswire"

// Endpoint modes, as stored in Endpoint.Mode (enum mode in datapath.c).
const (
	// ModeOff is never written to the map: an endpoint in mode off has no
	// program attached and no map entry.
	ModeOff      uint8 = 0
	ModeObserve  uint8 = 1
	ModeFastpath uint8 = 2
)

// Endpoint flags, as stored in Endpoint.Flags (enum endpoint_flag).
const (
	// FlagGuard turns on the spoof guard (source MAC, IPv4, IPv6, ARP) and
	// the rogue-router guard (ICMPv6 router advertisements and redirects).
	FlagGuard uint8 = 1
	// FlagNoFlows turns per-flow accounting off for the endpoint (its
	// counters stay on). Flows are counted by default.
	FlagNoFlows uint8 = 2
)

// Indexes into Counters.V (enum dir, enum l3, enum l4 in datapath.c).
const (
	DirRX = 0 // towards the container
	DirTX = 1 // sent by the container

	L3IPv4  = 0
	L3IPv6  = 1
	L3Other = 2 // ARP, runts, unknown ethertypes

	L4TCP   = 0
	L4UDP   = 1
	L4ICMP  = 2 // ICMP for IPv4, ICMPv6 for IPv6
	L4Other = 3 // anything else, and truncated IP headers
)

// Indexes into Counters.Drops and values of DropEvent.Reason (enum
// drop_reason).
const (
	DropSrcMAC   = 0 // source MAC is not the endpoint's
	DropSrcIP4   = 1 // IPv4 source is not the endpoint's (0.0.0.0 passes)
	DropSrcIP6   = 2 // IPv6 source is neither the endpoint's nor its EUI-64 link-local; or :: on anything but DAD and MLD
	DropARPSpoof = 3 // ARP sender MAC or IP is not the endpoint's
	DropRA       = 4 // ICMPv6 router advertisement (type 134)
	DropRedirect = 5 // ICMPv6 redirect (type 137)
	// DropIP6Unparsed: an IPv6 packet whose extension headers are truncated
	// or more than the guard follows (8), or an ICMPv6 header too short
	// to hold its type and code, so it cannot be told from a router
	// advertisement or redirect.
	DropIP6Unparsed = 6
	// DropNDSpoof: a neighbour advertisement for an address not the
	// endpoint's, a duplicate-address probe for one not its own, or a
	// link-layer address option with another MAC (or a neighbour
	// discovery message too short, or with too many options, to check).
	DropNDSpoof   = 7
	NumDropReason = 8

	// numBaseDrops reasons are counted in ep_counters, the others in
	// ep_counters_ext (whose Drops array holds maxDropReasons).
	numBaseDrops   = 4
	maxDropReasons = 16
)

// MaxEndpoints is the size of the endpoint and counter maps; slots are
// 0 … MaxEndpoints-1.
const MaxEndpoints = 4096

// Return codes of the programs (tcx and cls_bpf direct-action share them).
const (
	ActNext     = ^uint32(0) // TC_ACT_UNSPEC / TCX_NEXT, as prog.Run reports -1
	ActShot     = 2
	ActRedirect = 7
)

type (
	// Endpoint is the record keyed by host veth ifindex in the endpoints map.
	Endpoint = DatapathEndpoint
	// Counter is one packets/bytes pair. Bytes include the Ethernet header.
	Counter = DatapathCounter
	// IPKey is the key of the endpoints_by_ip map.
	IPKey = DatapathIpKey
)

// Counters are one endpoint's counters, summed over CPUs, from its
// ep_counters and ep_counters_ext entries.
type Counters struct {
	// V[dir][l3][l4]: packets and bytes by direction and protocol.
	V [2][3][4]Counter
	// Drops by reason (DropSrcMAC …). Dropped packets are counted here
	// only, never in V.
	Drops [NumDropReason]uint64
	// Packets and bytes this endpoint sent through the fast path (also in
	// its tx and the receiver's rx buckets).
	FastpathPackets uint64
	FastpathBytes   uint64
}

// add adds one CPU's ep_counters value to c.
func (c *Counters) add(o *DatapathCounters) {
	for d := range c.V {
		for l3 := range c.V[d] {
			for l4 := range c.V[d][l3] {
				c.V[d][l3][l4].Packets += o.V[d][l3][l4].Packets
				c.V[d][l3][l4].Bytes += o.V[d][l3][l4].Bytes
			}
		}
	}
	for i := range o.Drops {
		c.Drops[i] += o.Drops[i]
	}
	c.FastpathPackets += o.FastpathPackets
	c.FastpathBytes += o.FastpathBytes
}

// addExt adds one CPU's ep_counters_ext value to c (its flows created are
// read by ReadFlows).
func (c *Counters) addExt(o *DatapathCountersExt) {
	for i := numBaseDrops; i < NumDropReason; i++ {
		c.Drops[i] += o.Drops[i]
	}
}

// Total returns the packets and bytes counted in direction dir (DirRX or
// DirTX) over all protocols. Drops are not included.
func (c *Counters) Total(dir int) (packets, bytes uint64) {
	for l3 := range c.V[dir] {
		for l4 := range c.V[dir][l3] {
			packets += c.V[dir][l3][l4].Packets
			bytes += c.V[dir][l3][l4].Bytes
		}
	}
	return packets, bytes
}

// NewEndpoint builds an endpoint record. ip4 and ip6 may be nil.
func NewEndpoint(hostIfindex int, slot uint32, mac net.HardwareAddr, ip4, ip6 net.IP, mode, flags uint8) (Endpoint, error) {
	ep := Endpoint{Mode: mode, Flags: flags, Slot: slot, Ifindex: uint32(hostIfindex)}
	if hostIfindex <= 0 {
		return ep, fmt.Errorf("invalid host ifindex %d", hostIfindex)
	}
	if slot >= MaxEndpoints {
		return ep, fmt.Errorf("slot %d out of range (max %d)", slot, MaxEndpoints-1)
	}
	if len(mac) != 6 {
		return ep, fmt.Errorf("invalid MAC %q: want 6 bytes", mac)
	}
	copy(ep.Mac[:], mac)
	if ip4 != nil {
		v4 := ip4.To4()
		if v4 == nil {
			return ep, fmt.Errorf("invalid IPv4 address %q", ip4)
		}
		copy(ep.Ip4[:], v4)
	}
	if ip6 != nil {
		if ip6.To4() != nil || len(ip6) != net.IPv6len {
			return ep, fmt.Errorf("invalid IPv6 address %q", ip6)
		}
		copy(ep.Ip6[:], ip6)
	}
	return ep, nil
}

// ipKeys returns the endpoints_by_ip keys of an endpoint's addresses
// (unset addresses have none).
func ipKeys(ip4 [4]byte, ip6 [16]byte) []IPKey {
	var keys []IPKey
	if ip4 != [4]byte{} {
		k := IPKey{Family: 4}
		copy(k.Addr[:], ip4[:])
		keys = append(keys, k)
	}
	if ip6 != [16]byte{} {
		keys = append(keys, IPKey{Family: 6, Addr: ip6})
	}
	return keys
}

// ipKeysFromNet is ipKeys for net.IP arguments; nil or invalid addresses are
// skipped.
func ipKeysFromNet(ip4, ip6 net.IP) []IPKey {
	var a4 [4]byte
	var a6 [16]byte
	if v4 := ip4.To4(); v4 != nil {
		copy(a4[:], v4)
	}
	if len(ip6) == net.IPv6len && ip6.To4() == nil {
		copy(a6[:], ip6)
	}
	return ipKeys(a4, a6)
}

// Objects is the loaded datapath: both programs, pinned under
// ProgPinDir(PinDir), and its maps, pinned by name under PinDir.
// Objects returned by OpenMaps have nil programs.
type Objects struct {
	DatapathObjects
	PinDir string
}

// EnsureBPFFS mounts a bpffs on /sys/fs/bpf unless one is mounted there
// already (checked with statfs), and creates pinDir (mode 0700) and its
// parents. pinDir is normally DefaultPinDir.
func EnsureBPFFS(pinDir string) error {
	const root = "/sys/fs/bpf"
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("statfs %s: %w", root, err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		if err := os.MkdirAll(root, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", root, err)
		}
		if err := unix.Mount("bpffs", root, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs on %s: %w", root, err)
		}
	}
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return fmt.Errorf("create pin dir: %w", err)
	}
	return nil
}

// PutEndpoint creates or replaces the record of ep.Ifindex and its entries in
// endpoints_by_ip. Address entries of a previous record for the same ifindex
// that ep no longer carries are removed. An address that already belongs to
// another live endpoint is an error.
func (o *Objects) PutEndpoint(ep Endpoint) error {
	if ep.Slot >= MaxEndpoints {
		return fmt.Errorf("put endpoint %d: slot %d out of range", ep.Ifindex, ep.Slot)
	}
	keys := ipKeys(ep.Ip4, ep.Ip6)
	for _, k := range keys {
		var owner uint32
		err := o.EndpointsByIp.Lookup(&k, &owner)
		if err == nil && owner != ep.Ifindex {
			var other Endpoint
			if o.Endpoints.Lookup(&owner, &other) == nil {
				return fmt.Errorf("put endpoint %d: address %s already belongs to endpoint %d",
					ep.Ifindex, keyIP(k), owner)
			}
		} else if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("put endpoint %d: look up %s: %w", ep.Ifindex, keyIP(k), err)
		}
	}

	var old Endpoint
	hadOld := o.Endpoints.Lookup(&ep.Ifindex, &old) == nil

	// Record first, then addresses: an address never points at a missing
	// record for longer than the program can tell (it checks the record).
	if err := o.Endpoints.Put(&ep.Ifindex, &ep); err != nil {
		return fmt.Errorf("put endpoint %d: %w", ep.Ifindex, err)
	}
	for _, k := range keys {
		if err := o.EndpointsByIp.Put(&k, &ep.Ifindex); err != nil {
			return fmt.Errorf("put endpoint %d: address %s: %w", ep.Ifindex, keyIP(k), err)
		}
	}
	if hadOld {
		for _, k := range ipKeys(old.Ip4, old.Ip6) {
			if !containsKey(keys, k) {
				o.deleteIPKey(k, ep.Ifindex)
			}
		}
	}
	return nil
}

// Endpoint returns the record of a host ifindex, or an error wrapping
// ebpf.ErrKeyNotExist.
func (o *Objects) Endpoint(ifindex int) (Endpoint, error) {
	var ep Endpoint
	k := uint32(ifindex)
	if err := o.Endpoints.Lookup(&k, &ep); err != nil {
		return ep, fmt.Errorf("look up endpoint %d: %w", ifindex, err)
	}
	return ep, nil
}

// SetFlows turns per-flow accounting of an existing endpoint record on or
// off (FlagNoFlows), in place. The endpoint's flows already counted stay.
func (o *Objects) SetFlows(ifindex int, on bool) error {
	ep, err := o.Endpoint(ifindex)
	if err != nil {
		return fmt.Errorf("set flows: %w", err)
	}
	if on {
		ep.Flags &^= FlagNoFlows
	} else {
		ep.Flags |= FlagNoFlows
	}
	k := uint32(ifindex)
	if err := o.Endpoints.Update(&k, &ep, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("set flows of endpoint %d: %w", ifindex, err)
	}
	return nil
}

// SetMode changes the mode of an existing endpoint record in place.
func (o *Objects) SetMode(ifindex int, mode uint8) error {
	ep, err := o.Endpoint(ifindex)
	if err != nil {
		return fmt.Errorf("set mode: %w", err)
	}
	ep.Mode = mode
	k := uint32(ifindex)
	if err := o.Endpoints.Update(&k, &ep, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("set mode of endpoint %d: %w", ifindex, err)
	}
	return nil
}

// DeleteEndpoint removes the record of ifindex and the address entries that
// point at it: those of the record and those of ip4/ip6 (either may be nil).
// Entries pointing at another endpoint are left alone. Returns nil if there
// is nothing to delete.
func (o *Objects) DeleteEndpoint(ifindex int, ip4, ip6 net.IP) error {
	k := uint32(ifindex)
	keys := ipKeysFromNet(ip4, ip6)
	var ep Endpoint
	if o.Endpoints.Lookup(&k, &ep) == nil {
		keys = append(keys, ipKeys(ep.Ip4, ep.Ip6)...)
	}
	var errs []error
	for _, key := range keys {
		errs = append(errs, o.deleteIPKey(key, k))
	}
	if err := o.Endpoints.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		errs = append(errs, fmt.Errorf("delete endpoint %d: %w", ifindex, err))
	}
	return errors.Join(errs...)
}

func (o *Objects) deleteIPKey(k IPKey, ifindex uint32) error {
	var owner uint32
	if err := o.EndpointsByIp.Lookup(&k, &owner); err != nil || owner != ifindex {
		return nil
	}
	if err := o.EndpointsByIp.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete address %s: %w", keyIP(k), err)
	}
	return nil
}

// ZeroCounters resets the counters of slot on every CPU and deletes the
// slot's flows, so that a new endpoint in a reused slot starts from zero and
// its eviction figure (created minus present) holds.
func (o *Objects) ZeroCounters(slot uint32) error {
	if slot >= MaxEndpoints {
		return fmt.Errorf("zero counters: slot %d out of range", slot)
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("zero counters: %w", err)
	}
	if err := o.EpCounters.Put(&slot, make([]DatapathCounters, ncpu)); err != nil {
		return fmt.Errorf("zero counters of slot %d: %w", slot, err)
	}
	if o.EpCountersExt != nil {
		if err := o.EpCountersExt.Put(&slot, make([]DatapathCountersExt, ncpu)); err != nil {
			return fmt.Errorf("zero counters of slot %d: %w", slot, err)
		}
	}
	if o.Flows4 != nil && o.Flows6 != nil {
		if err := o.deleteFlows(slot); err != nil {
			return fmt.Errorf("zero counters of slot %d: %w", slot, err)
		}
	}
	return nil
}

// ReadAllCounters returns the counters of every slot that has an endpoint
// record, summed over CPUs. It costs three batch syscalls: one over the
// endpoints map for the slots in use, one each over ep_counters and
// ep_counters_ext [0 … highest slot]. (Maps pinned by an older nswire may
// lack ep_counters_ext; its counters then read as zero.)
func (o *Objects) ReadAllCounters() (map[uint32]Counters, error) {
	slots, err := o.usedSlots()
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]Counters, len(slots))
	if len(slots) == 0 {
		return out, nil
	}
	maxSlot := uint32(0)
	for s := range slots {
		maxSlot = max(maxSlot, s)
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	n := int(maxSlot) + 1
	keys := make([]uint32, n)
	vals := make([]DatapathCounters, n*ncpu)
	var cursor ebpf.MapBatchCursor
	got, err := o.EpCounters.BatchLookup(&cursor, keys, vals, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	for i := range got {
		if _, ok := slots[keys[i]]; !ok {
			continue
		}
		var sum Counters
		for cpu := range ncpu {
			sum.add(&vals[i*ncpu+cpu])
		}
		out[keys[i]] = sum
	}
	if o.EpCountersExt == nil {
		return out, nil
	}
	ext, err := o.readExt(n)
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	for slot, x := range ext {
		if sum, ok := out[slot]; ok {
			sum.addExt(&x)
			out[slot] = sum
		}
	}
	return out, nil
}

// readExt returns ep_counters_ext[0 … n-1], summed over CPUs.
func (o *Objects) readExt(n int) (map[uint32]DatapathCountersExt, error) {
	if n == 0 {
		return map[uint32]DatapathCountersExt{}, nil
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	keys := make([]uint32, n)
	vals := make([]DatapathCountersExt, n*ncpu)
	var cursor ebpf.MapBatchCursor
	got, err := o.EpCountersExt.BatchLookup(&cursor, keys, vals, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, err
	}
	out := make(map[uint32]DatapathCountersExt, got)
	for i := range got {
		var sum DatapathCountersExt
		for cpu := range ncpu {
			v := &vals[i*ncpu+cpu]
			for r := range sum.Drops {
				sum.Drops[r] += v.Drops[r]
			}
			sum.FlowsCreated += v.FlowsCreated
		}
		out[keys[i]] = sum
	}
	return out, nil
}

// usedSlots returns the slots of all endpoint records.
func (o *Objects) usedSlots() (map[uint32]struct{}, error) {
	keys := make([]uint32, MaxEndpoints)
	vals := make([]Endpoint, MaxEndpoints)
	var cursor ebpf.MapBatchCursor
	slots := make(map[uint32]struct{})
	for {
		n, err := o.Endpoints.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			slots[vals[i].Slot] = struct{}{}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return slots, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list endpoints: %w", err)
		}
	}
}

// AllEndpoints returns all endpoint records keyed by host ifindex.
func (o *Objects) AllEndpoints() (map[uint32]Endpoint, error) {
	out := make(map[uint32]Endpoint)
	var (
		k  uint32
		ep Endpoint
	)
	it := o.Endpoints.Iterate()
	for it.Next(&k, &ep) {
		out[k] = ep
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return out, nil
}

// MapPinPaths returns the pin paths under pinDir of the maps that every
// nswire version pins and OpenMaps needs (endpoints, endpoints_by_ip,
// ep_counters). Load pins the others (ep_counters_ext, flows4, flows6,
// drop_events, dp_stats, dp_config) next to them.
func MapPinPaths(pinDir string) []string {
	return []string{
		filepath.Join(pinDir, DatapathMapEndpoints),
		filepath.Join(pinDir, DatapathMapEndpointsByIp),
		filepath.Join(pinDir, DatapathMapEpCounters),
	}
}

func keyIP(k IPKey) net.IP {
	if k.Family == 4 {
		return net.IP(k.Addr[:4])
	}
	return net.IP(k.Addr[:])
}

func containsKey(keys []IPKey, k IPKey) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}
