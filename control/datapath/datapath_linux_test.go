package datapath

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nswire/nswire/bpf"
	"github.com/nswire/nswire/test/testenv"
)

// newNetNS makes an anonymous network namespace, destroyed (with every
// device in it) when the test ends.
func newNetNS(t testing.TB) netns.NsHandle {
	t.Helper()
	var ns netns.NsHandle
	inThread(t, func() {
		orig, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		defer orig.Close()
		ns, err = netns.New()
		if err != nil {
			t.Fatal(err)
		}
		if err := netns.Set(orig); err != nil {
			panic(err) // locked thread dies with the goroutine
		}
	})
	t.Cleanup(func() { ns.Close() })
	return ns
}

// inThread runs fn on a locked thread in a fresh goroutine, so a thread left
// in a wrong namespace by a panic is discarded, never reused.
func inThread(t testing.TB, fn func()) {
	t.Helper()
	done := make(chan struct{})
	var failed any
	go func() {
		defer close(done)
		defer func() { failed = recover() }()
		runtime.LockOSThread()
		fn()
		runtime.UnlockOSThread()
	}()
	<-done
	if failed != nil {
		t.Fatalf("in thread: %v", failed)
	}
}

// inNS runs fn with the calling thread in ns. fn must not start goroutines
// that use the namespace. Only non-fatal checks (t.Error) belong in fn.
func inNS(t testing.TB, ns netns.NsHandle, fn func()) {
	t.Helper()
	inThread(t, func() {
		orig, err := netns.Get()
		if err != nil {
			panic(err)
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			panic(err)
		}
		fn()
		if err := netns.Set(orig); err != nil {
			panic(err)
		}
	})
}

func testPinDir(t testing.TB) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	dir := filepath.Join("/sys/fs/bpf", "nswire-test-"+hex.EncodeToString(b[:]))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// pairNet is a "host" netns holding hostIf, and a "container" netns holding
// its veth peer ctrIf, with IPv6 off and static neighbours (so the only
// traffic is what the test sends).
type pairNet struct {
	host, ctr       netns.NsHandle
	hostIf, ctrIf   string
	hostIdx         int
	hostMAC, ctrMAC net.HardwareAddr
	hostIP, ctrIP   net.IP
}

func disableIPv6(t testing.TB, ns netns.NsHandle) {
	inNS(t, ns, func() {
		for _, p := range []string{"/proc/sys/net/ipv6/conf/default/disable_ipv6", "/proc/sys/net/ipv6/conf/all/disable_ipv6"} {
			if err := os.WriteFile(p, []byte("1"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
				panic(err)
			}
		}
	})
}

func newPairNet(t testing.TB) *pairNet {
	t.Helper()
	p := &pairNet{
		host: newNetNS(t), ctr: newNetNS(t),
		hostIf: "nswh0", ctrIf: "nswc0",
		hostIP: net.IPv4(10, 213, 0, 1).To4(), ctrIP: net.IPv4(10, 213, 0, 2).To4(),
	}
	disableIPv6(t, p.host)
	disableIPv6(t, p.ctr)
	hh, err := netlink.NewHandleAt(p.host)
	must(t, err)
	defer hh.Close()
	ch, err := netlink.NewHandleAt(p.ctr)
	must(t, err)
	defer ch.Close()

	la := netlink.NewLinkAttrs()
	la.Name = p.hostIf
	must(t, hh.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: p.ctrIf, PeerNamespace: netlink.NsFd(p.ctr)}))
	hl, err := hh.LinkByName(p.hostIf)
	must(t, err)
	cl, err := ch.LinkByName(p.ctrIf)
	must(t, err)
	p.hostIdx, p.hostMAC, p.ctrMAC = hl.Attrs().Index, hl.Attrs().HardwareAddr, cl.Attrs().HardwareAddr

	must(t, hh.AddrAdd(hl, &netlink.Addr{IPNet: &net.IPNet{IP: p.hostIP, Mask: net.CIDRMask(24, 32)}}))
	must(t, ch.AddrAdd(cl, &netlink.Addr{IPNet: &net.IPNet{IP: p.ctrIP, Mask: net.CIDRMask(24, 32)}}))
	must(t, hh.NeighAdd(&netlink.Neigh{LinkIndex: hl.Attrs().Index, State: netlink.NUD_PERMANENT, IP: p.ctrIP, HardwareAddr: p.ctrMAC}))
	must(t, ch.NeighAdd(&netlink.Neigh{LinkIndex: cl.Attrs().Index, State: netlink.NUD_PERMANENT, IP: p.hostIP, HardwareAddr: p.hostMAC}))
	must(t, hh.LinkSetUp(hl))
	must(t, ch.LinkSetUp(cl))
	return p
}

func (p *pairNet) endpoint(slot uint32) EndpointSpec {
	return EndpointSpec{HostIfName: p.hostIf, HostIfindex: p.hostIdx, MAC: p.ctrMAC, IP4: p.ctrIP, Guard: true, Slot: slot}
}

// udpBurst sends n datagrams of size bytes from netns `from` (address src)
// to dst:port in netns `to`, and waits until all n have arrived.
func udpBurst(t testing.TB, from, to netns.NsHandle, src, dst net.IP, n, size int) {
	t.Helper()
	var rx, tx *net.UDPConn
	inNS(t, to, func() {
		var err error
		rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: dst, Port: 9999})
		if err != nil {
			panic(err)
		}
	})
	defer rx.Close()
	inNS(t, from, func() {
		var err error
		tx, err = net.DialUDP("udp4", &net.UDPAddr{IP: src}, &net.UDPAddr{IP: dst, Port: 9999})
		if err != nil {
			panic(err)
		}
	})
	defer tx.Close()
	// Sockets stay in the namespace they were made in.
	buf := make([]byte, size)
	for range n {
		if _, err := tx.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	must(t, rx.SetReadDeadline(time.Now().Add(5*time.Second)))
	in := make([]byte, 2048)
	for i := range n {
		m, err := rx.Read(in)
		if err != nil {
			t.Fatalf("received %d of %d datagrams: %v", i, n, err)
		}
		if m != size {
			t.Fatalf("datagram of %d bytes, want %d", m, size)
		}
	}
}

const udpFrame = 14 + 20 + 8 + 200

func wantUDP(t testing.TB, d *Datapath, slot uint32, tx, rx uint64) {
	t.Helper()
	all, err := d.ReadCounters()
	must(t, err)
	got, ok := all[slot]
	if !ok {
		t.Fatalf("slot %d not counted", slot)
	}
	var want Counters
	want.V[bpf.DirTX][bpf.L3IPv4][bpf.L4UDP] = bpf.Counter{Packets: tx, Bytes: tx * udpFrame}
	want.V[bpf.DirRX][bpf.L3IPv4][bpf.L4UDP] = bpf.Counter{Packets: rx, Bytes: rx * udpFrame}
	if got != want {
		t.Errorf("slot %d counters:\n got  %+v\n want %+v", slot, got, want)
	}
}

func tcxPrograms(t testing.TB, ns netns.NsHandle, ifindex int) int {
	t.Helper()
	n := 0
	inNS(t, ns, func() {
		for _, a := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: a})
			if err != nil {
				panic(err)
			}
			n += len(res.Programs)
		}
	})
	return n
}

// tcState returns the number of filters and whether a clsact qdisc exists.
func tcState(t testing.TB, ns netns.NsHandle, ifindex int) (filters int, clsact bool) {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	must(t, err)
	defer h.Close()
	l, err := h.LinkByIndex(ifindex)
	must(t, err)
	qs, err := h.QdiscList(l)
	must(t, err)
	for _, q := range qs {
		if q.Type() == "clsact" {
			clsact = true
		}
	}
	if !clsact {
		return 0, false
	}
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		fs, err := h.FilterList(l, parent)
		must(t, err)
		filters += len(fs)
	}
	return filters, clsact
}

func mapEntries(t testing.TB, m *ebpf.Map) int {
	t.Helper()
	var k, v []byte
	n := 0
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	must(t, it.Err())
	return n
}

func TestDatapathAttachCountsExactly(t *testing.T) {
	testenv.RequireRoot(t)
	for _, am := range []Hook{HookTCX, HookTC, HookAuto} {
		t.Run(string(am), func(t *testing.T) {
			p := newPairNet(t)
			pinDir := testPinDir(t)
			const slot = 3
			ep := p.endpoint(slot)

			d, err := OpenDatapath(pinDir)
			must(t, err)
			var used Hook
			inNS(t, p.host, func() { used, err = d.Install(ep, Fastpath, am) })
			must(t, err)
			wantUsed := am
			if am == HookAuto {
				wantUsed, _ = AutoHook() // this kernel has tcx
			}
			if used != wantUsed {
				t.Fatalf("used %q, want %q", used, wantUsed)
			}
			inNS(t, p.host, func() {
				if got, ok := d.Installed(p.hostIf); !ok || got != wantUsed {
					t.Errorf("Attached = %q, %v", got, ok)
				}
			})
			filters, _ := tcState(t, p.host, p.hostIdx)
			progs := tcxPrograms(t, p.host, p.hostIdx)
			if wantUsed == HookTCX && (progs != 2 || filters != 0) {
				t.Errorf("tcx: %d tcx programs, %d filters; want 2, 0", progs, filters)
			}
			if wantUsed == HookTC && (progs != 0 || filters != 2) {
				t.Errorf("tc: %d tcx programs, %d filters; want 0, 2", progs, filters)
			}

			// 100 out of the container, 40 into it.
			udpBurst(t, p.ctr, p.host, p.ctrIP, p.hostIP, 100, 200)
			udpBurst(t, p.host, p.ctr, p.hostIP, p.ctrIP, 40, 200)
			wantUDP(t, d, slot, 100, 40)

			// Re-attach and switching modes keep the counters.
			inNS(t, p.host, func() { used, err = d.Install(ep, Fastpath, am) })
			must(t, err)
			if used != wantUsed {
				t.Errorf("re-attach used %q", used)
			}
			inNS(t, p.host, func() { err = d.SetMode(ep, Observe, am) })
			must(t, err)
			if rec, _ := d.Objects().Endpoint(p.hostIdx); rec.Mode != bpf.ModeObserve {
				t.Errorf("mode %d after SetMode observe", rec.Mode)
			}
			wantUDP(t, d, slot, 100, 40)

			// The programs keep counting after the process lets go, and
			// a new Datapath adopts maps and attachment.
			must(t, d.Close())
			udpBurst(t, p.ctr, p.host, p.ctrIP, p.hostIP, 10, 200)
			d, err = OpenDatapath(pinDir)
			must(t, err)
			defer d.Close()
			inNS(t, p.host, func() {
				if got, ok := d.Installed(p.hostIf); !ok || got != wantUsed {
					t.Errorf("after reopen: Attached = %q, %v", got, ok)
				}
			})
			wantUDP(t, d, slot, 110, 40)
			inNS(t, p.host, func() { used, err = d.Install(ep, Observe, HookAuto) })
			must(t, err)
			if used != wantUsed {
				t.Errorf("re-attach after reopen used %q, want %q", used, wantUsed)
			}
			udpBurst(t, p.host, p.ctr, p.hostIP, p.ctrIP, 5, 200)
			wantUDP(t, d, slot, 110, 45)

			// Detach leaves nothing; a second Detach is a no-op.
			for range 2 {
				inNS(t, p.host, func() { err = d.Remove(p.hostIf, p.hostIdx, p.ctrIP, nil) })
				must(t, err)
			}
			if n := tcxPrograms(t, p.host, p.hostIdx); n != 0 {
				t.Errorf("%d tcx programs left", n)
			}
			if f, q := tcState(t, p.host, p.hostIdx); f != 0 || q {
				t.Errorf("tc left: %d filters, clsact %v", f, q)
			}
			if _, err := os.Stat(d.LinkPinDir(p.hostIf)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("link pin dir left: %v", err)
			}
			o := d.Objects()
			if n := mapEntries(t, o.Endpoints) + mapEntries(t, o.EndpointsByIp); n != 0 {
				t.Errorf("%d map entries left", n)
			}
			inNS(t, p.host, func() {
				if got, ok := d.Installed(p.hostIf); ok {
					t.Errorf("still attached (%s)", got)
				}
			})
		})
	}
}

func TestDatapathSwitchAttachMode(t *testing.T) {
	testenv.RequireRoot(t)
	p := newPairNet(t)
	d, err := OpenDatapath(testPinDir(t))
	must(t, err)
	defer d.Close()
	ep := p.endpoint(1)
	for _, am := range []Hook{HookTCX, HookTC, HookTCX} {
		var used Hook
		inNS(t, p.host, func() { used, err = d.Install(ep, Observe, am) })
		must(t, err)
		if used != am {
			t.Fatalf("used %q, want %q", used, am)
		}
		progs := tcxPrograms(t, p.host, p.hostIdx)
		filters, _ := tcState(t, p.host, p.hostIdx)
		if (am == HookTCX) != (progs == 2 && filters == 0) || (am == HookTC) != (progs == 0 && filters == 2) {
			t.Errorf("%s: %d tcx programs, %d tc filters", am, progs, filters)
		}
	}
	// Off detaches.
	inNS(t, p.host, func() { err = d.SetMode(ep, Off, HookAuto) })
	must(t, err)
	if n := tcxPrograms(t, p.host, p.hostIdx); n != 0 {
		t.Errorf("off: %d tcx programs left", n)
	}
	// And coming back from off attaches again.
	inNS(t, p.host, func() { err = d.SetMode(ep, Fastpath, HookAuto) })
	must(t, err)
	if n := tcxPrograms(t, p.host, p.hostIdx); n != 2 {
		t.Errorf("fastpath after off: %d tcx programs", n)
	}
	inNS(t, p.host, func() { err = d.Remove(p.hostIf, p.hostIdx, p.ctrIP, nil) })
	must(t, err)
}

func TestDatapathAttachWrongDevice(t *testing.T) {
	testenv.RequireRoot(t)
	p := newPairNet(t)
	d, err := OpenDatapath(testPinDir(t))
	must(t, err)
	defer d.Close()
	ep := p.endpoint(1)
	ep.HostIfName = "nswnope"
	inNS(t, p.host, func() { _, err = d.Install(ep, Observe, HookAuto) })
	if err == nil {
		t.Fatal("attach to an index with another name succeeded")
	}
	if n := mapEntries(t, d.Objects().Endpoints); n != 0 {
		t.Errorf("%d endpoint entries left after failed attach", n)
	}
	// Detach of something that is not there is fine.
	inNS(t, p.host, func() { err = d.Remove("nswnope", 99999, nil, nil) })
	must(t, err)
}

func TestTCXSupported(t *testing.T) {
	testenv.RequireRoot(t)
	ok, err := TCXSupported()
	must(t, err)
	t.Logf("tcx supported: %v", ok)
	nk, err := NetkitSupported()
	must(t, err)
	t.Logf("netkit supported: %v", nk)
}

// TestFastpathRedirect wires two "containers" into a bridge in a
// throwaway host netns and checks that, with both in fast-path mode, their
// traffic is redirected peer to peer (the bridge port towards the receiver
// does not transmit it) and counted exactly on both sides, and that after
// switching the receiver to observe the same traffic takes the bridge and is
// still counted exactly.
func TestFastpathRedirect(t *testing.T) {
	testenv.RequireRoot(t)
	host, c1, c2 := newNetNS(t), newNetNS(t), newNetNS(t)
	for _, ns := range []netns.NsHandle{host, c1, c2} {
		disableIPv6(t, ns)
	}
	hh, err := netlink.NewHandleAt(host)
	must(t, err)
	defer hh.Close()
	bla := netlink.NewLinkAttrs()
	bla.Name = "nswbr0"
	must(t, hh.LinkAdd(&netlink.Bridge{LinkAttrs: bla}))
	br, err := hh.LinkByName("nswbr0")
	must(t, err)
	must(t, hh.LinkSetUp(br))

	type ctr struct {
		ns     netns.NsHandle
		hostIf string
		idx    int
		mac    net.HardwareAddr
		ip     net.IP
		ctrIdx int
	}
	mk := func(ns netns.NsHandle, n byte) *ctr {
		c := &ctr{ns: ns, hostIf: "nswh" + string('0'+n), ip: net.IPv4(10, 213, 1, n).To4()}
		la := netlink.NewLinkAttrs()
		la.Name = c.hostIf
		la.MasterIndex = br.Attrs().Index
		must(t, hh.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns)}))
		hl, err := hh.LinkByName(c.hostIf)
		must(t, err)
		must(t, hh.LinkSetUp(hl))
		c.idx = hl.Attrs().Index
		ch, err := netlink.NewHandleAt(ns)
		must(t, err)
		defer ch.Close()
		cl, err := ch.LinkByName("eth0")
		must(t, err)
		c.mac, c.ctrIdx = cl.Attrs().HardwareAddr, cl.Attrs().Index
		must(t, ch.AddrAdd(cl, &netlink.Addr{IPNet: &net.IPNet{IP: c.ip, Mask: net.CIDRMask(24, 32)}}))
		must(t, ch.LinkSetUp(cl))
		return c
	}
	a, b := mk(c1, 2), mk(c2, 3)
	for _, pair := range [][2]*ctr{{a, b}, {b, a}} {
		ch, err := netlink.NewHandleAt(pair[0].ns)
		must(t, err)
		must(t, ch.NeighAdd(&netlink.Neigh{LinkIndex: pair[0].ctrIdx, State: netlink.NUD_PERMANENT, IP: pair[1].ip, HardwareAddr: pair[1].mac}))
		ch.Close()
	}

	d, err := OpenDatapath(testPinDir(t))
	must(t, err)
	defer d.Close()
	spec := func(c *ctr, slot uint32) EndpointSpec {
		return EndpointSpec{HostIfName: c.hostIf, HostIfindex: c.idx, MAC: c.mac, IP4: c.ip, Guard: true, Slot: slot}
	}
	inNS(t, host, func() {
		for i, c := range []*ctr{a, b} {
			if _, err := d.Install(spec(c, uint32(10+i)), Fastpath, HookAuto); err != nil {
				panic(err)
			}
		}
	})
	txOf := func(c *ctr) uint64 {
		l, err := hh.LinkByIndex(c.idx)
		must(t, err)
		return l.Attrs().Statistics.TxPackets
	}
	bridgedToB := txOf(b)

	udpBurst(t, a.ns, b.ns, a.ip, b.ip, 100, 200)
	udpBurst(t, b.ns, a.ns, b.ip, a.ip, 30, 200)

	if n := txOf(b) - bridgedToB; n != 0 {
		t.Errorf("bridge port of b transmitted %d packets; want 0 (fast path)", n)
	}
	check := func(slot uint32, tx, rx, fast uint64) {
		t.Helper()
		all, err := d.ReadCounters()
		must(t, err)
		var want Counters
		want.V[bpf.DirTX][bpf.L3IPv4][bpf.L4UDP] = bpf.Counter{Packets: tx, Bytes: tx * udpFrame}
		want.V[bpf.DirRX][bpf.L3IPv4][bpf.L4UDP] = bpf.Counter{Packets: rx, Bytes: rx * udpFrame}
		want.FastpathPackets, want.FastpathBytes = fast, fast*udpFrame
		if got := all[slot]; got != want {
			t.Errorf("slot %d:\n got  %+v\n want %+v", slot, got, want)
		}
	}
	check(10, 100, 30, 100)
	check(11, 30, 100, 30)

	// Receiver b back to observe: a's packets to b take the bridge, and so
	// do b's (b is not in fast-path mode), still counted exactly once.
	inNS(t, host, func() {
		if err := d.SetMode(spec(b, 11), Observe, HookAuto); err != nil {
			panic(err)
		}
	})
	bridgedToB = txOf(b)
	udpBurst(t, a.ns, b.ns, a.ip, b.ip, 10, 200)
	if n := txOf(b) - bridgedToB; n != 10 {
		t.Errorf("bridge port of b transmitted %d packets; want 10 (bridged)", n)
	}
	check(10, 110, 30, 100)
	check(11, 30, 110, 30)

	inNS(t, host, func() {
		for _, c := range []*ctr{a, b} {
			if err := d.Remove(c.hostIf, c.idx, c.ip, nil); err != nil {
				panic(err)
			}
		}
	})
}

func TestOpenDatapathMaps(t *testing.T) {
	testenv.RequireRoot(t)
	pinDir := testPinDir(t)
	_, err := OpenDatapathMaps(pinDir)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "no datapath pinned at "+pinDir+": nothing is attached") {
		t.Fatalf("OpenDatapathMaps with nothing pinned: %v", err)
	}
	d, err := OpenDatapath(pinDir)
	must(t, err)
	defer d.Close()
	ep, err := bpf.NewEndpoint(4242, 7, net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.IPv4(10, 98, 0, 2), nil, bpf.ModeObserve, 0)
	must(t, err)
	must(t, d.Objects().PutEndpoint(ep))

	r, err := OpenDatapathMaps(pinDir)
	must(t, err)
	defer r.Close()
	c, err := r.ReadCounters()
	must(t, err)
	if _, ok := c[7]; len(c) != 1 || !ok {
		t.Errorf("ReadCounters: %v", c)
	}
	spec := EndpointSpec{HostIfName: "lo", HostIfindex: 1, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Slot: 8}
	if _, err := r.Install(spec, Observe, HookAuto); !errors.Is(err, errReadOnly) {
		t.Errorf("Attach on a read-only datapath: %v", err)
	}
	if err := r.SetMode(spec, Fastpath, HookAuto); !errors.Is(err, errReadOnly) {
		t.Errorf("SetMode on a read-only datapath: %v", err)
	}
}

// childPinDirEnv makes the test binary, run as a child by
// TestOpenDatapathFreshProcess, measure itself instead of testing.
const childPinDirEnv = "NSWIRE_TEST_OPEN_CHILD"

// TestOpenDatapathChild runs only as TestOpenDatapathFreshProcess's child:
// it prints how long OpenDatapath, and OpenDatapathMaps + ReadCounters,
// take in a process that has not touched the datapath before.
func TestOpenDatapathChild(t *testing.T) {
	pinDir := os.Getenv(childPinDirEnv)
	if pinDir == "" {
		t.Skip("runs only as a child of TestOpenDatapathFreshProcess")
	}
	t0 := time.Now()
	d, err := OpenDatapath(pinDir)
	open := time.Since(t0)
	must(t, err)
	info, err := d.Objects().FromContainer.Info()
	must(t, err)
	progID, _ := info.ID()
	d.Close()
	t0 = time.Now()
	r, err := OpenDatapathMaps(pinDir)
	must(t, err)
	c, err := r.ReadCounters()
	read := time.Since(t0)
	must(t, err)
	r.Close()
	fmt.Printf("CHILD open_ns=%d stats_ns=%d endpoints=%d prog_id=%d\n", open.Nanoseconds(), read.Nanoseconds(), len(c), progID)
}

// TestOpenDatapathFreshProcess: after a first process has pinned the
// datapath, a new process adopts the very same programs (it loads and
// verifies nothing) and reads the counters of all 500 endpoints. The times
// are logged, not asserted (they are benchmarks on a shared machine): about
// 0.4 ms to adopt and under 2 ms to read 500 endpoints here.
func TestOpenDatapathFreshProcess(t *testing.T) {
	testenv.RequireRoot(t)
	if os.Getenv(childPinDirEnv) != "" {
		t.Skip("child")
	}
	pinDir := testPinDir(t)
	d, err := OpenDatapath(pinDir)
	must(t, err)
	defer d.Close()
	info, err := d.Objects().FromContainer.Info()
	must(t, err)
	wantID, _ := info.ID()
	for i := range 500 {
		ep, err := bpf.NewEndpoint(100000+i, uint32(i), net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)}, nil, nil, bpf.ModeObserve, 0)
		must(t, err)
		must(t, d.Objects().PutEndpoint(ep))
	}
	const runs = 20
	var open, stats, wall []time.Duration
	for range runs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOpenDatapathChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childPinDirEnv+"="+pinDir)
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		w := time.Since(t0)
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		var o, s, n int64
		var id uint32
		i := bytes.Index(out, []byte("CHILD "))
		if i < 0 {
			t.Fatalf("child printed no measurement:\n%s", out)
		}
		if _, err := fmt.Sscanf(string(out[i:]), "CHILD open_ns=%d stats_ns=%d endpoints=%d prog_id=%d", &o, &s, &n, &id); err != nil || n != 500 {
			t.Fatalf("child output (%v, %d endpoints):\n%s", err, n, out)
		}
		if ebpf.ProgramID(id) != wantID {
			t.Fatalf("child runs program %d, not the pinned %d: it loaded its own", id, wantID)
		}
		open, stats, wall = append(open, time.Duration(o)), append(stats, time.Duration(s)), append(wall, w)
	}
	med := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	mo, ms, mw := med(open), med(stats), med(wall)
	t.Logf("fresh process, median of %d: OpenDatapath %v (min %v, max %v); OpenDatapathMaps+ReadCounters(500) %v; whole test-binary child %v",
		runs, mo, open[0], open[len(open)-1], ms, mw)
}
