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

// maxIPv6Tries bounds the addresses an automatic IPv6 choice looks at.
const maxIPv6Tries = 4096

// ResolveAddress6 checks a requested --ip6 against the bridge's IPv6 prefix,
// its gateway and the used addresses, or, when none is requested, chooses
// the highest free address of the prefix (Docker's IPAM counts upwards from
// the bottom, as for IPv4).
func ResolveAddress6(want IPSpec, prefix netip.Prefix, gw netip.Addr, used func(netip.Addr) string) (netip.Prefix, error) {
	prefix = prefix.Masked()
	if prefix.Bits() > 126 {
		return netip.Prefix{}, fmt.Errorf("the bridge's IPv6 prefix %s is too small to hold containers", prefix)
	}
	if !want.IsSet() {
		last := lastAddr(prefix)
		a := last.Prev()
		for i := 0; i < maxIPv6Tries && prefix.Contains(a) && a != prefix.Addr(); i, a = i+1, a.Prev() {
			if a != gw && used(a) == "" {
				return netip.PrefixFrom(a, prefix.Bits()), nil
			}
		}
		return netip.Prefix{}, fmt.Errorf("no free IPv6 address among the top %d of %s: give one with --ip6", maxIPv6Tries, prefix)
	}
	bits := want.Bits
	if bits == -1 {
		bits = prefix.Bits()
	}
	switch {
	case bits != prefix.Bits():
		return netip.Prefix{}, fmt.Errorf("--ip6 %s: prefix /%d does not match the bridge's IPv6 prefix %s (use /%d)", want, bits, prefix, prefix.Bits())
	case !prefix.Contains(want.Addr):
		return netip.Prefix{}, fmt.Errorf("--ip6 %s is outside the bridge's IPv6 prefix %s", want, prefix)
	case want.Addr == prefix.Addr():
		return netip.Prefix{}, fmt.Errorf("--ip6 %s is the subnet-router anycast address of %s: pick another", want, prefix)
	case want.Addr == gw:
		return netip.Prefix{}, fmt.Errorf("--ip6 %s is the gateway's address: pick another address in %s", want, prefix)
	}
	if who := used(want.Addr); who != "" {
		return netip.Prefix{}, fmt.Errorf("--ip6 %s is already in use by %s: pick another, or leave --ip6 out to choose a free one", want, who)
	}
	return netip.PrefixFrom(want.Addr, prefix.Bits()), nil
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As16()
	for i := p.Bits(); i < 128; i++ {
		a[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom16(a)
}
