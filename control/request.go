package control

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"strings"

	"github.com/nswire/nswire/netops"
)

// Modes a container's datapath can be in.
const (
	ModeOff      = "off"
	ModeObserve  = "observe"
	ModeFastpath = "fastpath"
)

// Modes lists the valid datapath modes, for errors and completion.
var Modes = []string{ModeOff, ModeObserve, ModeFastpath}

// AttachModes lists the valid ways of attaching programs.
var AttachModes = []string{"auto", "tcx", "tc"}

func checkModeName(m string) error {
	for _, v := range Modes {
		if m == v {
			return nil
		}
	}
	return fmt.Errorf("mode %q is not one of %s", m, strings.Join(Modes, ", "))
}

func checkAttachModeName(m string) error {
	for _, v := range AttachModes {
		if m == v {
			return nil
		}
	}
	return fmt.Errorf("attach mode %q is not one of %s", m, strings.Join(AttachModes, ", "))
}

// TargetSpec names what to wire: exactly one of a Docker container (name or
// ID), a PID, or a network namespace path.
type TargetSpec struct {
	Container string
	PID       int
	NetnsPath string
}

// Validate checks that exactly one kind of target is given.
func (t TargetSpec) Validate() error {
	n := 0
	if t.Container != "" {
		n++
	}
	if t.PID != 0 {
		n++
	}
	if t.NetnsPath != "" {
		n++
	}
	switch {
	case n == 0:
		return errors.New("no target: give a container name or ID, --pid N or --netns PATH")
	case n > 1:
		return errors.New("more than one target: give only one of a container, --pid or --netns")
	case t.PID < 0:
		return fmt.Errorf("--pid %d is not a process ID: give a positive number", t.PID)
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

// AttachRequest is what the user asked for. Empty fields take defaults that
// are derived from the bridge and the container.
type AttachRequest struct {
	Target     TargetSpec
	Bridge     string // default docker0
	IfName     string // default eth0
	IP         string // CIDR or bare IP; default: allocated
	Gateway    string // default: the bridge's address
	MAC        string // default: StableMAC(id)
	MTU        int    // default: the bridge's
	Mode       string // off, observe, fastpath; default observe
	AttachMode string // auto, tcx, tc; default auto
	Force      bool   // fast path despite enable_icc=false
}

// Defaults fills the fields that have a default independent of the machine.
func (r *AttachRequest) Defaults() {
	if r.Bridge == "" {
		r.Bridge = "docker0"
	}
	if r.IfName == "" {
		r.IfName = "eth0"
	}
	if r.Mode == "" {
		r.Mode = ModeObserve
	}
	if r.AttachMode == "" {
		r.AttachMode = "auto"
	}
}

// Validate checks everything that can be checked without the machine.
func (r *AttachRequest) Validate() error {
	if err := r.Target.Validate(); err != nil {
		return err
	}
	if err := netops.ValidateIfName(r.Bridge); err != nil {
		return fmt.Errorf("--bridge: %w", err)
	}
	if err := netops.ValidateIfName(r.IfName); err != nil {
		return fmt.Errorf("--ifname: %w", err)
	}
	if r.IP != "" {
		if _, _, err := parseIPFlag(r.IP); err != nil {
			return err
		}
	}
	if r.Gateway != "" {
		if ip := net.ParseIP(r.Gateway); ip == nil || ip.To4() == nil {
			return fmt.Errorf("--gateway %q is not an IPv4 address (e.g. 172.17.0.1)", r.Gateway)
		}
	}
	if r.MAC != "" {
		if _, err := ParseMAC(r.MAC); err != nil {
			return err
		}
	}
	if r.MTU != 0 && (r.MTU < 68 || r.MTU > 65535) {
		return fmt.Errorf("--mtu %d is out of range: give 68 to 65535, or 0 for the bridge's", r.MTU)
	}
	if err := checkModeName(r.Mode); err != nil {
		return fmt.Errorf("--mode: %w", err)
	}
	return checkAttachModeName(r.AttachMode)
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

// parseIPFlag parses --ip: "A.B.C.D/N" or a bare "A.B.C.D" (prefix from the
// bridge, returned as -1).
func parseIPFlag(s string) (net.IP, int, error) {
	if !strings.Contains(s, "/") {
		ip := net.ParseIP(s)
		if ip == nil || ip.To4() == nil {
			return nil, 0, fmt.Errorf("--ip %q is not an IPv4 address or CIDR (e.g. 172.17.0.10/16)", s)
		}
		return ip.To4(), -1, nil
	}
	ip, ipnet, err := net.ParseCIDR(s)
	if err != nil || ip.To4() == nil {
		return nil, 0, fmt.Errorf("--ip %q is not an IPv4 CIDR (e.g. 172.17.0.10/16)", s)
	}
	ones, bits := ipnet.Mask.Size()
	if bits != 32 { // e.g. an IPv4-mapped IPv6 address with a /120
		return nil, 0, fmt.Errorf("--ip %q is not an IPv4 CIDR (e.g. 172.17.0.10/16)", s)
	}
	return ip.To4(), ones, nil
}

// Subnet describes the bridge's IPv4 network.
type Subnet struct {
	Net     *net.IPNet // network address and mask
	Gateway net.IP     // the gateway containers use
}

// broadcast returns the broadcast address of n.
func broadcast(n *net.IPNet) net.IP {
	ip := n.IP.To4()
	out := make(net.IP, 4)
	for i := range out {
		out[i] = ip[i] | ^n.Mask[i]
	}
	return out
}

// ResolveAddress checks a requested --ip against the bridge subnet and the
// set of used addresses, or, when ipFlag is empty, allocates the highest free
// address of the subnet (Docker's IPAM counts upwards from the bottom, so
// counting down keeps out of its way).
func ResolveAddress(ipFlag string, sn Subnet, used func(net.IP) string) (*net.IPNet, error) {
	ones, bits := sn.Net.Mask.Size()
	if bits != 32 || ones > 30 {
		return nil, fmt.Errorf("bridge subnet %s is too small to hold containers", sn.Net)
	}
	if ipFlag == "" {
		return allocate(sn, used)
	}
	ip, prefix, err := parseIPFlag(ipFlag)
	if err != nil {
		return nil, err
	}
	if prefix == -1 {
		prefix = ones
	}
	if prefix != ones {
		return nil, fmt.Errorf("--ip %s: prefix /%d does not match the bridge subnet %s (use /%d)", ipFlag, prefix, sn.Net, ones)
	}
	if !sn.Net.Contains(ip) {
		return nil, fmt.Errorf("--ip %s is outside the bridge subnet %s", ipFlag, sn.Net)
	}
	switch {
	case ip.Equal(sn.Net.IP):
		return nil, fmt.Errorf("--ip %s is the network address of %s (its host bits are all zero): pick a host address", ipFlag, sn.Net)
	case ip.Equal(broadcast(sn.Net)):
		return nil, fmt.Errorf("--ip %s is the broadcast address of %s (its host bits are all one): pick a host address", ipFlag, sn.Net)
	case ip.Equal(sn.Gateway):
		return nil, fmt.Errorf("--ip %s is the gateway's address: pick another address in %s", ipFlag, sn.Net)
	}
	if who := used(ip); who != "" {
		return nil, fmt.Errorf("--ip %s is already in use by %s: pick another, or leave --ip out to choose a free one", ipFlag, who)
	}
	return &net.IPNet{IP: ip, Mask: sn.Net.Mask}, nil
}

func allocate(sn Subnet, used func(net.IP) string) (*net.IPNet, error) {
	base := binary.BigEndian.Uint32(sn.Net.IP.To4())
	last := binary.BigEndian.Uint32(broadcast(sn.Net))
	ip := make(net.IP, 4)
	for a := last - 1; a > base; a-- {
		binary.BigEndian.PutUint32(ip, a)
		if ip.Equal(sn.Gateway) || used(ip) != "" {
			continue
		}
		return &net.IPNet{IP: ip, Mask: sn.Net.Mask}, nil
	}
	return nil, fmt.Errorf("no free address left in %s: detach containers or run `nswire gc`", sn.Net)
}

// CheckGateway checks a --gateway against the subnet.
func CheckGateway(gw net.IP, sn *net.IPNet) error {
	if !sn.Contains(gw) {
		return fmt.Errorf("--gateway %s is outside the bridge subnet %s", gw, sn)
	}
	if gw.Equal(sn.IP) || gw.Equal(broadcast(sn)) {
		return fmt.Errorf("--gateway %s is the network or broadcast address of %s", gw, sn)
	}
	return nil
}

// FreeAddresses counts the host addresses of sn that are neither the gateway
// nor used, for doctor.
func FreeAddresses(sn Subnet, used func(net.IP) string) *big.Int {
	ones, bits := sn.Net.Mask.Size()
	total := new(big.Int).Lsh(big.NewInt(1), uint(bits-ones))
	total.Sub(total, big.NewInt(3)) // network, broadcast, gateway
	base := binary.BigEndian.Uint32(sn.Net.IP.To4())
	last := binary.BigEndian.Uint32(broadcast(sn.Net))
	ip := make(net.IP, 4)
	for a := base + 1; a < last; a++ {
		binary.BigEndian.PutUint32(ip, a)
		if !ip.Equal(sn.Gateway) && used(ip) != "" {
			total.Sub(total, big.NewInt(1))
		}
	}
	return total
}
