//go:build linux

package test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/test/testenv"
	"github.com/vishvananda/netns"
)

func (e *env) flows(ref string) *control.FlowReport {
	e.t.Helper()
	var rep control.FlowReport
	out := e.ok("flows", ref, "--limit", "0", "-o", "json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		e.t.Fatalf("flows -o json: %v\n%s", err, out)
	}
	return &rep
}

// findFlow returns the one flow of rep matching dir, proto, peer and
// peerPort (0: any), failing the test when there is not exactly one.
func findFlow(t *testing.T, rep *control.FlowReport, dir, proto string, peer netip.Addr, peerPort uint16) control.FlowRow {
	t.Helper()
	var got []control.FlowRow
	for _, f := range rep.Flows {
		if f.Direction == dir && f.Proto == proto && f.Peer == peer && (peerPort == 0 || f.PeerPort == peerPort) {
			got = append(got, f)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d %s %s flows to %s:%d, want 1; all flows: %+v", len(got), dir, proto, peer, peerPort, rep.Flows)
	}
	return got[0]
}

// TestFlowsExact: known traffic between two containers — a UDP burst, three
// TCP connections to distinct ports, three pings — appears in `nswire flows`
// as exactly those flows, with exact packet and byte counts where the kernel
// makes them exact (UDP, ICMP), the same counts on both sides (TCP), TCP
// flags, the peer's name, and flows that add up to the counters; in observe
// and in fastpath (where the packets skip the bridge).
func TestFlowsExact(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	idA, pidA := testenv.RunNone(t, cli, "flowa", "sleep", "300")
	idB, pidB := testenv.RunNone(t, cli, "flowb", "sleep", "300")
	nsA, nsB := containerNS(t, pidA), containerNS(t, pidB)
	quietNS(t, nsA)
	quietNS(t, nsB)
	nameB := containerName(t, idB)
	for k, mode := range []string{"observe", "fastpath"} {
		t.Run(mode, func(t *testing.T) {
			recA, recB := e.attachJSON(idA, "--mode", mode), e.attachJSON(idB, "--mode", mode)
			defer e.ok("detach", idA, idB)
			ipA, ipB := recA.IP(), recB.IP()
			udpPort := uint16(9200 + k)
			a := udpSocketIn(t, nsA, fmt.Sprintf("%s:%d", ipA, udpPort))
			b := udpSocketIn(t, nsB, fmt.Sprintf("%s:%d", ipB, udpPort))
			warmARP(t, a, b)
			tcp0 := e.stats(idA).TXByProto["ipv4/tcp"]
			const n, size = 300, 200
			burst(t, a, b, n, size)

			tcpPorts := []uint16{7101, 7102, 7103}
			for _, p := range tcpPorts {
				tcpExchange(t, nsA, nsB, ipB, p)
			}
			if out, code := testenv.Exec(t, cli, idA, "ping", "-c", "3", "-W", "2", ipB.String()); code != 0 {
				t.Fatalf("ping from A: exit %d\n%s", code, out)
			}

			var ra, rb *control.FlowReport
			// The last packets of the TCP closes may still be in flight:
			// wait until both sides agree, at most 2 s.
			for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				ra, rb = e.flows(idA), e.flows(idB)
				if tcpAgree(ra, rb, ipB, tcpPorts) || time.Now().After(deadline) {
					break
				}
			}
			frame := uint64(14 + 20 + 8 + size)
			udp := findFlow(t, ra, "tx", "udp", ipB, udpPort)
			if udp.Packets != n+1 || udp.Bytes != n*frame+(14+20+8+1) || udp.LocalPort != udpPort || udp.PeerName != nameB {
				t.Errorf("A's udp flow: %+v; want %d packets, %d bytes, peer %s", udp, n+1, n*frame+43, nameB)
			}
			udpB := findFlow(t, rb, "rx", "udp", ipA, udpPort)
			if udpB.Packets != udp.Packets || udpB.Bytes != udp.Bytes {
				t.Errorf("B's rx udp flow %+v differs from A's tx %+v", udpB, udp)
			}
			// ping: 3 echo requests of 56 bytes (type 8) and 3 replies (type 0).
			echo := findFlow(t, ra, "tx", "icmp", ipB, 0)
			reply := findFlow(t, ra, "rx", "icmp", ipB, 0)
			const icmpFrame = 14 + 20 + 8 + 56
			if echo.Packets != 3 || echo.Bytes != 3*icmpFrame || echo.ICMPType == nil || *echo.ICMPType != 8 {
				t.Errorf("echo requests: %+v", echo)
			}
			if reply.Packets != 3 || reply.Bytes != 3*icmpFrame || reply.ICMPType == nil || *reply.ICMPType != 0 {
				t.Errorf("echo replies: %+v", reply)
			}
			var tcpSum control.Flow
			for _, p := range tcpPorts {
				f := findFlow(t, ra, "tx", "tcp", ipB, p)
				g := findFlow(t, rb, "rx", "tcp", ipA, f.LocalPort)
				if f.Packets != g.Packets || f.Bytes != g.Bytes || f.Packets < 4 {
					t.Errorf("tcp to %d: A's tx %+v, B's rx %+v", p, f, g)
				}
				if !strings.Contains(f.TCPFlags, "S") || !strings.Contains(f.TCPFlags, "F") || !strings.Contains(f.TCPFlags, ".") {
					t.Errorf("tcp to %d: flags %q, want S, F and ACK", p, f.TCPFlags)
				}
				tcpSum.Packets += f.Packets
				tcpSum.Bytes += f.Bytes
			}
			// Every TCP packet A sent is in one of these flows.
			tcp1 := e.stats(idA).TXByProto["ipv4/tcp"]
			if d := (control.Flow{Packets: tcp1.Packets - tcp0.Packets, Bytes: tcp1.Bytes - tcp0.Bytes}); d != tcpSum {
				t.Errorf("A's tcp counters grew by %+v, its tcp flows hold %+v", d, tcpSum)
			}
			if ra.Evicted != 0 || ra.Errors != 0 {
				t.Errorf("evicted %d, errors %d", ra.Evicted, ra.Errors)
			}
			if table := e.ok("flows", idA, "--sort", "packets", "--limit", "1"); !strings.Contains(table, "udp") || !strings.Contains(table, "1 of ") {
				t.Errorf("flows --sort packets --limit 1 does not show the udp flow first:\n%s", table)
			}
		})
	}
}

// tcpAgree reports whether A's tx and B's rx flows of every TCP port agree.
func tcpAgree(ra, rb *control.FlowReport, ipB netip.Addr, ports []uint16) bool {
	for _, p := range ports {
		var f *control.FlowRow
		for i := range ra.Flows {
			if x := &ra.Flows[i]; x.Direction == "tx" && x.Proto == "tcp" && x.Peer == ipB && x.PeerPort == p {
				f = x
			}
		}
		if f == nil {
			return false
		}
		ok := false
		for _, g := range rb.Flows {
			if g.Direction == "rx" && g.Proto == "tcp" && g.PeerPort == f.LocalPort && g.Packets == f.Packets && g.Bytes == f.Bytes {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// tcpExchange opens one TCP connection from nsA to ipB:port in nsB, sends a
// line, reads it back and closes both ends.
func tcpExchange(t *testing.T, nsA, nsB netns.NsHandle, ipB netip.Addr, port uint16) {
	t.Helper()
	var ln net.Listener
	addr := netip.AddrPortFrom(ipB, port).String()
	if err := testenv.InNetNS(nsB, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			_, err = io.WriteString(c, line)
		}
		done <- err
	}()
	var c net.Conn
	if err := testenv.InNetNS(nsA, func() (err error) { c, err = net.DialTimeout("tcp4", addr, 5*time.Second); return err }); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "hello flows\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 12)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello flows\n" {
		t.Fatalf("tcp echo: %q, %v", buf, err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// linkLocal is the EUI-64 link-local IPv6 address of mac.
func linkLocal(mac net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15] = mac[0]^2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}

// icmp6RA is a router advertisement frame from mac (ICMPv6 type 134 to
// ff02::1 from mac's own link-local address, which the guard lets through
// as a source), as a rogue router in a container would send it.
func icmp6RA(mac net.HardwareAddr) []byte {
	ra := make([]byte, 16)
	ra[0] = 134 // router advertisement
	ra[4] = 64  // cur hop limit
	binary.BigEndian.PutUint16(ra[6:8], 1800)
	return icmp6Frame(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, mac, linkLocal(mac), netip.MustParseAddr("ff02::1"), ra)
}

// TestDropsEvents: every kind of spoofed frame a container sends appears in
// `nswire drops` as one event naming the container, the reason, the
// addresses and the frame's source MAC; nothing is lost at this rate.
func TestDropsEvents(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	idA, pidA := testenv.RunNone(t, cli, "dropa", "sleep", "300")
	idB, pidB := testenv.RunNone(t, cli, "dropb", "sleep", "300")
	nsA, nsB := containerNS(t, pidA), containerNS(t, pidB)
	quietNS(t, nsA)
	quietNS(t, nsB)
	recA, recB := e.attachJSON(idA), e.attachJSON(idB)
	nameA := containerName(t, idA)
	macA, macB := recA.MAC, recB.MAC
	ipA, ipB := recA.IPv4(), recB.IPv4()
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	e.ok("drops") // empty the ring of anything before
	raw := newRawSender(t, nsA, "eth0")
	want := []struct {
		reason string
		src    string
		frame  []byte
	}{
		{"src-mac", ipA.String(), udpFrame(macB, macB, ipA, ipB, 9100, []byte("spoofed-mac"))},
		{"src-ipv4", ipB.String(), udpFrame(macB, macA, ipB, ipB, 9100, []byte("spoofed-ip"))},
		{"arp-spoof", ipB.String(), arpFrame(bcast, macA, 2, macA, ipB, bcast, ipB)},
		{"router-advert", linkLocal(macA).String(), icmp6RA(macA)},
	}
	for _, w := range want {
		raw.send(t, w.frame)
	}
	var rows []control.DropRow
	var lost struct {
		Lost *control.DropLoss `json:"lost"`
	}
	for deadline := time.Now().Add(3 * time.Second); len(rows) < len(want) && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, line := range strings.Split(strings.TrimSpace(e.ok("drops", idA, "-o", "json")), "\n") {
			var r control.DropRow
			if strings.HasPrefix(line, `{"lost"`) {
				if err := json.Unmarshal([]byte(line), &lost); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("drops -o json line %q: %v", line, err)
			}
			rows = append(rows, r)
		}
	}
	if len(rows) != len(want) {
		t.Fatalf("%d drop events, want %d: %+v", len(rows), len(want), rows)
	}
	byReason := map[string]control.DropRow{}
	for _, r := range rows {
		byReason[r.Reason] = r
	}
	for _, w := range want {
		r, ok := byReason[w.reason]
		if !ok || r.Name != nameA || r.Src.String() != w.src {
			t.Errorf("%s: event %+v (found %v); want one from %s by %s", w.reason, r, ok, w.src, nameA)
		}
	}
	if m := byReason["src-mac"].SrcMAC; m != macB.String() {
		t.Errorf("src-mac event: source MAC %s, want B's %s", m, macB)
	}
	if m := byReason["router-advert"].SrcMAC; m != macA.String() {
		t.Errorf("router-advert event: source MAC %s, want A's %s", m, macA)
	}
	if lost.Lost == nil || lost.Lost.Sent < uint64(len(want)) || lost.Lost.RateLimited != 0 || lost.Lost.RingFull != 0 {
		t.Errorf("loss counters %+v", lost.Lost)
	}
	if d := e.stats(idA).Drops; d["router-advert"] != 1 || d["src-mac"] != 1 || d["src-ipv4"] != 1 || d["arp-spoof"] != 1 {
		t.Errorf("drop counters %v", d)
	}
	if table := e.ok("drops", idA); !strings.Contains(table, "0 drop events shown") {
		t.Errorf("a second read shows events again (they are read once):\n%s", table)
	}
}

// TestFlowsOffPerEndpoint: `attach --flows=false` counts the container's
// traffic exactly but keeps no flow of it, while a neighbour's flows go on;
// the setting is in the record and re-attaching with it is "nothing
// changed", with the other value a clear difference.
func TestFlowsOffPerEndpoint(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	idA, pidA := testenv.RunNone(t, cli, "noflowa", "sleep", "300")
	idB, pidB := testenv.RunNone(t, cli, "noflowb", "sleep", "300")
	nsA, nsB := containerNS(t, pidA), containerNS(t, pidB)
	quietNS(t, nsA)
	quietNS(t, nsB)
	recA, recB := e.attachJSON(idA, "--flows=false"), e.attachJSON(idB)
	if !recA.NoFlows || recB.NoFlows {
		t.Fatalf("records: A noFlows %v, B noFlows %v", recA.NoFlows, recB.NoFlows)
	}
	a := udpSocketIn(t, nsA, recA.IP().String()+":9300")
	b := udpSocketIn(t, nsB, recB.IP().String()+":9300")
	warmARP(t, a, b)
	tx0 := e.stats(idA).TXByProto["ipv4/udp"]
	const n, size = 100, 100
	burst(t, a, b, n, size)
	if tx := e.stats(idA).TXByProto["ipv4/udp"]; tx.Packets-tx0.Packets != n || tx.Bytes-tx0.Bytes != n*(42+size) {
		t.Errorf("A's counters grew by %d packets %d bytes, want %d and %d", tx.Packets-tx0.Packets, tx.Bytes-tx0.Bytes, n, n*(42+size))
	}
	if fa := e.flows(idA); len(fa.Flows) != 0 {
		t.Errorf("A has flows with --flows=false: %+v", fa.Flows)
	}
	if f := findFlow(t, e.flows(idB), "rx", "udp", recA.IP(), 9300); f.Packets != n+1 {
		t.Errorf("B's rx flow from A: %d packets, want %d", f.Packets, n+1)
	}
	if out := e.ok("attach", idA, "--flows=false"); !strings.Contains(out, "nothing changed") {
		t.Errorf("re-attach with the same setting:\n%s", out)
	}
	e.fails([]string{"attach", idA}, "already attached with other settings", "flows false, asked true")
}
