package control

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/netops"
)

// TargetSpec names what to wire: exactly one of a Docker container (name or
// ID), a PID, or a network namespace path.
type TargetSpec struct {
	Container string
	PID       int
	NetnsPath string
	// PIDGiven and NetnsGiven say that --pid or --netns was given, so that
	// an explicit --pid 0 or --netns "" is an error naming the value, not
	// "no target".
	PIDGiven   bool
	NetnsGiven bool
}

// Validate checks that exactly one kind of target is given.
func (t TargetSpec) Validate() error {
	n := 0
	if t.Container != "" {
		n++
	}
	if t.PID != 0 || t.PIDGiven {
		n++
	}
	if t.NetnsPath != "" || t.NetnsGiven {
		n++
	}
	switch {
	case n == 0:
		return errors.New("no target: give a container name or ID, --pid N or --netns PATH")
	case n > 1:
		return errors.New("more than one target: give only one of a container, --pid or --netns")
	case t.PID < 0 || (t.PIDGiven && t.PID == 0):
		return fmt.Errorf("--pid %d is not a process ID: give a positive number", t.PID)
	case t.NetnsGiven && t.NetnsPath == "":
		return errors.New(`--netns "" is empty: give the path of a network namespace, e.g. /run/netns/NAME or /proc/PID/ns/net`)
	}
	if t.Container != "" {
		if err := ValidateContainerRef(t.Container); err != nil {
			return err
		}
	}
	return nil
}

// String is how errors and dry runs name the target.
func (t TargetSpec) String() string {
	switch {
	case t.Container != "":
		return t.Container
	case t.PID != 0:
		return "pid " + strconv.Itoa(t.PID)
	default:
		return "netns " + t.NetnsPath
	}
}

// ValidateContainerRef checks the shape of a container name or ID as Docker
// accepts them: [a-zA-Z0-9][a-zA-Z0-9_.-]*, optionally with a leading '/'.
func ValidateContainerRef(ref string) error {
	s := strings.TrimPrefix(ref, "/")
	if s == "" {
		return fmt.Errorf("container %q is empty: give a container name or ID", ref)
	}
	if len(s) > 255 {
		return fmt.Errorf("container name %.20q… is %d bytes: Docker names are shorter", s, len(s))
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '_' || r == '.' || r == '-'))
		if !ok {
			return fmt.Errorf("container name %q has %q at byte %d: Docker names match [a-zA-Z0-9][a-zA-Z0-9_.-]*", ref, r, i)
		}
	}
	return nil
}

// AttachFlags is an attach request as a user writes it: the CLI's flags, or
// serve's labels. Parse checks it and gives the typed AttachRequest; nothing
// after Parse validates the same things again.
type AttachFlags struct {
	Target  TargetSpec
	Bridge  string // default docker0
	Network string // a Docker bridge network by name or ID, instead of Bridge
	IfName  string // default eth0
	IP      string // CIDR or bare IP; default: allocated
	IP6     string // IPv6 CIDR or bare address; default: allocated when the bridge has IPv6
	Gateway string // default: the bridge's address
	MAC     string // default: netops.StableMAC(id)
	MTU     int    // default: the bridge's
	Mode    string // off, observe, fastpath; default observe
	Hook    string // auto, tcx, tc; default auto
	Force   bool   // fast path despite enable_icc=false
	NoFlows bool   // count without per-flow entries
}

// AttachRequest is a parsed attach request. Zero fields take defaults that
// are derived from the bridge and the container (see AttachFlags).
type AttachRequest struct {
	Target  TargetSpec
	Bridge  string
	Network string // a Docker network: the manager resolves it to its bridge
	IfName  string
	IP      IPSpec     // zero: allocate a free address
	IP6     IPSpec     // zero: allocate one when the bridge has a global IPv6 prefix
	Gateway netip.Addr // zero: the bridge's address
	MAC     net.HardwareAddr
	MTU     int
	Mode    datapath.Mode
	Hook    datapath.Hook
	Force   bool
	NoFlows bool
}

// withDefaults fills the fields that have a default independent of the
// machine.
func (r AttachRequest) withDefaults() AttachRequest {
	if r.Bridge == "" && r.Network == "" {
		r.Bridge = "docker0"
	}
	if r.IfName == "" {
		r.IfName = "eth0"
	}
	if r.Mode == "" {
		r.Mode = datapath.Observe
	}
	if r.Hook == "" {
		r.Hook = datapath.HookAuto
	}
	return r
}

// Parse checks everything that can be checked without the machine and
// returns the typed request with its defaults filled in. Each error names the
// flag, the bad value and what would be valid.
func (f AttachFlags) Parse() (AttachRequest, error) {
	var r AttachRequest
	if err := f.Target.Validate(); err != nil {
		return r, err
	}
	if f.Network != "" && f.Bridge != "" {
		return r, fmt.Errorf("--network %s and --bridge %s both name the bridge: give one of them", f.Network, f.Bridge)
	}
	if f.Network != "" {
		if err := ValidateContainerRef(f.Network); err != nil { // Docker names networks as it names containers
			return r, fmt.Errorf("--network: %s", strings.Replace(err.Error(), "container", "network", 1))
		}
	}
	r = AttachRequest{Target: f.Target, Bridge: f.Bridge, Network: f.Network, IfName: f.IfName, MTU: f.MTU, Force: f.Force, NoFlows: f.NoFlows}.withDefaults()
	if r.Network == "" {
		if err := netops.ValidateIfName(r.Bridge); err != nil {
			return r, fmt.Errorf("--bridge: %w", err)
		}
	}
	if err := netops.ValidateIfName(r.IfName); err != nil {
		return r, fmt.Errorf("--ifname: %w", err)
	}
	var err error
	if f.IP != "" {
		if r.IP, err = ParseIPFlag(f.IP); err != nil {
			return r, err
		}
	}
	if f.IP6 != "" {
		if r.IP6, err = ParseIP6Flag(f.IP6); err != nil {
			return r, err
		}
	}
	if f.Gateway != "" {
		if r.Gateway, err = netip.ParseAddr(f.Gateway); err != nil || !r.Gateway.Unmap().Is4() {
			return r, fmt.Errorf("--gateway %q is not an IPv4 address (e.g. 172.17.0.1)", f.Gateway)
		}
		r.Gateway = r.Gateway.Unmap()
	}
	if f.MAC != "" {
		if r.MAC, err = ParseMAC(f.MAC); err != nil {
			return r, err
		}
	}
	if r.MTU != 0 && (r.MTU < 68 || r.MTU > 65535) {
		return r, fmt.Errorf("--mtu %d is out of range: give 68 to 65535, or 0 for the bridge's", r.MTU)
	}
	if f.Mode != "" {
		if r.Mode, err = datapath.ParseMode(f.Mode); err != nil {
			return r, fmt.Errorf("--mode: %w", err)
		}
	}
	if r.Hook, err = datapath.ParseHook(f.Hook); err != nil {
		return r, fmt.Errorf("--hook: %w", err)
	}
	return r, nil
}

// ParseMAC parses a unicast Ethernet MAC for a container interface.
func ParseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("--mac %q is not an Ethernet MAC address (e.g. 02:42:ac:11:00:0a)", s)
	}
	if mac[0]&1 != 0 {
		return nil, fmt.Errorf("--mac %s is a multicast address: the first byte must be even", s)
	}
	if isZero(mac) {
		return nil, fmt.Errorf("--mac %s is all zeros", s)
	}
	return mac, nil
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// IPSpec is a parsed --ip: an IPv4 address and its prefix length, or -1
// for "the bridge's prefix". The zero IPSpec asks for a free address.
type IPSpec struct {
	Addr netip.Addr
	Bits int
}

// IsSet reports whether an address was given.
func (s IPSpec) IsSet() bool { return s.Addr.IsValid() }

// String is the value as the user gave it: "A.B.C.D" or "A.B.C.D/N".
func (s IPSpec) String() string {
	if s.Bits < 0 {
		return s.Addr.String()
	}
	return s.Addr.String() + "/" + strconv.Itoa(s.Bits)
}

// OneAddress is the value of an address flag (flag is "ip" or "ip6") that
// may have been given more than once: values in the order given. More than
// one value is an error naming them all: a container gets one address per
// family. No value gives "".
func OneAddress(flag string, values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", nil
	case 1:
		return values[0], nil
	}
	times := "twice"
	if len(values) > 2 {
		times = strconv.Itoa(len(values)) + " times"
	}
	return "", fmt.Errorf("--%s given %s (%s): a container gets one address per family, one IPv4 with --ip and one IPv6 with --ip6", flag, times, strings.Join(values, ", "))
}

// manyAddresses is the error for a flag value that lists addresses ("A,B"),
// as a label can; "" when s does not.
func manyAddresses(flag, s string) error {
	if !strings.Contains(s, ",") {
		return nil
	}
	return fmt.Errorf("--%s %q names %d addresses: a container gets one address per family, one IPv4 with --ip and one IPv6 with --ip6", flag, s, strings.Count(s, ",")+1)
}

// ipv6ForIP is the error for an IPv6 address given to --ip: it names the
// flag that takes it, or, for a link-local one, says none does. It is nil
// when s is no IPv6 address or CIDR.
func ipv6ForIP(s string) error {
	a, err := netip.ParseAddr(s)
	if p, perr := netip.ParsePrefix(s); perr == nil {
		a, err = p.Addr(), nil
	}
	if err != nil || !a.Is6() || a.Is4In6() {
		return nil
	}
	if a.IsLinkLocalUnicast() {
		return fmt.Errorf("--ip %q is not an IPv4 address but an IPv6 link-local one (fe80::/10), which the container's eth0 gets by itself: give an IPv4 address with --ip, a global or unique local IPv6 one with --ip6", s)
	}
	return fmt.Errorf("--ip %q is not an IPv4 address: give IPv6 addresses with --ip6", s)
}

// ParseIPFlag parses --ip: "A.B.C.D/N" or a bare "A.B.C.D" (prefix from the
// bridge, Bits -1). An IPv6 address is an error that points to --ip6.
func ParseIPFlag(s string) (IPSpec, error) {
	if err := manyAddresses("ip", s); err != nil {
		return IPSpec{}, err
	}
	if err := ipv6ForIP(s); err != nil {
		return IPSpec{}, err
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Unmap().Is4() {
			return IPSpec{}, fmt.Errorf("--ip %q is not an IPv4 address or CIDR (e.g. 172.17.0.10/16)", s)
		}
		return IPSpec{Addr: a.Unmap(), Bits: -1}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() { // an IPv4-mapped IPv6 CIDR ("::ffff:1.2.3.4/120") too
		return IPSpec{}, fmt.Errorf("--ip %q is not an IPv4 CIDR (e.g. 172.17.0.10/16)", s)
	}
	return IPSpec{Addr: p.Addr(), Bits: p.Bits()}, nil
}

// ParseIP6Flag parses --ip6: "ADDR/N" or a bare IPv6 address (prefix from
// the bridge, Bits -1). Link-local, multicast, IPv4-mapped and unspecified
// addresses are refused: nswire gives containers global (or unique local)
// addresses; every interface has its own link-local one.
func ParseIP6Flag(s string) (IPSpec, error) {
	if err := manyAddresses("ip6", s); err != nil {
		return IPSpec{}, err
	}
	var a netip.Addr
	bits := -1
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return IPSpec{}, fmt.Errorf("--ip6 %q is not an IPv6 address or CIDR (e.g. fd00:1::10/64)", s)
		}
		a, bits = p.Addr(), p.Bits()
	} else {
		var err error
		if a, err = netip.ParseAddr(s); err != nil {
			return IPSpec{}, fmt.Errorf("--ip6 %q is not an IPv6 address or CIDR (e.g. fd00:1::10/64)", s)
		}
	}
	switch {
	case !a.Is6() || a.Is4In6():
		return IPSpec{}, fmt.Errorf("--ip6 %q is not an IPv6 address: give IPv4 addresses with --ip", s)
	case a.Zone() != "":
		return IPSpec{}, fmt.Errorf("--ip6 %q has a zone: give a global address", s)
	case a.IsLinkLocalUnicast():
		return IPSpec{}, fmt.Errorf("--ip6 %s is link-local (fe80::/10): the container's eth0 gets its own; give a global or unique local address", s)
	case a.IsMulticast() || a.IsUnspecified() || a.IsLoopback():
		return IPSpec{}, fmt.Errorf("--ip6 %s is not a unicast address a container can hold", s)
	}
	return IPSpec{Addr: a, Bits: bits}, nil
}
