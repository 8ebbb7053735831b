//go:build linux

package test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nswire/nswire/test/testenv"
)

// icmp6Frame is an Ethernet frame carrying the ICMPv6 message body (its
// checksum field left zero and filled in here) from src to dst, hop limit
// 255 as neighbour discovery requires: a frame a kernel accepts.
func icmp6Frame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, body []byte) []byte {
	f := make([]byte, 14+40+len(body))
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:14], 0x86dd)
	ip := f[14:54]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(body)))
	ip[6], ip[7] = 58, 255
	s16, d16 := src.As16(), dst.As16()
	copy(ip[8:24], s16[:])
	copy(ip[24:40], d16[:])
	msg := f[54:]
	copy(msg, body)
	pseudo := make([]byte, 0, 40+len(body))
	pseudo = append(pseudo, s16[:]...)
	pseudo = append(pseudo, d16[:]...)
	pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(len(body)))
	pseudo = append(pseudo, 0, 0, 0, 58)
	pseudo = append(pseudo, msg...)
	binary.BigEndian.PutUint16(msg[2:4], csum(pseudo))
	return f
}

// unsolicitedNA is a neighbour advertisement (override set) claiming that
// target is at mac, sent from src to all nodes, as a container would send
// to take over target.
func unsolicitedNA(mac net.HardwareAddr, src, target netip.Addr) []byte {
	body := make([]byte, 32)
	body[0] = 136
	body[4] = 0x20 // override
	t16 := target.As16()
	copy(body[8:24], t16[:])
	body[24], body[25] = 2, 1 // target link-layer address option
	copy(body[26:32], mac)
	return icmp6Frame(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, mac, src, netip.MustParseAddr("ff02::1"), body)
}

// redirect6 is an ICMPv6 redirect from mac's link-local to dst telling it
// to send to target through better.
func redirect6(mac, dstMAC net.HardwareAddr, dst, better, target netip.Addr) []byte {
	body := make([]byte, 40)
	body[0] = 137
	b16, t16 := better.As16(), target.As16()
	copy(body[8:24], b16[:])
	copy(body[24:40], t16[:])
	return icmp6Frame(dstMAC, mac, linkLocal(mac), dst, body)
}

// neighMAC returns the MAC of ns's neighbour entry for ip on eth0, or ""
// when there is none (or none resolved).
func neighMAC(t *testing.T, ns netns.NsHandle, ip netip.Addr) string {
	t.Helper()
	mac := ""
	err := testenv.InNetNS(ns, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		ns, err := netlink.NeighList(l.Attrs().Index, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if n.IP.Equal(ip.AsSlice()) && len(n.HardwareAddr) == 6 {
				mac = n.HardwareAddr.String()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// resolveFrom makes ns resolve ip (a UDP datagram to it sends a neighbour
// solicitation) and waits until its entry has a MAC.
func resolveFrom(t *testing.T, ns netns.NsHandle, ip netip.Addr) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := testenv.InNetNS(ns, func() error {
			c, err := net.Dial("udp6", netip.AddrPortFrom(ip, 9).String())
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("resolve"))
			return err
		})
		if err != nil {
			t.Fatalf("send to %s: %v", ip, err)
		}
		time.Sleep(20 * time.Millisecond)
		if m := neighMAC(t, ns, ip); m != "" {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never resolved", ip)
		}
	}
}

// waitNeighMAC waits up to 500 ms (a neighbour advertisement crosses the
// bridge in microseconds) for ns's entry for ip to name want.
func waitNeighMAC(t *testing.T, ns netns.NsHandle, ip netip.Addr, want string) string {
	t.Helper()
	var got string
	for deadline := time.Now().Add(500 * time.Millisecond); ; time.Sleep(5 * time.Millisecond) {
		if got = neighMAC(t, ns, ip); got == want || time.Now().After(deadline) {
			return got
		}
	}
}

// TestNeighbourDiscoveryIPv6: on a Docker network made with --ipv6, a
// neighbour that talked to a container learns at once, from the kernel's
// unsolicited neighbour advertisement, the new MAC of the address when
// another container takes it over (no traffic from the neighbour between);
// and a container's router advertisement, redirect and neighbour
// advertisement for the gateway's address are dropped and counted by
// reason, and the neighbour's cache keeps the gateway's MAC. The same
// forged advertisement from an unguarded container (--mode off) does
// change the neighbour's cache: the frame is one a kernel accepts.
func TestNeighbourDiscoveryIPv6(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	name := dualStackNetwork(t, "nswnd", "10.234.71.0/28", "10.234.71.1", "fd00:4e53:7a11::/64", "fd00:4e53:7a11::1")
	testenv.RunOn(t, cli, name, "ndpeer", "sleep", "300") // makes the bridge
	idB, pidB := testenv.RunNone(t, cli, "ndb", "sleep", "300")
	idA1, _ := testenv.RunNone(t, cli, "nda1", "sleep", "300")
	idA2, pidA2 := testenv.RunNone(t, cli, "nda2", "sleep", "300")
	idC, pidC := testenv.RunNone(t, cli, "ndc", "sleep", "300")
	nsB, nsA2, nsC := containerNS(t, pidB), containerNS(t, pidA2), containerNS(t, pidC)

	recB := e.attachJSON(idB, "--network", name)
	x := netip.MustParseAddr("fd00:4e53:7a11::40")
	recA1 := e.attachJSON(idA1, "--network", name, "--ip6", x.String())
	if got := resolveFrom(t, nsB, x); got != recA1.MAC.String() {
		t.Fatalf("B resolved %s to %s, want A1's %s", x, got, recA1.MAC)
	}
	e.ok("detach", idA1)
	if got := neighMAC(t, nsB, x); got != recA1.MAC.String() {
		t.Fatalf("after detaching A1, B's entry for %s: %q, want still A1's %s", x, got, recA1.MAC)
	}
	recA2 := e.attachJSON(idA2, "--network", name, "--ip6", x.String())
	if recA2.MAC.String() == recA1.MAC.String() {
		t.Fatalf("A1 and A2 have the same MAC %s: the test cannot tell them apart", recA2.MAC)
	}
	if got := waitNeighMAC(t, nsB, x, recA2.MAC.String()); got != recA2.MAC.String() {
		t.Fatalf("B's entry for %s after A2 took it: %q, want A2's %s (no unsolicited advertisement?)", x, got, recA2.MAC)
	}

	// The guard: forged neighbour discovery from A2.
	gw6 := netip.MustParseAddr("fd00:4e53:7a11::1")
	gwMAC := resolveFrom(t, nsB, gw6)
	raw := newRawSender(t, nsA2, "eth0")
	raw.send(t, unsolicitedNA(recA2.MAC, x, gw6))
	raw.send(t, icmp6RA(recA2.MAC))
	raw.send(t, redirect6(recA2.MAC, recB.MAC, linkLocal(recB.MAC), x, gw6))
	d := e.stats(idA2).Drops
	if d["nd-spoof"] != 1 || d["router-advert"] != 1 || d["redirect"] != 1 || len(d) != 3 {
		t.Errorf("A2's drops %v, want nd-spoof, router-advert and redirect once each", d)
	}
	time.Sleep(50 * time.Millisecond)
	if got := neighMAC(t, nsB, gw6); got != gwMAC {
		t.Fatalf("B's entry for the gateway %s: %q, want the bridge's %s", gw6, got, gwMAC)
	}

	// The control: the same forgery from an unguarded container works.
	recC := e.attachJSON(idC, "--network", name, "--mode", "off")
	rawC := newRawSender(t, nsC, "eth0")
	rawC.send(t, unsolicitedNA(recC.MAC, recC.Address6.Addr(), gw6))
	if got := waitNeighMAC(t, nsB, gw6, recC.MAC.String()); got != recC.MAC.String() {
		t.Fatalf("the forged advertisement from unguarded C did not reach B's cache (entry %q): the guard's drop above proves nothing", got)
	}
	e.ok("detach", idA2, idB, idC)
}
