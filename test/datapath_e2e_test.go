//go:build linux

package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nswire/nswire/control/state"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/test/testenv"
)

// quietNS turns IPv6 off on every interface of ns, so that no router
// solicitation or DAD packet adds to an exact count.
func quietNS(t *testing.T, ns netns.NsHandle) {
	t.Helper()
	err := testenv.InNetNS(ns, func() error {
		for _, p := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
			if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// udpSocketIn opens a UDP socket bound to laddr inside ns.
func udpSocketIn(t *testing.T, ns netns.NsHandle, laddr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := testenv.InNetNS(ns, func() error {
		a, err := net.ResolveUDPAddr("udp4", laddr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp4", a)
		return err
	})
	if err != nil {
		t.Fatalf("udp socket in netns on %s: %v", laddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// burst sends n datagrams of size bytes from c to dst and waits until the
// receiver has them all (or fails after a deadline).
func burst(t *testing.T, from, to *net.UDPConn, n, size int) {
	t.Helper()
	payload := bytes.Repeat([]byte{'x'}, size)
	got := make(chan int, 1)
	go func() {
		buf := make([]byte, 65536)
		k := 0
		to.SetReadDeadline(time.Now().Add(10 * time.Second))
		for k < n {
			if _, _, err := to.ReadFromUDP(buf); err != nil {
				break
			}
			k++
		}
		got <- k
	}()
	dst := to.LocalAddr().(*net.UDPAddr)
	for i := 0; i < n; i++ {
		if _, err := from.WriteToUDP(payload, dst); err != nil {
			t.Fatal(err)
		}
		if i%64 == 63 {
			time.Sleep(time.Millisecond) // stay well inside socket buffers
		}
	}
	if k := <-got; k != n {
		t.Fatalf("receiver got %d of %d datagrams", k, n)
	}
}

func (e *env) stats(name string) control.EndpointStats {
	e.t.Helper()
	var s []control.EndpointStats
	out := e.ok("stats", name, "-o", "json")
	if err := json.Unmarshal([]byte(out), &s); err != nil || len(s) != 1 {
		e.t.Fatalf("stats -o json: %v\n%s", err, out)
	}
	return s[0]
}

func linkStats(t *testing.T, ns netns.NsHandle, name string) (rxp, rxb, txp, txb uint64) {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	s := l.Attrs().Statistics
	return s.RxPackets, s.RxBytes, s.TxPackets, s.TxBytes
}

// quiescentSnapshot reads nswire's stats of id and the interface counters
// of ifname in ns at one quiet moment: the interface counters are read
// before and after nswire's, and the pair is taken only when nothing
// arrived in between (a stray broadcast on the bridge), so that the two can
// be compared exactly.
func (e *env) quiescentSnapshot(id string, ns netns.NsHandle, ifname string) (s control.EndpointStats, rxp, rxb, txp, txb uint64) {
	e.t.Helper()
	for try := 0; try < 20; try++ {
		a0, a1, a2, a3 := linkStats(e.t, ns, ifname)
		s = e.stats(id)
		b0, b1, b2, b3 := linkStats(e.t, ns, ifname)
		if a0 == b0 && a1 == b1 && a2 == b2 && a3 == b3 {
			return s, b0, b1, b2, b3
		}
	}
	e.t.Fatalf("%s kept receiving or sending while counters were read", ifname)
	return
}

// warmARP makes both sides resolve each other before an exact count.
func warmARP(t *testing.T, a, b *net.UDPConn) {
	t.Helper()
	burst(t, a, b, 1, 1)
	burst(t, b, a, 1, 1)
}

// TestCountersExact sends a known burst each way between the host and an
// attached container and checks nswire's counters equal it exactly, and
// equal the container's own eth0 counters over the same interval.
func TestCountersExact(t *testing.T) {
	for _, am := range []string{"tcx", "tc"} {
		t.Run(am, func(t *testing.T) {
			e := newEnv(t)
			cli := testenv.Docker(t)
			id, pid := testenv.RunNone(t, cli, "exact", "sleep", "300")
			cns := containerNS(t, pid)
			quietNS(t, cns)
			rec := e.attachJSON(id, "--attach-mode", am)
			if string(rec.Hook) != am {
				t.Fatalf("attached with %q, asked %q", rec.Hook, am)
			}
			inC := udpSocketIn(t, cns, rec.IP().String()+":9000")
			onHost := udpSocketIn(t, hostNS(t), "172.17.0.1:0")
			warmARP(t, onHost, inC)

			const n, size = 500, 300
			frame := uint64(14 + 20 + 8 + size) // Ethernet + IPv4 + UDP + payload
			before, rxp0, rxb0, txp0, txb0 := e.quiescentSnapshot(id, cns, "eth0")
			burst(t, onHost, inC, n, size) // host -> container: rx
			burst(t, inC, onHost, n, size) // container -> host: tx
			after, rxp1, rxb1, txp1, txb1 := e.quiescentSnapshot(id, cns, "eth0")

			d := func(a, b map[string]control.Flow, k string) control.Flow {
				return control.Flow{Packets: b[k].Packets - a[k].Packets, Bytes: b[k].Bytes - a[k].Bytes}
			}
			want := control.Flow{Packets: n, Bytes: n * frame}
			if got := d(before.RXByProto, after.RXByProto, "ipv4/udp"); got != want {
				t.Errorf("rx ipv4/udp = %+v, want %+v", got, want)
			}
			if got := d(before.TXByProto, after.TXByProto, "ipv4/udp"); got != want {
				t.Errorf("tx ipv4/udp = %+v, want %+v", got, want)
			}
			// The whole interval, every protocol, against the kernel's own
			// counters of the container's eth0.
			if got, k := after.RX.Packets-before.RX.Packets, rxp1-rxp0; got != k {
				t.Errorf("rx packets: nswire %d, eth0 %d", got, k)
			}
			if got, k := after.RX.Bytes-before.RX.Bytes, rxb1-rxb0; got != k {
				t.Errorf("rx bytes: nswire %d, eth0 %d", got, k)
			}
			if got, k := after.TX.Packets-before.TX.Packets, txp1-txp0; got != k {
				t.Errorf("tx packets: nswire %d, eth0 %d", got, k)
			}
			if got, k := after.TX.Bytes-before.TX.Bytes, txb1-txb0; got != k {
				t.Errorf("tx bytes: nswire %d, eth0 %d", got, k)
			}
		})
	}
}

// TestCountersSurviveRestart kills the nswire process that is watching while
// traffic flows; a new process reads counters that kept counting.
func TestCountersSurviveRestart(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	id, pid := testenv.RunNone(t, cli, "restart", "sleep", "300")
	cns := containerNS(t, pid)
	quietNS(t, cns)
	c := e.cmd("attach", id, "--watch", "--interval", "100ms")
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	live := make(chan struct{})
	go func() { // signal once the live view shows rates
		var seen bytes.Buffer
		buf := make([]byte, 4096)
		for {
			n, err := stdout.Read(buf)
			seen.Write(buf[:n])
			if bytes.Contains(seen.Bytes(), []byte("RX RATE")) {
				close(live)
				io.Copy(io.Discard, stdout)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var rec *state.Record
	deadline := time.Now().Add(10 * time.Second)
	for rec == nil && time.Now().Before(deadline) {
		rec, _ = (state.Store{Dir: e.stateDir}).Get(id)
		time.Sleep(20 * time.Millisecond)
	}
	if rec == nil {
		c.Process.Kill()
		t.Fatal("attach --watch did not attach")
	}
	inC := udpSocketIn(t, cns, rec.IP().String()+":9000")
	onHost := udpSocketIn(t, hostNS(t), "172.17.0.1:0")
	warmARP(t, onHost, inC)
	before := e.stats(id)
	burst(t, onHost, inC, 200, 100)
	select {
	case <-live:
	case <-time.After(10 * time.Second):
		t.Fatal("attach --watch showed no live stats")
	}
	c.Process.Signal(syscall.SIGKILL)
	c.Wait()
	burst(t, onHost, inC, 300, 100)
	after := e.stats(id)
	if got := after.RXByProto["ipv4/udp"].Packets - before.RXByProto["ipv4/udp"].Packets; got != 500 {
		t.Fatalf("counted %d datagrams across the kill, want 500", got)
	}
}

// TestFastpathCountsExact: the same container-to-container burst gives the
// same per-container counts in observe and in fastpath, and the fast-pathed
// counter equals the packets that took the fast path.
func TestFastpathCountsExact(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	idA, pidA := testenv.RunNone(t, cli, "fpa", "sleep", "300")
	idB, pidB := testenv.RunNone(t, cli, "fpb", "sleep", "300")
	nsA, nsB := containerNS(t, pidA), containerNS(t, pidB)
	quietNS(t, nsA)
	quietNS(t, nsB)
	recA, recB := e.attachJSON(idA), e.attachJSON(idB)
	a := udpSocketIn(t, nsA, recA.IP().String()+":9000")
	b := udpSocketIn(t, nsB, recB.IP().String()+":9000")
	warmARP(t, a, b)
	const n, size = 400, 500
	frame := uint64(14 + 20 + 8 + size)
	measure := func() (txA, rxB, fpA control.Flow, bBridgeTx uint64) {
		sa0 := e.stats(idA)
		sb0, rxp0, rxb0, _, _ := e.quiescentSnapshot(idB, nsB, "eth0")
		hb, _ := netlink.LinkByName(recB.HostIf)
		bTx0 := hb.Attrs().Statistics.TxPackets
		burst(t, a, b, n, size)
		sa1 := e.stats(idA)
		sb1, rxp1, rxb1, _, _ := e.quiescentSnapshot(idB, nsB, "eth0")
		hb, _ = netlink.LinkByName(recB.HostIf)
		sub := func(x, y control.Flow) control.Flow {
			return control.Flow{Packets: y.Packets - x.Packets, Bytes: y.Bytes - x.Bytes}
		}
		// B's own eth0 sees redirected packets too on this kernel
		// (bpf_redirect_peer adds them to the peer's rx stats since 6.8):
		// it is B's host veth and the bridge that go blind.
		if got := sub(sb0.RX, sb1.RX); got.Packets != rxp1-rxp0 || got.Bytes != rxb1-rxb0 {
			t.Errorf("B rx: nswire %+v, B's eth0 %d packets %d bytes", got, rxp1-rxp0, rxb1-rxb0)
		}
		return sub(sa0.TXByProto["ipv4/udp"], sa1.TXByProto["ipv4/udp"]), sub(sb0.RXByProto["ipv4/udp"], sb1.RXByProto["ipv4/udp"]),
			sub(sa0.Fastpathed, sa1.Fastpathed), hb.Attrs().Statistics.TxPackets - bTx0
	}
	want := control.Flow{Packets: n, Bytes: n * frame}
	txA, rxB, fp, bridged := measure()
	if txA != want || rxB != want || fp.Packets != 0 {
		t.Fatalf("observe: tx A %+v, rx B %+v, fastpathed %+v; want %+v and 0", txA, rxB, fp, want)
	}
	if bridged < n {
		t.Fatalf("observe: B's host veth transmitted %d packets, want ≥ %d (through the bridge)", bridged, n)
	}
	e.ok("mode", idA, "fastpath")
	e.ok("mode", idB, "fastpath")
	txA, rxB, fp, bridged = measure()
	if txA != want || rxB != want || fp != want {
		t.Fatalf("fastpath: tx A %+v, rx B %+v, fastpathed %+v; want all %+v", txA, rxB, fp, want)
	}
	// Broadcasts of other hosts on docker0 (a neighbour's gratuitous ARP)
	// may cross B's host veth meanwhile; the burst must not.
	if bridged >= n/10 {
		t.Fatalf("fastpath: %d packets of the %d-datagram burst still crossed B's host veth", bridged, n)
	}
	if ls := e.ok("ls"); !strings.Contains(ls, "fastpath") {
		t.Fatalf("ls does not show the mode:\n%s", ls)
	}
}

// TestModeSwitchKeepsTCPStream: a TCP stream open across
// off → observe → fastpath → observe → off loses no byte and is not reset.
func TestModeSwitchKeepsTCPStream(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	idA, pidA := testenv.RunNone(t, cli, "tcpa", "sleep", "300")
	idB, pidB := testenv.RunNone(t, cli, "tcpb", "sleep", "300")
	nsA, nsB := containerNS(t, pidA), containerNS(t, pidB)
	e.attachJSON(idA, "--mode", "off")
	recB := e.attachJSON(idB, "--mode", "off")
	var ln net.Listener
	if err := testenv.InNetNS(nsB, func() (err error) { ln, err = net.Listen("tcp4", recB.IP().String()+":7000"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		n   int64
		sum [32]byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		h := sha256.New()
		n, err := io.Copy(h, c)
		var r result
		r.n, r.err = n, err
		copy(r.sum[:], h.Sum(nil))
		res <- r
	}()
	var conn net.Conn
	if err := testenv.InNetNS(nsA, func() (err error) {
		conn, err = net.DialTimeout("tcp4", recB.IP().String()+":7000", 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	var sent int64
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 16384)
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- conn.Close()
				return
			default:
			}
			for j := range buf {
				buf[j] = byte(i + j)
			}
			n, err := conn.Write(buf)
			mu.Lock()
			h.Write(buf[:n])
			sent += int64(n)
			mu.Unlock()
			if err != nil {
				done <- err
				return
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	for _, mode := range []string{"observe", "fastpath", "observe", "off"} {
		time.Sleep(300 * time.Millisecond)
		e.ok("mode", idA, mode)
		e.ok("mode", idB, mode)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("sender: %v", err)
	}
	r := <-res
	if r.err != nil {
		t.Fatalf("receiver: %v", r.err)
	}
	mu.Lock()
	defer mu.Unlock()
	var want [32]byte
	copy(want[:], h.Sum(nil))
	if r.n != sent || r.sum != want {
		t.Fatalf("received %d bytes (sha %x), sent %d (sha %x)", r.n, r.sum[:4], sent, want[:4])
	}
	if sent < 1<<20 {
		t.Fatalf("only %d bytes streamed: the test did not exercise the switches", sent)
	}
}

// TestObserveDockerWired counts a container Docker wired itself, without
// touching its wiring.
func TestObserveDockerWired(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	id, pid := testenv.RunBridge(t, cli, "observed", "sleep", "300")
	cns := containerNS(t, pid)
	quietNS(t, cns)
	before := snapshot(t, cns)
	out := e.ok("observe", id, "-o", "json")
	var rec state.Record
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatal(err)
	}
	h, _ := netlink.NewHandleAt(cns)
	eth0, _ := h.LinkByName("eth0")
	h.Close()
	if !rec.Observed || rec.HostIfindex != eth0.Attrs().ParentIndex || rec.Bridge != "docker0" {
		t.Fatalf("observe record = %+v, eth0 peer index %d", rec, eth0.Attrs().ParentIndex)
	}
	inC := udpSocketIn(t, cns, rec.IP().String()+":9000")
	onHost := udpSocketIn(t, hostNS(t), "172.17.0.1:0")
	warmARP(t, onHost, inC)
	s0 := e.stats(id)
	burst(t, onHost, inC, 100, 64)
	burst(t, inC, onHost, 50, 64)
	s1 := e.stats(id)
	if rx, tx := s1.RXByProto["ipv4/udp"].Packets-s0.RXByProto["ipv4/udp"].Packets, s1.TXByProto["ipv4/udp"].Packets-s0.TXByProto["ipv4/udp"].Packets; rx != 100 || tx != 50 {
		t.Fatalf("observed rx %d tx %d, want 100 and 50", rx, tx)
	}
	e.fails([]string{"mode", id, "fastpath"}, "only observed")
	e.ok("unobserve", id)
	if got := snapshot(t, cns); got != before {
		t.Fatalf("observe/unobserve changed the container:\n%s\nwant:\n%s", got, before)
	}
	if left := pinsUnder(e.pinDir); len(left) != 0 {
		t.Fatalf("pins left after unobserve: %v", left)
	}
	e.ok("unobserve", id)
}
