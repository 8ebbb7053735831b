package control

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nswire/nswire/netops"
)

// checkBridgeShared refuses an attach that would change the bridge, which
// other containers share, as a side effect: a bridge that is down (the
// attach would succeed with no connectivity) and an --mtu other than the
// bridge's (a larger port raises what the bridge and later ports use; a
// smaller one makes the kernel lower the bridge's MTU to it). mtu 0 means
// the bridge's own.
func checkBridgeShared(br netlink.Link, mtu int) error {
	name := br.Attrs().Name
	if !netops.IsUp(br) {
		return fmt.Errorf("bridge %s is down: nswire does not change a shared bridge; bring it up first (`ip link set %s up`)", name, name)
	}
	brMTU := br.Attrs().MTU
	switch {
	case mtu > brMTU:
		return fmt.Errorf("--mtu %d is above the MTU of bridge %s (%d): nswire does not change a shared bridge; give at most %d, or leave --mtu out to use the bridge's", mtu, name, brMTU, brMTU)
	case mtu != 0 && mtu < brMTU:
		// The kernel lowers a bridge's MTU to its smallest port's (unless
		// it was set by hand), for every container on it.
		return fmt.Errorf("--mtu %d is below the MTU of bridge %s (%d): the kernel would lower the bridge's MTU to %d for every port on it, and nswire does not change a shared bridge; leave --mtu out, or give %d", mtu, name, brMTU, mtu, brMTU)
	}
	return nil
}

// raOff are the IPv6 settings attach gives the interface it creates: no
// router advertisements accepted, no address configured from them.
var raOff = [][2]string{{"accept_ra", "0"}, {"autoconf", "0"}}

// disableRA sets raOff on ifName inside ns; a namespace without IPv6 needs
// nothing.
func disableRA(ns netns.NsHandle, ifName string) error {
	_, err := netops.SetIPv6Confs(ns, ifName, raOff)
	return err
}

// ipv6Settings turn IPv6 on for the interface of a dual-stack attach,
// written before its address is added: Docker turns IPv6 off in a
// --network=none container, so it goes on for this interface only. No
// duplicate address detection (nswire probes the address from the host
// first, without the kernel's one-second delay), so an address is usable
// as soon as it is added; and an unsolicited neighbour advertisement of
// each address as it is added (ndisc_notify), which the kernel sends only
// for an address that went through the DAD path, however short: a
// neighbour with a stale entry for the address learns the new MAC at once.
var ipv6Settings = [][2]string{{"accept_dad", "0"}, {"ndisc_notify", "1"}, {"disable_ipv6", "0"}}
