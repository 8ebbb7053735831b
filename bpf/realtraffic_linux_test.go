//go:build linux

package bpf

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// inNetNS runs fn on a locked thread of a fresh goroutine inside ns; the
// thread is discarded afterwards (never reused in a wrong namespace).
func inNetNS(t testing.TB, ns netns.NsHandle, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread exits with the goroutine
		if ns.IsOpen() {
			if err := netns.Set(ns); err != nil {
				errc <- err
				return
			}
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func newTestNS(t testing.TB) netns.NsHandle {
	t.Helper()
	var ns netns.NsHandle
	inNetNS(t, netns.None(), func() error {
		var err error
		ns, err = netns.New()
		return err
	})
	t.Cleanup(func() { ns.Close() })
	return ns
}

// TestFlowsRealTraffic: real datagrams between a "container" netns and a
// "host" netns through a veth whose host side runs the programs on tcx:
// each direction is exactly one flow with exact packets and bytes.
func TestFlowsRealTraffic(t *testing.T) {
	o := loadTest(t)
	host, ctr := newTestNS(t), newTestNS(t)
	hostIP, ctrIP := net.IPv4(10, 214, 0, 1).To4(), net.IPv4(10, 214, 0, 2).To4()
	var hostIdx int
	var ctrMAC net.HardwareAddr
	for _, ns := range []netns.NsHandle{host, ctr} {
		inNetNS(t, ns, func() error { // IPv6 off: only the test's traffic
			return os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0o644)
		})
	}
	hh, err := netlink.NewHandleAt(host)
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	ch, err := netlink.NewHandleAt(ctr)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	la := netlink.NewLinkAttrs()
	la.Name = "nswfh0"
	if err := hh.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "nswfc0", PeerNamespace: netlink.NsFd(ctr)}); err != nil {
		t.Fatal(err)
	}
	hl, err := hh.LinkByName("nswfh0")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := ch.LinkByName("nswfc0")
	if err != nil {
		t.Fatal(err)
	}
	hostIdx, ctrMAC = hl.Attrs().Index, cl.Attrs().HardwareAddr
	for _, step := range []error{
		hh.AddrAdd(hl, &netlink.Addr{IPNet: &net.IPNet{IP: hostIP, Mask: net.CIDRMask(24, 32)}}),
		ch.AddrAdd(cl, &netlink.Addr{IPNet: &net.IPNet{IP: ctrIP, Mask: net.CIDRMask(24, 32)}}),
		hh.NeighAdd(&netlink.Neigh{LinkIndex: hostIdx, State: netlink.NUD_PERMANENT, IP: ctrIP, HardwareAddr: ctrMAC}),
		ch.NeighAdd(&netlink.Neigh{LinkIndex: cl.Attrs().Index, State: netlink.NUD_PERMANENT, IP: hostIP, HardwareAddr: hl.Attrs().HardwareAddr}),
		hh.LinkSetUp(hl),
		ch.LinkSetUp(cl),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	const slot = 30
	putEP(t, o, hostIdx, slot, ctrMAC, ctrIP, nil, ModeObserve, FlagGuard)
	inNetNS(t, host, func() error {
		for _, a := range []struct {
			p  *ebpf.Program
			at ebpf.AttachType
		}{{o.FromContainer, ebpf.AttachTCXIngress}, {o.ToContainer, ebpf.AttachTCXEgress}} {
			l, err := link.AttachTCX(link.TCXOptions{Interface: hostIdx, Program: a.p, Attach: a.at})
			if err != nil {
				return err
			}
			t.Cleanup(func() { l.Close() })
		}
		return nil
	})

	// from_container runs on the host veth's ingress: every datagram the
	// host received passed it. to_container runs on its egress, before the
	// veth hands the datagram on: every datagram sent passed it, even one
	// the kernel then drops for want of room in a busy CPU's backlog.
	const size = 200
	txPort, received := realBurst(t, ctr, host, ctrIP, hostIP, 10, size)
	rxPort, _ := realBurst(t, host, ctr, hostIP, ctrIP, 4, size)
	frame := uint64(14 + 20 + 8 + size)
	g := newFlowGen(t)
	g.want[flowID{slot, DirTX, 4, protoUDP, addr(ctrIP), addr(hostIP), txPort, 9999}] = flowVal{uint64(received), uint64(received) * frame, 0}
	g.want[flowID{slot, DirRX, 4, protoUDP, addr(hostIP), addr(ctrIP), rxPort, 9999}] = flowVal{4, 4 * frame, 0}
	g.check(o)
}

// realBurst sends n datagrams of size bytes from src in netns from to
// dst:9999 in netns to, waits until all have arrived (or, on a busy host
// that drops some, for two seconds), and returns the source port and how
// many arrived.
func realBurst(t *testing.T, from, to netns.NsHandle, src, dst net.IP, n, size int) (uint16, int) {
	t.Helper()
	var rx, tx *net.UDPConn
	inNetNS(t, to, func() (err error) {
		rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: dst, Port: 9999})
		return err
	})
	defer rx.Close()
	inNetNS(t, from, func() (err error) {
		tx, err = net.DialUDP("udp4", &net.UDPAddr{IP: src}, &net.UDPAddr{IP: dst, Port: 9999})
		return err
	})
	defer tx.Close()
	buf := make([]byte, size)
	for range n {
		if _, err := tx.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := rx.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	port := netip.MustParseAddrPort(tx.LocalAddr().String()).Port()
	in := make([]byte, 2048)
	for i := range n {
		if _, err := rx.Read(in); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Logf("%d of %d datagrams arrived (the kernel dropped the rest)", i, n)
				return port, i
			}
			t.Fatal(err)
		}
	}
	return port, n
}
