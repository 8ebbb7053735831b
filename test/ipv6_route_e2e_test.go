//go:build linux

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/netops"
	"github.com/nswire/nswire/test/testenv"
)

// dualStackNetwork makes a Docker bridge network with IPv6 (v6 non-empty)
// or without, removed in cleanup, and returns its name.
func dualStackNetwork(t *testing.T, prefix, v4, gw4, v6, gw6 string) string {
	t.Helper()
	cli := testenv.Docker(t)
	name := testenv.ContainerName(prefix)
	cfg := []network.IPAMConfig{{Subnet: v4, Gateway: gw4}}
	if v6 != "" {
		cfg = append(cfg, network.IPAMConfig{Subnet: v6, Gateway: gw6})
	}
	resp, err := cli.NetworkCreate(context.Background(), name, network.CreateOptions{
		Driver: "bridge", EnableIPv6: boolPtr(v6 != ""), IPAM: &network.IPAM{Config: cfg},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.NetworkRemove(context.Background(), resp.ID) })
	return name
}

// ipv6Forwarding turns on net.ipv6.conf.all.forwarding for the test and
// puts back what it was in cleanup.
func ipv6Forwarding(t *testing.T) {
	t.Helper()
	const p = "/proc/sys/net/ipv6/conf/all/forwarding"
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(orig)) == "1" {
		return
	}
	if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(p, orig, 0o644); err != nil {
			t.Errorf("restore %s: %v", p, err)
		}
	})
}

// allowForward6 lets IPv6 packets between the host links a and b through
// ip6tables' FORWARD chain, when something there could drop them (a policy
// other than ACCEPT, or rules: Docker's own with ip6tables on), as the
// IPv4 test relies on Docker's rules for docker0; the rules go again in
// cleanup. Without ip6tables there is no such chain to pass.
func allowForward6(t *testing.T, a, b string) {
	t.Helper()
	if _, err := exec.LookPath("ip6tables"); err != nil {
		return
	}
	out, err := exec.Command("ip6tables", "-w", "-S", "FORWARD").CombinedOutput()
	if err != nil {
		t.Fatalf("ip6tables -S FORWARD: %v: %s", err, out)
	}
	if strings.TrimSpace(string(out)) == "-P FORWARD ACCEPT" {
		return
	}
	for _, dir := range [][2]string{{a, b}, {b, a}} {
		rule := []string{"FORWARD", "-i", dir[0], "-o", dir[1], "-j", "ACCEPT"}
		if out, err := exec.Command("ip6tables", append([]string{"-w", "-I"}, rule...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip6tables: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip6tables", append([]string{"-w", "-D"}, rule...)...).Run() })
	}
}

// tcpSegs is a namespace's TCP segment counters from /proc/net/snmp
// (IPv4 and IPv6 alike): received, sent, and sent again.
type tcpSegs struct{ in, out, retrans uint64 }

// tcpSegsIn reads them in ns.
func tcpSegsIn(t *testing.T, ns netns.NsHandle) tcpSegs {
	t.Helper()
	var b []byte
	// /proc/thread-self/net is the locked thread's namespace; /proc/net is
	// the process's.
	if err := testenv.InNetNS(ns, func() (err error) { b, err = os.ReadFile("/proc/thread-self/net/snmp"); return err }); err != nil {
		t.Fatal(err)
	}
	return parseTCPSegs(t, b)
}

// tcpSegsOf reads them in the namespace of process pid.
func tcpSegsOf(t *testing.T, pid int) tcpSegs {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/snmp", pid))
	if err != nil {
		t.Fatal(err)
	}
	return parseTCPSegs(t, b)
}

func parseTCPSegs(t *testing.T, b []byte) tcpSegs {
	t.Helper()
	var head, vals []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "Tcp:" {
			if head == nil {
				head = f
			} else {
				vals = f
			}
		}
	}
	get := func(name string) uint64 {
		for i := range head {
			if head[i] == name && i < len(vals) {
				v, err := strconv.ParseUint(vals[i], 10, 64)
				if err == nil {
					return v
				}
			}
		}
		t.Fatalf("no Tcp %s in /proc/net/snmp:\n%s", name, b)
		return 0
	}
	return tcpSegs{get("InSegs"), get("OutSegs"), get("RetransSegs")}
}

// TestUpstreamIPv6ThroughGateway: a container attached dual-stack on a
// Docker network made with --ipv6 reaches an "outside" namespace over IPv6
// through its default route: the host routes between the network's bridge
// and a veth to that namespace, which routes the network's prefix back.
// The page comes back whole, and nswire counts the container's IPv6 TCP
// segments exactly as the container's TCP stack counts them, and those it
// sent as the outside namespace's received (there is no other TCP in
// either); stats --proto and ls show the IPv6 side.
func TestUpstreamIPv6ThroughGateway(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	name := dualStackNetwork(t, "nswv6up", "10.234.41.0/28", "10.234.41.1", "fd00:4e53:7741::/64", "fd00:4e53:7741::1")
	testenv.RunOn(t, cli, name, "v6uppeer", "sleep", "300") // makes the bridge
	id, cpid := testenv.RunNone(t, cli, "v6upc", "sleep", "300")
	// host n6up0 fd00:4e53:7742::1/64 <-> upstream n6up1 fd00:4e53:7742::2/64;
	// the names stay clear of nswire's nsw* that other tests compare.
	const body = "upstream says hi over IPv6"
	up := upstreamNS(t, "n6up0", "n6up1", "fd00:4e53:7742::1/64", "fd00:4e53:7742::2/64", "fd00:4e53:7741::/64", body)

	ipv6Forwarding(t)
	rec := e.attachJSON(id, "--network", name)
	if rec.Gateway6.String() != "fd00:4e53:7741::1" || !rec.Address6.IsValid() {
		t.Fatalf("record: address6 %s gateway6 %s", rec.Address6, rec.Gateway6)
	}
	allowForward6(t, rec.Bridge, "n6up0")

	out, code := testenv.Exec(t, cli, id, "sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 fd00:4e53:7742::2 8080`)
	if code != 0 || !strings.HasPrefix(out, "HTTP/1.0 200 OK\r\n") || !strings.HasSuffix(out, "\r\n\r\n"+body) {
		t.Fatalf("HTTP over IPv6 from the container to upstream: exit %d, %q", code, out)
	}
	// Every TCP segment the container's stack sent went out through the
	// host veth and arrived upstream, and every one it received came in
	// through the host veth: nswire counts exactly those, as ipv6/tcp. All
	// three count from zero: the container had no network before the
	// attach, upstream no TCP but this. (Upstream's count of what it sent
	// is not compared: the kernel counts a retransmitted SYN-ACK in both
	// OutSegs and RetransSegs, other retransmissions in RetransSegs only.)
	// The last ACK may still be on its way: poll until the figures agree.
	var tx, rx, upIn, cOut, cIn uint64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s, u, c := e.stats(id), tcpSegsIn(t, up), tcpSegsOf(t, cpid)
		tx, rx = s.TXByProto["ipv6/tcp"].Packets, s.RXByProto["ipv6/tcp"].Packets
		upIn, cOut, cIn = u.in, c.out+c.retrans, c.in
		if tx > 0 && rx > 0 && tx == cOut && tx == upIn && rx == cIn {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nswire counted ipv6/tcp tx %d rx %d; the container's TCP sent %d segments and received %d, upstream's received %d", tx, rx, cOut, cIn, upIn)
		}
	}
	t.Logf("ipv6/tcp: the container sent %d segments and received %d, as nswire counted", tx, rx)
	if s := e.stats(id); s.TXByProto["ipv4/tcp"].Packets != 0 || s.RXByProto["ipv4/tcp"].Packets != 0 {
		t.Errorf("IPv6 TCP counted as IPv4: %+v", s.TXByProto)
	}

	// stats --proto names the IPv6 buckets; ls shows both addresses.
	st := e.ok("stats", id, "--proto")
	for _, want := range []string{"rx ipv6/tcp", "tx ipv6/tcp", "tx ipv6/icmp"} {
		if !strings.Contains(st, want) {
			t.Errorf("stats --proto lacks %q:\n%s", want, st)
		}
	}
	if ls := e.ok("ls"); !strings.Contains(ls, rec.Address.String()+","+rec.Address6.String()) {
		t.Errorf("ls does not show %s,%s:\n%s", rec.Address, rec.Address6, ls)
	}
	e.ok("detach", id)
}

// snapshotAll is snapshot with both families, and the namespace's IPv6
// switches, which Docker turns off in a --network=none container and an
// attach turns on for eth0.
func snapshotAll(t *testing.T, ns netns.NsHandle) string {
	t.Helper()
	lines := snapshotLines(t, ns, netlink.FAMILY_ALL, true)
	testenv.InNetNS(ns, func() error {
		for _, p := range []string{"all", "default", "lo"} {
			b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + p + "/disable_ipv6")
			lines = append(lines, fmt.Sprintf("disable_ipv6 %s %q %v", p, strings.TrimSpace(string(b)), err))
		}
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestDualStackBadInput: the list of bad IPv6 input that
// TestDualStackAttach leaves out: an address in use (by a Docker container,
// by an nswire one), a prefix length other than the network's, a
// link-local or any IPv6 address given to --ip, two addresses of one family
// (a flag given twice, a list in one), an IPv6 address on a Docker network
// without IPv6. Each is exit 1 with a message naming the bad value and what
// is valid, and changes nothing: no record, no host veth, the container's
// namespace as it was. Then `observe` of the Docker container records its
// IPv6 address too, and ls shows it.
func TestDualStackBadInput(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	name := dualStackNetwork(t, "nswv6bad", "10.234.43.0/28", "10.234.43.1", "fd00:4e53:7743::/64", "fd00:4e53:7743::1")
	v4only := dualStackNetwork(t, "nswv4only", "10.234.44.0/28", "10.234.44.1", "", "")
	peerID, _ := testenv.RunOn(t, cli, name, "v6badpeer", "sleep", "300") // takes ::2
	testenv.RunOn(t, cli, v4only, "v4onlypeer", "sleep", "300")
	peer := containerName(t, peerID)
	holderID, _ := testenv.RunNone(t, cli, "v6holder", "sleep", "300")
	// The attach line names both addresses and both gateways.
	out := e.ok("attach", holderID, "--network", name, "--ip6", "fd00:4e53:7743::20")
	if !strings.Contains(out, ",fd00:4e53:7743::20/64 (mac ") || !strings.Contains(out, "gateway 10.234.43.1,fd00:4e53:7743::1, mode") {
		t.Errorf("attach said %q: without the IPv6 address or gateway", out)
	}
	holder := e.attachJSON(holderID, "--network", name, "--ip6", "fd00:4e53:7743::20") // already attached: its record
	if out := e.ok("attach", holderID, "--network", name); !strings.Contains(out, ",fd00:4e53:7743::20/64 on ") {
		t.Errorf("attach again said %q: without the IPv6 address", out)
	}
	id, pid := testenv.RunNone(t, cli, "v6bad", "sleep", "300")
	cns := containerNS(t, pid)
	nsBefore := snapshotAll(t, cns)
	veth := netops.HostVethName(id)

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--ip6", "fd00:4e53:7743::2"}, []string{"--ip6 fd00:4e53:7743::2 is already in use by container " + peer + " (Docker)", "leave --ip6 out to choose a free one"}},
		{[]string{"--ip6", "fd00:4e53:7743::20/64"}, []string{"--ip6 fd00:4e53:7743::20/64 is already in use by " + holder.Name + " (nswire)"}},
		{[]string{"--ip6", "fd00:4e53:7743::30/80"}, []string{"--ip6 fd00:4e53:7743::30/80: prefix /80 does not match the bridge's IPv6 prefix fd00:4e53:7743::/64 (use /64)"}},
		{[]string{"--ip", "fe80::30"}, []string{`--ip "fe80::30" is not an IPv4 address but an IPv6 link-local one (fe80::/10)`, "a global or unique local IPv6 one with --ip6"}},
		{[]string{"--ip", "fd00:4e53:7743::30/64"}, []string{`--ip "fd00:4e53:7743::30/64" is not an IPv4 address: give IPv6 addresses with --ip6`}},
		{[]string{"--ip6", "10.234.43.9/28"}, []string{`--ip6 "10.234.43.9/28" is not an IPv6 address: give IPv4 addresses with --ip`}},
		{[]string{"--ip6", "fd00:4e53:7743::30", "--ip6", "fd00:4e53:7743::31"}, []string{"--ip6 given twice (fd00:4e53:7743::30, fd00:4e53:7743::31): a container gets one address per family"}},
		{[]string{"--ip", "10.234.43.9", "--ip", "10.234.43.10"}, []string{"--ip given twice (10.234.43.9, 10.234.43.10): a container gets one address per family"}},
		{[]string{"--ip6", "fd00:4e53:7743::30,fd00:4e53:7743::31"}, []string{`--ip6 "fd00:4e53:7743::30,fd00:4e53:7743::31" names 2 addresses`}},
	} {
		e.fails(append([]string{"attach", id, "--network", name}, tc.args...), tc.want...)
		checkUnchanged6(t, e, tc.args, cns, nsBefore, veth)
	}
	args := []string{"attach", id, "--network", v4only, "--ip6", "fd00:4e53:7743::30"}
	e.fails(args, "--ip6 fd00:4e53:7743::30: Docker network "+v4only+" (bridge br-", ") has no IPv6: create one with `docker network create --ipv6")
	checkUnchanged6(t, e, args, cns, nsBefore, veth)

	// observe: the Docker container's IPv6 address is recorded and shown.
	c, err := cli.ContainerInspect(context.Background(), peerID)
	if err != nil {
		t.Fatal(err)
	}
	ds := c.NetworkSettings.Networks[name]
	want6 := fmt.Sprintf("%s/%d", ds.GlobalIPv6Address, ds.GlobalIPv6PrefixLen)
	var obs state.Record
	if err := json.Unmarshal([]byte(e.ok("observe", peerID, "-o", "json")), &obs); err != nil {
		t.Fatal(err)
	}
	if obs.Address6.String() != want6 {
		t.Errorf("observe recorded address6 %q, want Docker's %s", obs.Address6, want6)
	}
	var rows []control.ListRow
	if err := json.Unmarshal([]byte(e.ok("ls", "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rows {
		if r.Record != nil && r.ID == peerID {
			found = r.Record.Address6.String() == want6
		}
	}
	if ls := e.ok("ls"); !found || !strings.Contains(ls, ","+want6) {
		t.Errorf("ls does not show the observed container's %s:\n%s", want6, ls)
	}
	e.ok("unobserve", peerID)
	e.ok("detach", holderID)
}

// checkUnchanged6 fails unless a refused attach of the container with
// namespace cns left no record but the holder's, no host veth, and the
// namespace as it was.
func checkUnchanged6(t *testing.T, e *env, args []string, cns netns.NsHandle, nsBefore, veth string) {
	t.Helper()
	if got := snapshotAll(t, cns); got != nsBefore {
		t.Fatalf("%v changed the container's namespace:\n%s\nwant:\n%s", args, got, nsBefore)
	}
	if _, err := netlink.LinkByName(veth); err == nil {
		t.Fatalf("%v left the host veth %s", args, veth)
	}
	if recs, _, _ := (state.Store{Dir: e.stateDir}).List(); len(recs) != 1 {
		t.Fatalf("%v left %d records, want only the holder's", args, len(recs))
	}
}
