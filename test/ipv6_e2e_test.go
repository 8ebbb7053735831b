//go:build linux

package test

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/nswire/nswire/test/testenv"
)

// TestDualStackAttach: on a Docker network made with --ipv6 (a unique local
// prefix), `nswire attach --network` gives the container an IPv4 and an
// IPv6 address, chosen free of the network's containers, with a default
// route per family; its web page answers over IPv6 from the host; the
// counters see the IPv6 traffic; --ip6 gives a chosen address; bad --ip6
// values are errors naming them, and change nothing.
func TestDualStackAttach(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	name := dualStackNetwork(t, "nswv6", "10.234.11.0/28", "10.234.11.1", "fd00:4e53:7769::/64", "fd00:4e53:7769::1")
	testenv.RunOn(t, cli, name, "v6peer", "sleep", "300") // makes the bridge; takes ::2
	idA, _ := testenv.RunNone(t, cli, "v6a")              // the image's httpd
	idB, _ := testenv.RunNone(t, cli, "v6b", "sleep", "300")
	pfx := netip.MustParsePrefix("fd00:4e53:7769::/64")

	before := hostSnapshot(t)
	for _, bad := range []struct{ ip6, want string }{
		{"fd00:9999::10/64", "outside the bridge's IPv6 prefix"},
		{"fd00:4e53:7769::1", "the gateway's address"},
		{"fe80::10/64", "is link-local"},
		{"10.234.11.9", "is not an IPv6 address"},
	} {
		e.fails([]string{"attach", idB, "--network", name, "--ip6", bad.ip6}, bad.ip6, bad.want)
	}
	e.fails([]string{"attach", idB, "--ip6", "fd00:4e53:7769::10"}, "bridge docker0 has no global IPv6 address")
	if now := hostSnapshot(t); now != before {
		t.Fatalf("a refused attach changed the host:\n%s", now)
	}

	recA := e.attachJSON(idA, "--network", name)
	if !pfx.Contains(recA.Address6.Addr()) || recA.Address6.Bits() != 64 || recA.Gateway6 != netip.MustParseAddr("fd00:4e53:7769::1") {
		t.Fatalf("A: address6 %s gateway6 %s", recA.Address6, recA.Gateway6)
	}
	if recA.Address6.Addr() == netip.MustParseAddr("fd00:4e53:7769::2") {
		t.Fatalf("A took the Docker container's address")
	}
	recB := e.attachJSON(idB, "--network", name, "--ip6", "fd00:4e53:7769::10")
	if recB.Address6 != netip.MustParsePrefix("fd00:4e53:7769::10/64") {
		t.Fatalf("B: address6 %s, want the one given", recB.Address6)
	}
	out, code := testenv.Exec(t, cli, idB, "ip", "-6", "route", "show", "default")
	if code != 0 || !strings.Contains(out, "via fd00:4e53:7769::1") || !strings.Contains(out, "dev eth0") {
		t.Fatalf("B's IPv6 default route: %q (exit %d)", out, code)
	}
	out, code = testenv.Exec(t, cli, idB, "ip", "-6", "addr", "show", "dev", "eth0")
	global := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "fd00:4e53:7769::10/64") {
			global = l
		}
	}
	// accept_dad=0 after nswire's own probe: usable at once, not
	// "tentative" for a second.
	if code != 0 || global == "" || strings.Contains(global, "tentative") {
		t.Fatalf("B's eth0: the global address is missing or tentative: %q", out)
	}

	// The page over IPv6 from the host, counted as IPv6 TCP.
	tcp0 := e.stats(idA).RXByProto["ipv6/tcp"]
	url := fmt.Sprintf("http://[%s]/", recA.Address6.Addr())
	var body string
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{}).DialContext}}
		r, err := c.Get(url)
		if err == nil {
			buf := make([]byte, 4096)
			n, _ := r.Body.Read(buf)
			r.Body.Close()
			body = string(buf[:n])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(body, "hello from nswire") {
		t.Fatalf("GET %s: %q", url, body)
	}
	if tcp := e.stats(idA).RXByProto["ipv6/tcp"]; tcp.Packets <= tcp0.Packets {
		t.Errorf("IPv6 TCP to A not counted: %d -> %d packets", tcp0.Packets, tcp.Packets)
	}
	if st := e.stats(idB); st.Address6 != "fd00:4e53:7769::10/64" {
		t.Errorf("stats -o json: address6 %q, want B's", st.Address6)
	}
	if ls := e.ok("ls", "-o", "json"); !strings.Contains(ls, `"address6": "fd00:4e53:7769::10/64"`) {
		t.Errorf("ls -o json lacks B's address6:\n%s", ls)
	}
	e.ok("detach", idA, idB)
}

func boolPtr(b bool) *bool { return &b }

// udp6SocketIn opens a UDP socket bound to laddr ("[addr]:port") inside ns.
func udp6SocketIn(t *testing.T, ns netns.NsHandle, laddr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := testenv.InNetNS(ns, func() error {
		a, err := net.ResolveUDPAddr("udp6", laddr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp6", a)
		return err
	})
	if err != nil {
		t.Fatalf("udp6 socket in netns on %s: %v", laddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestFastpathIPv6CountsExact: between two dual-stack containers in
// fastpath, an IPv6 UDP burst is fast-pathed in full and counted exactly
// once on each side (N datagrams of S bytes: N×(14+40+8+S) bytes), as
// ipv6/udp; in observe the same burst takes the bridge with the same counts.
func TestFastpathIPv6CountsExact(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	name := dualStackNetwork(t, "nswv6fp", "10.234.12.0/28", "10.234.12.1", "fd00:4e53:7770::/64", "fd00:4e53:7770::1")
	testenv.RunOn(t, cli, name, "v6fppeer", "sleep", "300")
	idA, pidA := testenv.RunNone(t, cli, "v6fpa", "sleep", "300")
	idB, pidB := testenv.RunNone(t, cli, "v6fpb", "sleep", "300")
	nsA, nsB := containerNS(t, pidA), containerNS(t, pidB)
	recA, recB := e.attachJSON(idA, "--network", name), e.attachJSON(idB, "--network", name)
	a := udp6SocketIn(t, nsA, fmt.Sprintf("[%s]:9400", recA.Address6.Addr()))
	b := udp6SocketIn(t, nsB, fmt.Sprintf("[%s]:9400", recB.Address6.Addr()))
	warmARP(t, a, b) // neighbour discovery both ways
	const n, size = 200, 300
	frame := uint64(14 + 40 + 8 + size)
	for _, mode := range []string{"observe", "fastpath"} {
		e.ok("mode", idA, mode)
		e.ok("mode", idB, mode)
		sa0, sb0 := e.stats(idA), e.stats(idB)
		burst(t, a, b, n, size)
		sa1, sb1 := e.stats(idA), e.stats(idB)
		tx := sa1.TXByProto["ipv6/udp"].Packets - sa0.TXByProto["ipv6/udp"].Packets
		txb := sa1.TXByProto["ipv6/udp"].Bytes - sa0.TXByProto["ipv6/udp"].Bytes
		rx := sb1.RXByProto["ipv6/udp"].Packets - sb0.RXByProto["ipv6/udp"].Packets
		rxb := sb1.RXByProto["ipv6/udp"].Bytes - sb0.RXByProto["ipv6/udp"].Bytes
		fp := sa1.Fastpathed.Packets - sa0.Fastpathed.Packets
		wantFP := uint64(0)
		if mode == "fastpath" {
			wantFP = n
		}
		if tx != n || txb != n*frame || rx != n || rxb != n*frame || fp != wantFP {
			t.Errorf("%s: A tx %d/%d B, B rx %d/%d B, fast-pathed %d; want %d/%d and %d", mode, tx, txb, rx, rxb, fp, n, n*frame, wantFP)
		}
	}
	// The flow table writes IPv6 endpoints as [address]:port and names the
	// peer, another nswire container, by its IPv6 address.
	table := e.ok("flows", idA)
	nameB := containerName(t, idB)
	row := ""
	for _, l := range strings.Split(table, "\n") {
		if strings.Contains(l, fmt.Sprintf(" [%s]:9400 ", recB.Address6.Addr())) && strings.Contains(l, " udp ") {
			row = l
		}
	}
	if row == "" || !strings.Contains(row, fmt.Sprintf(" [%s]:9400 ", recA.Address6.Addr())) || !strings.Contains(row, " "+nameB+" ") {
		t.Errorf("nswire flows: no udp row [A]:9400 to [B]:9400 named %s:\n%s", nameB, table)
	}
	e.ok("detach", idA, idB)
}
