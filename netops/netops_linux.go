// Package netops holds the netlink and network-namespace primitives nswire is
// built from. Each function does one thing, is idempotent where the thing it
// ensures can already exist, and works through an explicit *netlink.Handle so
// that work inside another network namespace never switches the caller's
// thread (use netlink.NewHandleAt).
package netops

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// MaxIfNameLen is the longest interface name the kernel accepts (IFNAMSIZ-1).
const MaxIfNameLen = unix.IFNAMSIZ - 1

// dumpRetries bounds the retries of a netlink dump that the kernel reported
// as interrupted (netlink v1.3.1 returns ErrDumpInterrupted without retrying).
const dumpRetries = 5

func retryDump[T any](f func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range dumpRetries {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

// IsNotFound reports whether err says that a link does not exist.
func IsNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// LinkByName returns the link called name, or an error satisfying IsNotFound
// when there is none.
func LinkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find link %q: %w", name, err)
	}
	return l, nil
}

// LinkByIndex returns the link with index ifindex (`ip link show` by index),
// or an error satisfying IsNotFound when there is none.
func LinkByIndex(h *netlink.Handle, ifindex int) (netlink.Link, error) {
	l, err := h.LinkByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("find link with index %d: %w", ifindex, err)
	}
	return l, nil
}

// ThreadHandle is a handle that works in the network namespace of whichever
// thread calls it, as netlink's package-level functions do; each request
// opens its own socket.
func ThreadHandle() *netlink.Handle { return &netlink.Handle{} }

// LinkList lists all links, retrying an interrupted dump.
func LinkList(h *netlink.Handle) ([]netlink.Link, error) {
	return retryDump(h.LinkList)
}

// CreateVeth creates a veth pair hostName <-> peerName whose host end lives
// in the handle's namespace and whose peer is created directly inside peerNS
// (no later move: moving a link between namespaces waits for RCU grace
// periods and costs milliseconds). mtu 0 keeps the kernel default; a nil
// peerMAC lets the kernel pick one. If hostName already exists the error
// names what it is; the caller decides whether it is a leftover to remove.
func CreateVeth(h *netlink.Handle, hostName, peerName string, peerNS netns.NsHandle, mtu int, peerMAC net.HardwareAddr) (*netlink.Veth, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = hostName
	attrs.MTU = mtu
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: peerName, PeerHardwareAddr: peerMAC, PeerNamespace: netlink.NsFd(int(peerNS))}
	if mtu > 0 {
		veth.PeerMTU = uint32(mtu)
	}
	if err := h.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			if l, lerr := h.LinkByName(hostName); lerr == nil {
				return nil, fmt.Errorf("create veth %s: a %s link of that name already exists", hostName, l.Type())
			}
			return nil, fmt.Errorf("create veth %s: an interface called %s already exists in the target namespace", hostName, peerName)
		}
		return nil, fmt.Errorf("create veth %s peer %s: %w", hostName, peerName, err)
	}
	// Look it up again: the request object does not carry the index.
	l, err := h.LinkByName(hostName)
	if err != nil {
		return nil, fmt.Errorf("find new veth %s: %w", hostName, err)
	}
	v, ok := l.(*netlink.Veth)
	if !ok {
		return nil, fmt.Errorf("new link %s is a %q, not a veth", hostName, l.Type())
	}
	return v, nil
}

// DeleteLink deletes the link called name. Deleting one end of a veth pair
// deletes both. Returns nil if the link does not exist.
func DeleteLink(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := h.LinkDel(l); err != nil && !IsNotFound(err) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// Bridge returns the bridge called name and its IPv4 networks (addresses with
// their prefix), or an error naming what name is if it is not a bridge.
func Bridge(h *netlink.Handle, name string) (*netlink.Bridge, []*net.IPNet, error) {
	l, err := h.LinkByName(name)
	if IsNotFound(err) {
		return nil, nil, fmt.Errorf("bridge %q does not exist (create it, or pick another with --bridge)", name)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("find bridge %s: %w", name, err)
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, nil, fmt.Errorf("%q is not a bridge (it is a %s link): give a bridge with --bridge", name, l.Type())
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(br, netlink.FAMILY_V4) })
	if err != nil {
		return nil, nil, fmt.Errorf("list addresses of %s: %w", name, err)
	}
	var nets []*net.IPNet
	for _, a := range addrs {
		nets = append(nets, a.IPNet)
	}
	return br, nets, nil
}

// SetMaster enslaves link to the bridge master. Already enslaved is success.
func SetMaster(h *netlink.Handle, link netlink.Link, master netlink.Link) error {
	if link.Attrs().MasterIndex == master.Attrs().Index {
		return nil
	}
	if err := h.LinkSetMasterByIndex(link, master.Attrs().Index); err != nil {
		return fmt.Errorf("set %s master %s: %w", link.Attrs().Name, master.Attrs().Name, err)
	}
	return nil
}

// SetNoMaster releases link from its master. Returns nil if the link is gone.
func SetNoMaster(h *netlink.Handle, link netlink.Link) error {
	if err := h.LinkSetNoMaster(link); err != nil && !IsNotFound(err) {
		return fmt.Errorf("set %s nomaster: %w", link.Attrs().Name, err)
	}
	return nil
}

// SetUp brings link up.
func SetUp(h *netlink.Handle, link netlink.Link) error {
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", link.Attrs().Name, err)
	}
	return nil
}

// SetDown brings link down. Returns nil if the link is gone.
func SetDown(h *netlink.Handle, link netlink.Link) error {
	if err := h.LinkSetDown(link); err != nil && !IsNotFound(err) {
		return fmt.Errorf("set %s down: %w", link.Attrs().Name, err)
	}
	return nil
}

// IsUp reports whether link is administratively up.
func IsUp(link netlink.Link) bool {
	return link.Attrs().Flags&net.FlagUp != 0
}

// Rename renames a (down) link to name. Returns the link looked up again.
func Rename(h *netlink.Handle, link netlink.Link, name string) (netlink.Link, error) {
	if link.Attrs().Name == name {
		return link, nil
	}
	if err := h.LinkSetName(link, name); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("rename %s to %s: an interface called %s already exists there", link.Attrs().Name, name, name)
		}
		return nil, fmt.Errorf("rename %s to %s: %w", link.Attrs().Name, name, err)
	}
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find renamed link %s: %w", name, err)
	}
	return l, nil
}

// AddAddr adds addr to link (`ip addr add ADDR dev DEV`). The same address
// already present is success. An IPv6 address is tentative until the
// kernel's address work has run: see WaitAddrUsable.
func AddAddr(h *netlink.Handle, link netlink.Link, addr *net.IPNet) error {
	err := h.AddrAdd(link, &netlink.Addr{IPNet: addr})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to %s: %w", addr, link.Attrs().Name, err)
	}
	return nil
}

// WaitAddrUsable waits, at most timeout, until the IPv6 address ip on link
// is no longer tentative: until the kernel's duplicate address detection
// is over, or (with accept_dad=0) until its address work ran, normally
// within a millisecond of the add. Only then can a socket bind to it.
func WaitAddrUsable(h *netlink.Handle, link netlink.Link, ip net.IP, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		addrs, err := Addrs(h, link, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		found := false
		for _, a := range addrs {
			if a.IPNet == nil || !a.IP.Equal(ip) {
				continue
			}
			found = true
			if a.Flags&unix.IFA_F_DADFAILED != 0 {
				return fmt.Errorf("address %s on %s: the kernel's duplicate address detection found another holder", ip, link.Attrs().Name)
			}
			if a.Flags&unix.IFA_F_TENTATIVE == 0 {
				return nil
			}
		}
		if !found {
			return fmt.Errorf("address %s is no longer on %s", ip, link.Attrs().Name)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("address %s on %s is still tentative after %v (duplicate address detection: net.ipv6.conf.all.accept_dad is on in the container)", ip, link.Attrs().Name, timeout)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// DelAddr removes addr from link. Returns nil if it is not there.
func DelAddr(h *netlink.Handle, link netlink.Link, addr *net.IPNet) error {
	err := h.AddrDel(link, &netlink.Addr{IPNet: addr})
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !IsNotFound(err) {
		return fmt.Errorf("delete address %s from %s: %w", addr, link.Attrs().Name, err)
	}
	return nil
}

// Addrs lists the addresses of link of the given family.
func Addrs(h *netlink.Handle, link netlink.Link, family int) ([]netlink.Addr, error) {
	return retryDump(func() ([]netlink.Addr, error) { return h.AddrList(link, family) })
}

func defaultRoute(link netlink.Link, gw net.IP) *netlink.Route {
	return &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw, Scope: netlink.SCOPE_UNIVERSE}
}

// AddDefaultRoute adds a default route via gw on link. The same route already
// present is success; another default route is an error naming it.
func AddDefaultRoute(h *netlink.Handle, link netlink.Link, gw net.IP) error {
	err := h.RouteAdd(defaultRoute(link, gw))
	if errors.Is(err, unix.EEXIST) {
		gwNow, idx, lerr := DefaultRoute(h, familyOf(gw))
		if lerr == nil && gwNow.Equal(gw) && idx == link.Attrs().Index {
			return nil
		}
		return fmt.Errorf("add default route via %s: the namespace already has a default route via %s", gw, gwNow)
	}
	if err != nil {
		return fmt.Errorf("add default route via %s dev %s: %w", gw, link.Attrs().Name, err)
	}
	return nil
}

// DelDefaultRoute removes the default route via gw on link. Returns nil if it
// is not there.
func DelDefaultRoute(h *netlink.Handle, link netlink.Link, gw net.IP) error {
	err := h.RouteDel(defaultRoute(link, gw))
	if err != nil && !errors.Is(err, unix.ESRCH) && !IsNotFound(err) {
		return fmt.Errorf("delete default route via %s: %w", gw, err)
	}
	return nil
}

// DefaultRoute returns the gateway and link index of the default route of the
// given family, or a nil IP if there is none.
func DefaultRoute(h *netlink.Handle, family int) (net.IP, int, error) {
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || (r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask)) {
			return r.Gw, r.LinkIndex, nil
		}
	}
	return nil, 0, nil
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

func familyOf(ip net.IP) int {
	if ip.To4() != nil {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// PeerIndex returns the ifindex of the other end of a veth (in whatever
// namespace it lives), as `ethtool -S` reports peer_ifindex.
func PeerIndex(link netlink.Link) (int, error) {
	if _, ok := link.(*netlink.Veth); !ok {
		return 0, fmt.Errorf("%s is a %s device, not a veth: it has no peer", link.Attrs().Name, link.Type())
	}
	if link.Attrs().ParentIndex == 0 {
		return 0, fmt.Errorf("veth %s reports no peer index", link.Attrs().Name)
	}
	return link.Attrs().ParentIndex, nil
}

// NeighborIPs returns the IPv4 addresses in the neighbour table of link that
// are or were recently in use (any state but FAILED and INCOMPLETE).
func NeighborIPs(h *netlink.Handle, linkIndex int) ([]net.IP, error) {
	neighs, err := retryDump(func() ([]netlink.Neigh, error) { return h.NeighList(linkIndex, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list neighbours: %w", err)
	}
	var ips []net.IP
	for _, n := range neighs {
		if n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 || n.IP == nil {
			continue
		}
		ips = append(ips, n.IP)
	}
	return ips, nil
}

// Inode returns the inode number of a namespace handle, its identity.
func Inode(ns netns.NsHandle) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(ns), &st); err != nil {
		return 0, fmt.Errorf("stat netns: %w", err)
	}
	return st.Ino, nil
}

// OpenNetnsPath opens the network namespace at path (a bind mount such as
// /run/netns/x or /proc/PID/ns/net) and checks that it is one.
func OpenNetnsPath(path string) (netns.NsHandle, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return netns.None(), fmt.Errorf("network namespace %s does not exist", path)
		}
		return netns.None(), fmt.Errorf("open network namespace %s: %w", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		unix.Close(fd)
		return netns.None(), fmt.Errorf("statfs %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC && st.Type != unix.PROC_SUPER_MAGIC {
		unix.Close(fd)
		return netns.None(), fmt.Errorf("%s is not a network namespace (nsfs) file", path)
	}
	// Ask the kernel which kind of namespace this is.
	kind, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err == nil && kind != unix.CLONE_NEWNET {
		unix.Close(fd)
		return netns.None(), fmt.Errorf("%s is a namespace, but not a network namespace", path)
	}
	return netns.NsHandle(fd), nil
}

// ResolveNeigh makes the kernel resolve ip on linkIndex now: it creates (or
// reuses) the neighbour entry with NTF_USE, which sends an ARP request (IPv4)
// or a neighbour solicitation (IPv6) at once (what `arping -c 1 -I DEV IP` or
// `ndisc6 IP DEV` provoke; `ip neigh` has no verb for it).
func ResolveNeigh(h *netlink.Handle, linkIndex int, ip net.IP) error {
	n := &netlink.Neigh{LinkIndex: linkIndex, Family: familyOf(ip), IP: ip, Flags: netlink.NTF_USE}
	if v4 := ip.To4(); v4 != nil {
		n.IP = v4
	}
	if err := h.NeighSet(n); err != nil {
		return fmt.Errorf("resolve %s: %w", ip, err)
	}
	return nil
}

// Neigh returns the IPv4 neighbour entry of ip on linkIndex (`ip neigh show
// IP dev DEV`), or nil when there is none. An interrupted dump is retried.
func Neigh(h *netlink.Handle, linkIndex int, ip net.IP) (*netlink.Neigh, error) {
	ns, err := retryDump(func() ([]netlink.Neigh, error) { return h.NeighList(linkIndex, familyOf(ip)) })
	if err != nil {
		return nil, fmt.Errorf("list neighbours: %w", err)
	}
	for i := range ns {
		if ns[i].IP.Equal(ip) {
			return &ns[i], nil
		}
	}
	return nil, nil
}

// DelNeigh deletes the neighbour entry n (`ip neigh del IP dev DEV`). Returns
// nil if it is already gone.
func DelNeigh(h *netlink.Handle, n *netlink.Neigh) error {
	if err := h.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete neighbour %s: %w", n.IP, err)
	}
	return nil
}

// SetAlias sets the alias of link (`ip link set DEV alias ALIAS`).
func SetAlias(h *netlink.Handle, link netlink.Link, alias string) error {
	if err := h.LinkSetAlias(link, alias); err != nil {
		return fmt.Errorf("set alias of %s: %w", link.Attrs().Name, err)
	}
	return nil
}

// BridgeIPv6 returns the global IPv6 addresses of the bridge brIndex, with
// their prefixes (`ip -6 addr show dev BR scope global`): the gateway and
// subnet of IPv6 containers on it. Link-local addresses are left out.
func BridgeIPv6(h *netlink.Handle, br netlink.Link) ([]*net.IPNet, error) {
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(br, netlink.FAMILY_V6) })
	if err != nil {
		return nil, fmt.Errorf("list IPv6 addresses of %s: %w", br.Attrs().Name, err)
	}
	var nets []*net.IPNet
	for _, a := range addrs {
		if a.Scope == unix.RT_SCOPE_UNIVERSE && !a.IP.IsLinkLocalUnicast() {
			nets = append(nets, a.IPNet)
		}
	}
	return nets, nil
}

// NeighborIPv6s returns the IPv6 addresses in the neighbour table of link
// that a host answered for (reachable, stale, delay, probe, permanent).
func NeighborIPv6s(h *netlink.Handle, linkIndex int) ([]net.IP, error) {
	ns, err := retryDump(func() ([]netlink.Neigh, error) { return h.NeighList(linkIndex, netlink.FAMILY_V6) })
	if err != nil {
		return nil, fmt.Errorf("list IPv6 neighbours: %w", err)
	}
	var ips []net.IP
	for _, n := range ns {
		if n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) != 0 || n.IP.IsLinkLocalUnicast() || n.IP.IsMulticast() {
			continue
		}
		ips = append(ips, n.IP)
	}
	return ips, nil
}
