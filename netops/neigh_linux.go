package netops

import (
	"bytes"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ForgetNeighbor deletes the neighbour entry (IPv4 or IPv6) of ip on linkIndex, but
// only when it points at mac: an entry that a container left behind with
// its own MAC, which would otherwise make its address look taken. Returns
// nil when there is no such entry.
// ip neigh del IP dev LINK   (when its lladdr is MAC)
func ForgetNeighbor(h *netlink.Handle, linkIndex int, ip net.IP, mac net.HardwareAddr) error {
	neighs, err := retryDump(func() ([]netlink.Neigh, error) { return h.NeighList(linkIndex, familyOf(ip)) })
	if err != nil {
		return fmt.Errorf("list neighbours: %w", err)
	}
	for _, n := range neighs {
		if !n.IP.Equal(ip) || !bytes.Equal(n.HardwareAddr, mac) {
			continue
		}
		if err := h.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete neighbour %s: %w", ip, err)
		}
	}
	return nil
}
