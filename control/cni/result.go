package cni

import (
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// Wiring is what a standalone ADD did, as the result reports it.
type Wiring struct {
	Bridge, BridgeMAC string
	HostIf, HostMAC   string
	IfName, MAC       string
	Netns             string // CNI_NETNS: the sandbox of the container interface
	Address           *net.IPNet
	Gateway           net.IP
	Address6          *net.IPNet // nil: IPv4 only
	Gateway6          net.IP
	Routes            []*types.Route
	DNS               types.DNS
}

// BuildResult is the ADD result of a standalone attach: three interfaces
// (the bridge, the host veth, the container's interface with its sandbox),
// the address on the container interface with its gateway, the routes set
// in the container and the IPAM plugin's DNS.
func BuildResult(w Wiring) *current.Result {
	idx := 2
	ips := []*current.IPConfig{{Interface: &idx, Address: *w.Address, Gateway: w.Gateway}}
	if w.Address6 != nil {
		ips = append(ips, &current.IPConfig{Interface: &idx, Address: *w.Address6, Gateway: w.Gateway6})
	}
	return &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: w.Bridge, Mac: w.BridgeMAC},
			{Name: w.HostIf, Mac: w.HostMAC},
			{Name: w.IfName, Mac: w.MAC, Sandbox: w.Netns},
		},
		IPs:    ips,
		Routes: w.Routes,
		DNS:    w.DNS,
	}
}

// SandboxInterface returns the index and interface of prev that lives in a
// sandbox and is called ifName, or, failing that, the only sandbox
// interface. The peer of this interface on the host is what chained nswire
// counts.
func SandboxInterface(prev *current.Result, ifName string) (int, *current.Interface, error) {
	if prev == nil {
		return -1, nil, fmt.Errorf("no prevResult")
	}
	found, n := -1, 0
	for i, in := range prev.Interfaces {
		if in == nil || in.Sandbox == "" {
			continue
		}
		n++
		if in.Name == ifName {
			return i, in, nil
		}
		found = i
	}
	if n == 1 {
		return found, prev.Interfaces[found], nil
	}
	if n == 0 {
		return -1, nil, fmt.Errorf("prevResult has no interface in a sandbox: the previous plugin made no container interface for nswire to count")
	}
	return -1, nil, fmt.Errorf("prevResult has %d sandbox interfaces and none is called %s", n, ifName)
}

// IPv4Of returns the first IPv4 address of res and its gateway, preferring
// one on interface index iface (-1: any).
func IPv4Of(res *current.Result, iface int) (*net.IPNet, net.IP) {
	var first *current.IPConfig
	for _, ip := range res.IPs {
		if ip == nil || ip.Address.IP.To4() == nil {
			continue
		}
		if iface >= 0 && ip.Interface != nil && *ip.Interface == iface {
			a := ip.Address
			return &a, ip.Gateway
		}
		if first == nil {
			first = ip
		}
	}
	if first == nil {
		return nil, nil
	}
	a := first.Address
	return &a, first.Gateway
}

// OnePerFamily refuses an IPAM result with more than one address of a
// family: nswire gives the container one IPv4 and at most one IPv6 address,
// and taking the first silently would leave a lease nobody uses.
func OnePerFamily(res *current.Result) error {
	var v4, v6 []string
	for _, ip := range res.IPs {
		if ip == nil {
			continue
		}
		if ip.Address.IP.To4() != nil {
			v4 = append(v4, ip.Address.String())
		} else {
			v6 = append(v6, ip.Address.String())
		}
	}
	for _, f := range []struct {
		name  string
		addrs []string
	}{{"IPv4", v4}, {"IPv6", v6}} {
		if len(f.addrs) > 1 {
			return types.NewError(types.ErrInvalidNetworkConfig, "the IPAM plugin gave more than one address of a family",
				fmt.Sprintf("%d %s addresses (%s): nswire configures one address per family; give the IPAM plugin one range per family", len(f.addrs), f.name, strings.Join(f.addrs, ", ")))
		}
	}
	return nil
}

// IPv6Of returns the first IPv6 address of res and its gateway (nil, nil
// when res has none).
func IPv6Of(res *current.Result) (*net.IPNet, net.IP) {
	for _, ip := range res.IPs {
		if ip != nil && ip.Address.IP.To4() == nil && ip.Address.IP.To16() != nil {
			a := ip.Address
			return &a, ip.Gateway
		}
	}
	return nil, nil
}
