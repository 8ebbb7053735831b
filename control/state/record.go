// Package state owns what nswire remembers between commands: the typed
// record of each wired or observed container, the store of records under
// /run/nswire (atomic writes, tombstones of interrupted detaches) and the
// state lock. It may import netops and control/datapath (for the Mode and
// Hook vocabulary), never control.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/netops"
)

// DefaultStateDir holds one JSON record per attached container.
const DefaultStateDir = "/run/nswire"

// RecordVersion is the version of the record format written by this build.
const RecordVersion = 1

// Target kinds.
const (
	KindDocker = "docker"
	KindPID    = "pid"
	KindNetns  = "netns"
)

// Record is what nswire remembers of one attached container. It is written
// atomically (temp file + rename) after the attach has fully succeeded, so a
// record on disk always describes a complete attach. Its fields are typed:
// they are parsed once, when the record is read (DecodeRecord).
type Record struct {
	ID          string // Docker container ID, or "pid:N" / "netns:INODE" / "cni:CONTAINERID/IFNAME"
	Name        string // container name, without the leading '/'
	Kind        string // KindDocker, KindPID, KindNetns or KindCNI
	PID         int
	NetnsPath   string
	NetnsInode  uint64
	HostIf      string
	HostIfindex int
	IfName      string
	Address     netip.Prefix // the container's address and prefix; zero when an observed container has none
	Gateway     netip.Addr   // zero for observed containers
	Address6    netip.Prefix // its IPv6 address, when the bridge has IPv6; zero otherwise
	Gateway6    netip.Addr   // its IPv6 default gateway; zero without IPv6
	MAC         net.HardwareAddr
	MTU         int
	Bridge      string
	Mode        datapath.Mode
	Hook        datapath.Hook // tcx or tc once programs are installed; HookNone in mode off
	Slot        uint32
	Observed    bool     // counters only, wiring not ours
	NoFlows     bool     // per-flow accounting off (the counters stay on)
	CNI         *CNIInfo // for KindCNI: who asked (cni.go)
	Created     time.Time
}

// wireRecord is the record's JSON form on disk. It is the format of every
// nswire release so far: field names and string encodings never change
// without a new RecordVersion.
type wireRecord struct {
	Version     int       `json:"version"`
	ID          string    `json:"id"`
	Name        string    `json:"name,omitempty"`
	Kind        string    `json:"kind"`
	PID         int       `json:"pid,omitempty"`
	NetnsPath   string    `json:"netnsPath,omitempty"`
	NetnsInode  uint64    `json:"netnsInode"`
	HostIf      string    `json:"hostIf"`
	HostIfindex int       `json:"hostIfindex"`
	IfName      string    `json:"ifName"`
	Address     string    `json:"address"` // CIDR
	Gateway     string    `json:"gateway"`
	Address6    string    `json:"address6,omitempty"`
	Gateway6    string    `json:"gateway6,omitempty"`
	MAC         string    `json:"mac"`
	MTU         int       `json:"mtu"`
	Bridge      string    `json:"bridge"`
	Mode        string    `json:"mode"`                 // off, observe, fastpath
	AttachMode  string    `json:"attachMode,omitempty"` // tcx or tc, when a program is installed
	Slot        uint32    `json:"slot"`
	Observed    bool      `json:"observed,omitempty"`
	NoFlows     bool      `json:"noFlows,omitempty"`
	CNI         *CNIInfo  `json:"cni,omitempty"`
	Created     time.Time `json:"created"`
}

// IP returns the record's address without its prefix (zero if none).
func (r *Record) IP() netip.Addr { return r.Address.Addr() }

// IPv4 returns the record's address as a 4-byte net.IP, or nil when it has
// no IPv4 address.
func (r *Record) IPv4() net.IP {
	if a := r.Address.Addr(); a.Is4() {
		return net.IP(a.AsSlice())
	}
	return nil
}

// DisplayName is the container name when there is one, else the ID.
func (r *Record) DisplayName() string {
	if r.Name != "" {
		return r.Name
	}
	return r.ID
}

// MarshalJSON writes the on-disk form.
func (r *Record) MarshalJSON() ([]byte, error) {
	w := wireRecord{
		Version: RecordVersion, ID: r.ID, Name: r.Name, Kind: r.Kind, PID: r.PID,
		NetnsPath: r.NetnsPath, NetnsInode: r.NetnsInode, HostIf: r.HostIf, HostIfindex: r.HostIfindex,
		IfName: r.IfName, MTU: r.MTU, Bridge: r.Bridge, Mode: string(r.Mode), AttachMode: string(r.Hook),
		Slot: r.Slot, Observed: r.Observed, NoFlows: r.NoFlows, CNI: r.CNI, Created: r.Created,
	}
	if r.Address.IsValid() {
		w.Address = r.Address.String()
	}
	if r.Gateway.IsValid() {
		w.Gateway = r.Gateway.String()
	}
	if len(r.MAC) > 0 {
		w.MAC = r.MAC.String()
	}
	if r.Address6.IsValid() {
		w.Address6 = r.Address6.String()
	}
	if r.Gateway6.IsValid() {
		w.Gateway6 = r.Gateway6.String()
	}
	return json.Marshal(w)
}

// DecodeRecord parses and validates one record file, so that a corrupted or
// truncated file is reported rather than trusted.
func DecodeRecord(data []byte) (*Record, error) {
	var w wireRecord
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode record: trailing data after the record")
	}
	return w.parse()
}

// parse checks every field and returns the typed record.
func (w *wireRecord) parse() (*Record, error) {
	if w.Version != RecordVersion {
		return nil, fmt.Errorf("record version %d, this nswire reads version %d", w.Version, RecordVersion)
	}
	if w.ID == "" {
		return nil, errors.New("record has no id")
	}
	switch w.Kind {
	case KindDocker, KindPID, KindNetns, KindCNI:
	default:
		return nil, fmt.Errorf("record kind %q is not docker, pid, netns or cni", w.Kind)
	}
	if !netops.IsHostVethName(w.HostIf) && !w.Observed {
		return nil, fmt.Errorf("record host interface %q is not an nswire veth name", w.HostIf)
	}
	if w.HostIfindex <= 0 {
		return nil, fmt.Errorf("record host ifindex %d is not positive", w.HostIfindex)
	}
	r := &Record{
		ID: w.ID, Name: w.Name, Kind: w.Kind, PID: w.PID, NetnsPath: w.NetnsPath, NetnsInode: w.NetnsInode,
		HostIf: w.HostIf, HostIfindex: w.HostIfindex, IfName: w.IfName, MTU: w.MTU, Bridge: w.Bridge,
		Slot: w.Slot, Observed: w.Observed, NoFlows: w.NoFlows, CNI: w.CNI, Created: w.Created,
	}
	var err error
	if r.Mode, err = datapath.ParseMode(w.Mode); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	if w.AttachMode != "" {
		if r.Hook, err = datapath.ParseHook(w.AttachMode); err != nil || r.Hook == datapath.HookAuto {
			return nil, fmt.Errorf("record hook %q is not tcx or tc", w.AttachMode)
		}
	}
	if w.Address != "" || !w.Observed {
		if r.Address, err = netip.ParsePrefix(w.Address); err != nil {
			return nil, fmt.Errorf("record address: %w", err)
		}
	}
	if w.Gateway != "" || !w.Observed {
		if r.Gateway, err = netip.ParseAddr(w.Gateway); err != nil {
			return nil, fmt.Errorf("record gateway %q is not an IP address", w.Gateway)
		}
	}
	if w.Address6 != "" {
		if r.Address6, err = netip.ParsePrefix(w.Address6); err != nil || !r.Address6.Addr().Is6() || r.Address6.Addr().Is4In6() {
			return nil, fmt.Errorf("record address6 %q is not an IPv6 CIDR", w.Address6)
		}
	}
	if w.Gateway6 != "" {
		if r.Gateway6, err = netip.ParseAddr(w.Gateway6); err != nil || !r.Gateway6.Is6() {
			return nil, fmt.Errorf("record gateway6 %q is not an IPv6 address", w.Gateway6)
		}
	}
	if w.MAC != "" || !w.Observed {
		if r.MAC, err = net.ParseMAC(w.MAC); err != nil {
			return nil, fmt.Errorf("record mac: %w", err)
		}
	}
	if !w.Observed {
		if err := netops.ValidateIfName(w.IfName); err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
	}
	return r, nil
}

// UnmarshalJSON reads the on-disk form, with DecodeRecord's checks.
func (r *Record) UnmarshalJSON(b []byte) error {
	x, err := DecodeRecord(b)
	if err != nil {
		return err
	}
	*r = *x
	return nil
}

// IPv6 returns the record's IPv6 address as a 16-byte net.IP, or nil when it
// has none.
func (r *Record) IPv6() net.IP {
	if !r.Address6.IsValid() {
		return nil
	}
	return net.IP(r.Address6.Addr().AsSlice())
}
