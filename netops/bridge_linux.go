package netops

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// EnsureBridge returns the bridge called name, creating it (up, with mtu when
// mtu > 0) when there is none; created says whether this call made it. A
// link of that name that is not a bridge is an error naming its type.
//
//	ip link add NAME mtu MTU type bridge; ip link set NAME up
func EnsureBridge(h *netlink.Handle, name string, mtu int) (br *netlink.Bridge, created bool, err error) {
	l, err := h.LinkByName(name)
	if err == nil {
		b, ok := l.(*netlink.Bridge)
		if !ok {
			return nil, false, fmt.Errorf("%s is a %s link, not a bridge", name, l.Type())
		}
		if !IsUp(b) {
			if err := SetUp(h, b); err != nil {
				return nil, false, err
			}
		}
		return b, false, nil
	}
	if !IsNotFound(err) {
		return nil, false, fmt.Errorf("find bridge %s: %w", name, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if mtu > 0 {
		attrs.MTU = mtu
	}
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, false, fmt.Errorf("create bridge %s: %w", name, err)
	} else if err != nil {
		// Made by someone else between the lookup and the add: use theirs.
		b, _, err := EnsureBridge(h, name, mtu)
		return b, false, err
	}
	l, err = LinkByName(h, name)
	if err != nil {
		return nil, false, err
	}
	b, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, false, fmt.Errorf("%s is a %s link, not a bridge", name, l.Type())
	}
	if err := SetUp(h, b); err != nil {
		DeleteLink(h, name)
		return nil, false, err
	}
	return b, true, nil
}

// EnsureAddr gives link the address addr unless it already has it; added
// says whether this call added it.
//
//	ip addr add ADDR dev LINK
func EnsureAddr(h *netlink.Handle, link netlink.Link, addr *net.IPNet) (added bool, err error) {
	have, err := Addrs(h, link, familyOf(addr.IP))
	if err != nil {
		return false, fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	for _, a := range have {
		if a.IP.Equal(addr.IP) {
			if a.Mask.String() != addr.Mask.String() {
				return false, fmt.Errorf("%s has %s, not %s", link.Attrs().Name, a.IPNet, addr)
			}
			return false, nil
		}
	}
	a := &netlink.Addr{IPNet: addr}
	if addr.IP.To4() == nil {
		a.Flags = unix.IFA_F_NODAD // usable at once, as AddAddr
	}
	if err := h.AddrAdd(link, a); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return false, nil
		}
		return false, fmt.Errorf("add address %s to %s: %w", addr, link.Attrs().Name, err)
	}
	return true, nil
}

// AddRoute adds a route to dst via gw (nil gw: directly on link). The same
// route already present is success.
//
//	ip route add DST [via GW] dev LINK
func AddRoute(h *netlink.Handle, link netlink.Link, dst *net.IPNet, gw net.IP) error {
	err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: gw})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add route %s via %s dev %s: %w", dst, gw, link.Attrs().Name, err)
	}
	return nil
}

// DelRoute removes the route AddRoute added. Returns nil if it is not there.
//
//	ip route del DST [via GW] dev LINK
func DelRoute(h *netlink.Handle, link netlink.Link, dst *net.IPNet, gw net.IP) error {
	err := h.RouteDel(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: gw})
	if err != nil && !errors.Is(err, unix.ESRCH) && !IsNotFound(err) {
		return fmt.Errorf("delete route %s via %s: %w", dst, gw, err)
	}
	return nil
}

// Routes lists the routes of the given family on link (main table).
//
//	ip route show dev LINK
func Routes(h *netlink.Handle, link netlink.Link, family int) ([]netlink.Route, error) {
	return retryDump(func() ([]netlink.Route, error) { return h.RouteList(link, family) })
}

// EnableIPv4Forwarding turns on IPv4 forwarding in the calling thread's
// network namespace (the host's, for nswire) if it is off; it never turns it
// off.
//
//	sysctl -w net.ipv4.ip_forward=1
func EnableIPv4Forwarding() error {
	return enableSysctl("/proc/sys/net/ipv4/ip_forward", "IPv4 forwarding")
}

// EnableIPv6Forwarding turns on IPv6 forwarding in the calling thread's
// namespace (`sysctl -w net.ipv6.conf.all.forwarding=1`), as the reference
// bridge plugin does for a gateway with an IPv6 address. It does nothing
// when it is on already.
func EnableIPv6Forwarding() error {
	return enableSysctl(ipv6ConfDir+"/all/forwarding", "IPv6 forwarding")
}

// enableSysctl writes 1 to the setting at path unless it is 1 already.
func enableSysctl(path, what string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable %s: %w", what, err)
	}
	return nil
}
