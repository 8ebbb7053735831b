package control

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"net"
	"net/netip"
)

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

// prefixOf converts an address with its mask to a netip.Prefix.
func prefixOf(n *net.IPNet) netip.Prefix {
	a, _ := netip.AddrFromSlice(n.IP)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

// ResolveAddress checks a requested --ip against the bridge subnet and the
// set of used addresses, or, when ipFlag is empty, allocates the highest free
// address of the subnet (Docker's IPAM counts upwards from the bottom, so
// counting down keeps out of its way).
func ResolveAddress(want IPSpec, sn Subnet, used func(net.IP) string) (*net.IPNet, error) {
	ones, bits := sn.Net.Mask.Size()
	if bits != 32 || ones > 30 {
		return nil, fmt.Errorf("bridge subnet %s is too small to hold containers", sn.Net)
	}
	if !want.IsSet() {
		return allocate(sn, used)
	}
	ipFlag := want.String()
	ip, prefix := net.IP(want.Addr.AsSlice()), want.Bits
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
