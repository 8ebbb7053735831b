//go:build linux

// End-to-end tests: the nswire binary against a real Docker engine and real
// --network=none containers from the tiny local image. Traffic goes only to
// addresses these tests create.
package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/netops"
	"golang.org/x/sys/unix"

	"github.com/docker/docker/api/types/container"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/test/testenv"
)

// nswireBin is the binary under test, built once by TestMain.
var nswireBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nswire-e2e-")
	if err == nil {
		err = os.Chmod(dir, 0o755) // the unprivileged-user test runs it too
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nswireBin = filepath.Join(dir, "nswire")
	build := exec.Command("go", "build", "-o", nswireBin, "../cmd/nswire")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as `make build`: static, starts faster
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build nswire:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's isolated nswire: its own state dir and pin dir, so that
// tests never see each other's records.
type env struct {
	t        *testing.T
	stateDir string
	pinDir   string
	extraEnv []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testenv.RequireRoot(t)
	e := &env{t: t, stateDir: t.TempDir(), pinDir: "/sys/fs/bpf/nswire-test-" + strings.ToLower(testenv.ContainerName("e"))}
	t.Cleanup(func() {
		// Whatever a failing test left: detach every record, then check the
		// pin dir is empty and remove it.
		recs, _, _ := state.Store{Dir: e.stateDir}.List()
		for _, r := range recs {
			e.run("detach", r.ID)
		}
		os.RemoveAll(e.pinDir)
	})
	return e
}

type result struct {
	stdout, stderr string
	code           int
}

func (e *env) cmd(args ...string) *exec.Cmd {
	full := append([]string{"--state-dir", e.stateDir, "--pin-dir", e.pinDir}, args...)
	c := exec.Command(nswireBin, full...)
	c.Env = append(os.Environ(), e.extraEnv...)
	return c
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	c := e.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run nswire %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// ok runs nswire and fails the test unless it exits 0.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("nswire %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs nswire, wants exit 1 and stderr containing every one of want.
func (e *env) fails(args []string, want ...string) {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 1 {
		e.t.Fatalf("nswire %s: exit %d, want 1\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			e.t.Fatalf("nswire %s: stderr %q does not contain %q", strings.Join(args, " "), r.stderr, w)
		}
	}
}

func (e *env) attachJSON(args ...string) *state.Record {
	e.t.Helper()
	out := e.ok(append([]string{"attach", "-o", "json"}, args...)...)
	var rec state.Record
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		e.t.Fatalf("attach -o json: %v\n%s", err, out)
	}
	return &rec
}

// snapshot is what a namespace looks like: links (name, master, up), and
// IPv4 addresses and routes, as sorted strings.
func snapshot(t *testing.T, ns netns.NsHandle) string {
	t.Helper()
	lines := snapshotLines(t, ns, netlink.FAMILY_V4, false)
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// snapshotLines lists ns's links (with their MACs when mac is set), and its
// addresses and routes of family.
func snapshotLines(t *testing.T, ns netns.NsHandle, family int, mac bool) []string {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range links {
		a := l.Attrs()
		line := fmt.Sprintf("link %s type=%s master=%d up=%v", a.Name, l.Type(), a.MasterIndex, a.Flags&net.FlagUp != 0)
		if mac {
			line += " mac=" + a.HardwareAddr.String()
		}
		lines = append(lines, line)
		addrs, _ := h.AddrList(l, family)
		for _, ad := range addrs {
			lines = append(lines, "addr "+a.Name+" "+ad.IPNet.String())
		}
	}
	routes, _ := h.RouteList(nil, family)
	for _, r := range routes {
		lines = append(lines, fmt.Sprintf("route dst=%v gw=%v dev=%d", r.Dst, r.Gw, r.LinkIndex))
	}
	return lines
}

func hostNS(t *testing.T) netns.NsHandle {
	t.Helper()
	ns, err := netns.GetFromPath("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

func containerNS(t *testing.T, pid int) netns.NsHandle {
	t.Helper()
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// hostSnapshot is the host namespace limited to nswire's veths, so that
// unrelated activity on the machine (Docker's own veths) does not disturb.
func hostSnapshot(t *testing.T) string {
	var keep []string
	for _, l := range strings.Split(snapshot(t, hostNS(t)), "\n") {
		if strings.Contains(l, " nsw") || strings.Contains(l, " nsp") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	var lastErr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := c.Get(url)
		if err != nil {
			lastErr = err
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: status %d", url, resp.StatusCode)
		}
		return string(body)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
	return ""
}

func TestAttachDetachLifecycle(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	id, pid := testenv.RunNone(t, cli, "web")
	name := containerName(t, id)
	cns := containerNS(t, pid)
	before := snapshot(t, cns)

	rec := e.attachJSON(name, "--mode", "off")
	if rec.ID != id || rec.Name != name || rec.PID != pid || rec.IfName != "eth0" || rec.Bridge != "docker0" || rec.Gateway.String() != "172.17.0.1" {
		t.Fatalf("record = %+v", rec)
	}
	if !strings.HasPrefix(rec.Address.String(), "172.17.255.") || !strings.HasSuffix(rec.Address.String(), "/16") {
		t.Fatalf("automatic address %s is not from the top of 172.17.0.0/16", rec.Address.String())
	}
	// Host end: on docker0, up, named nsw+hash.
	host, err := netlink.LinkByName(rec.HostIf)
	if err != nil {
		t.Fatal(err)
	}
	br, _ := netlink.LinkByName("docker0")
	if host.Attrs().MasterIndex != br.Attrs().Index || host.Attrs().Flags&net.FlagUp == 0 || host.Attrs().Index != rec.HostIfindex {
		t.Fatalf("host veth %s: master %d up %v index %d", rec.HostIf, host.Attrs().MasterIndex, host.Attrs().Flags&net.FlagUp != 0, host.Attrs().Index)
	}
	// Container end: eth0 with the address, MAC and default route.
	h, _ := netlink.NewHandleAt(cns)
	defer h.Close()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if eth0.Attrs().HardwareAddr.String() != rec.MAC.String() || eth0.Attrs().ParentIndex != rec.HostIfindex {
		t.Fatalf("eth0 mac %s peer %d, record %s %d", eth0.Attrs().HardwareAddr, eth0.Attrs().ParentIndex, rec.MAC.String(), rec.HostIfindex)
	}
	routes, _ := h.RouteList(nil, netlink.FAMILY_V4)
	var gw string
	for _, r := range routes {
		if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
			gw = r.Gw.String()
		}
	}
	if gw != "172.17.0.1" {
		t.Fatalf("default route via %q, want 172.17.0.1", gw)
	}
	// HTTP from the host to the container.
	if body := httpGet(t, "http://"+rec.IP().String()+"/"); !strings.Contains(body, "hello from nswire") {
		t.Fatalf("page = %q", body)
	}
	// ls (table and json) shows it, from a new process.
	ls := e.ok("ls")
	for _, want := range []string{name, rec.HostIf, rec.Address.String(), rec.MAC.String(), "docker0", "off"} {
		if !strings.Contains(ls, want) {
			t.Fatalf("ls does not show %q:\n%s", want, ls)
		}
	}
	var rows []control.ListRow
	if err := json.Unmarshal([]byte(e.ok("ls", "-o", "json")), &rows); err != nil || len(rows) != 1 || rows[0].Record.HostIfindex != rec.HostIfindex {
		t.Fatalf("ls -o json = %+v, %v", rows, err)
	}
	// Attach again with the same settings: exit 0, nothing changes.
	hostBefore := hostSnapshot(t)
	out := e.ok("attach", name, "--mode", "off", "--ip", rec.Address.String())
	if !strings.Contains(out, "already attached") || hostSnapshot(t) != hostBefore {
		t.Fatalf("re-attach changed something: %s", out)
	}
	// With other settings: an error naming the difference.
	e.fails([]string{"attach", name, "--mode", "off", "--ip", "172.17.200.9/16"}, "already attached with other settings", "ip "+rec.Address.String()+", asked 172.17.200.9/16")

	// Detach: the veth, address and route are gone; the namespace is as before.
	if out := e.ok("detach", name); !strings.Contains(out, "detached "+name) {
		t.Fatalf("detach said %q", out)
	}
	if _, err := netlink.LinkByName(rec.HostIf); err == nil {
		t.Fatalf("host veth %s still exists after detach", rec.HostIf)
	}
	if got := snapshot(t, cns); got != before {
		t.Fatalf("container namespace after detach:\n%s\nwant:\n%s", got, before)
	}
	if out := e.ok("detach", name); !strings.Contains(out, "not attached") {
		t.Fatalf("second detach said %q", out)
	}
	e.ok("detach", "no-such-container")
	// Re-attach after detach works and gets the same stable MAC.
	rec2 := e.attachJSON(name, "--mode", "off")
	if rec2.MAC.String() != rec.MAC.String() {
		t.Fatalf("MAC changed across attaches: %s then %s", rec.MAC.String(), rec2.MAC.String())
	}
	e.ok("detach", id[:12])
}

func containerName(t *testing.T, id string) string {
	t.Helper()
	c, err := testenv.Docker(t).ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(c.Name, "/")
}

// TestUpstreamThroughGateway: the container reaches an "outside" namespace
// the test makes and routes itself, through its default route and the host.
func TestUpstreamThroughGateway(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	id, _ := testenv.RunNone(t, cli, "client", "sleep", "300")
	// host nswup0 10.213.7.1/30 <-> upstream nswup1 10.213.7.2/30; upstream
	// routes the bridge subnet back through the host (no NAT assumed).
	upstreamNS(t, "nswup0", "nswup1", "10.213.7.1/30", "10.213.7.2/30", "172.17.0.0/16", "upstream says hi")

	e.attachJSON(id, "--mode", "off")
	// busybox's static wget crashes on this image; nc speaks HTTP/1.0 fine.
	out, code := testenv.Exec(t, cli, id, "sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 10.213.7.2 8080`)
	if code != 0 || !strings.HasPrefix(out, "HTTP/1.0 200 OK") || !strings.HasSuffix(out, "\r\n\r\nupstream says hi") {
		t.Fatalf("HTTP from the container to upstream: exit %d, %q", code, out)
	}
}

// upstreamNS makes an "outside" namespace for a container to reach through
// the host: a veth hostIf (hostCIDR, in the host) to upIf (upCIDR, in the
// new namespace), a route there back to back via the host's address, and
// an HTTP server on upCIDR's address, port 8080, answering body. IPv6
// addresses and link-locals skip DAD: until a link-local is usable the
// kernel sends no neighbour solicitation from the link, and a first SYN
// would wait a second. Everything goes at cleanup.
func upstreamNS(t *testing.T, hostIf, upIf, hostCIDR, upCIDR, back, body string) netns.NsHandle {
	t.Helper()
	up := testenv.NewNetNS(t)
	attrs := netlink.NewLinkAttrs()
	attrs.Name = hostIf
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: upIf, PeerNamespace: netlink.NsFd(int(up))}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netlink.LinkDel(veth) })
	uh, err := netlink.NewHandleAt(up)
	if err != nil {
		t.Fatal(err)
	}
	defer uh.Close()
	hostH, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer hostH.Close()
	for _, side := range []struct {
		h    *netlink.Handle
		ns   netns.NsHandle
		name string
		cidr string
	}{{hostH, hostNS(t), hostIf, hostCIDR}, {uh, up, upIf, upCIDR}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			t.Fatal(err)
		}
		addr := &netlink.Addr{IPNet: mustCIDR(t, side.cidr)}
		if addr.IP.To4() == nil {
			addr.Flags = unix.IFA_F_NODAD
		}
		if _, err := netops.SetIPv6Conf(side.ns, side.name, "accept_dad", "0"); err != nil {
			t.Fatal(err)
		}
		if err := side.h.AddrAdd(l, addr); err != nil {
			t.Fatal(err)
		}
		if err := side.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	upEnd, err := uh.LinkByName(upIf)
	if err != nil {
		t.Fatal(err)
	}
	gw := mustCIDR(t, hostCIDR).IP
	if err := uh.RouteAdd(&netlink.Route{Dst: mustCIDR(t, back), Gw: gw, LinkIndex: upEnd.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	listen := net.JoinHostPort(mustCIDR(t, upCIDR).IP.String(), "8080")
	if err := testenv.InNetNS(up, func() (err error) { ln, err = net.Listen("tcp", listen); return err }); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return up
}

func mustCIDR(t *testing.T, s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	return n
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	id, _ := testenv.RunNone(t, cli, "bad")
	name := containerName(t, id)
	dockerID, _ := testenv.RunBridge(t, cli, "dockerwired")
	dockerName := containerName(t, dockerID)
	dc, _ := cli.ContainerInspect(context.Background(), dockerID)
	dockerIP := dc.NetworkSettings.Networks["bridge"].IPAddress
	stoppedID, _ := testenv.RunNone(t, cli, "stopped")
	if err := cli.ContainerStop(context.Background(), stoppedID, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	stoppedName := containerName(t, stoppedID)
	otherID, _ := testenv.RunNone(t, cli, "holder")
	holder := e.attachJSON(otherID, "--mode", "off")

	before := hostSnapshot(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{name, "--ip", "172.17.0.300/16"}, []string{`--ip "172.17.0.300/16" is not an IPv4 CIDR`}},
		{[]string{name, "--ip", "172.17.3.4/24"}, []string{"prefix /24 does not match the bridge subnet 172.17.0.0/16"}},
		{[]string{name, "--ip", "172.17.0.0/16"}, []string{"network address"}},
		{[]string{name, "--ip", "172.17.255.255/16"}, []string{"broadcast address"}},
		{[]string{name, "--ip", "172.17.0.1/16"}, []string{"is the gateway's address"}},
		{[]string{name, "--ip", "10.1.2.3/16"}, []string{"outside the bridge subnet"}},
		{[]string{name, "--ip", dockerIP}, []string{"--ip " + dockerIP + " is already in use by container " + dockerName}},
		{[]string{name, "--ip", holder.Address.String()}, []string{"already in use by " + holder.Name + " (nswire)"}},
		{[]string{name, "--gateway", "10.9.9.9"}, []string{"--gateway 10.9.9.9 is outside the bridge subnet"}},
		{[]string{name, "--ifname", "averyveryverylongname"}, []string{"is 21 bytes long: at most 15"}},
		{[]string{name, "--ifname", "eth/1"}, []string{`contains '/'`}},
		{[]string{name, "--ifname", "eth:1"}, []string{`contains ':'`}},
		{[]string{name, "--ifname", "eth 1"}, []string{`contains ' '`}},
		{[]string{"no-such-container-x"}, []string{`container "no-such-container-x" not found`}},
		{[]string{stoppedName}, []string{"container " + stoppedName + " is exited: start it first"}},
		{[]string{dockerName}, []string{`uses Docker network mode "bridge", not --network=none`}},
		{[]string{name, "--bridge", "nswnobridge"}, []string{`bridge "nswnobridge" does not exist`}},
		{[]string{name, "--bridge", "lo"}, []string{`"lo" is not a bridge (it is a device link)`}},
		{[]string{"--pid", fmt.Sprint(os.Getpid())}, []string{"is in the host's own network namespace"}},
		{[]string{"--pid", "999999999"}, []string{"--pid 999999999: no such process"}},
		{[]string{"--netns", "/nonexistent/ns"}, []string{"network namespace /nonexistent/ns does not exist"}},
		{[]string{name, "--mode", "turbo"}, []string{`mode "turbo" is not one of off, observe, fastpath`}},
		{[]string{name, "-o", "yaml"}, []string{`-o "yaml" is not a known output format`}},
	} {
		e.fails(append([]string{"attach"}, tc.args...), tc.want...)
		if got := hostSnapshot(t); got != before {
			t.Fatalf("attach %v changed the host:\n%s\nwant:\n%s", tc.args, got, before)
		}
		recs, _, _ := state.Store{Dir: e.stateDir}.List()
		if len(recs) != 1 {
			t.Fatalf("attach %v left %d records", tc.args, len(recs))
		}
	}
	// Not root: the missing capabilities are named.
	c := e.cmd("attach", name)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := c.CombinedOutput()
	if !strings.Contains(string(out), "missing capabilities: [CAP_NET_ADMIN") {
		t.Fatalf("unprivileged attach said %q", out)
	}
}

// TestRollbackAtEveryStep injects a failure after each step of the attach in
// turn and checks the host and the container namespace are exactly as
// before, with no record and no pins.
func TestRollbackAtEveryStep(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	id, pid := testenv.RunNone(t, cli, "rollback")
	cns := containerNS(t, pid)
	hostBefore, nsBefore := hostSnapshot(t), snapshot(t, cns)
	steps := strings.Count(e.ok("attach", id, "--dry-run"), "\n")
	if steps != 10 { // veth master host-up rename no-ra up address route datapath record
		t.Fatalf("dry run lists %d steps, want 10", steps)
	}
	for k := 1; k <= steps; k++ {
		e.extraEnv = []string{fmt.Sprintf("NSWIRE_FAIL_AFTER_STEP=%d", k)}
		e.fails([]string{"attach", id}, "injected fault after step", "every step done was undone")
		if got := hostSnapshot(t); got != hostBefore {
			t.Fatalf("after a fault at step %d the host has:\n%s\nwant:\n%s", k, got, hostBefore)
		}
		if got := snapshot(t, cns); got != nsBefore {
			t.Fatalf("after a fault at step %d the container has:\n%s\nwant:\n%s", k, got, nsBefore)
		}
		if recs, bad, _ := (state.Store{Dir: e.stateDir}).List(); len(recs)+len(bad) != 0 {
			t.Fatalf("after a fault at step %d: %d records left", k, len(recs)+len(bad))
		}
		if left := pinsUnder(e.pinDir); len(left) != 0 {
			t.Fatalf("after a fault at step %d: pins left: %v", k, left)
		}
	}
	e.extraEnv = nil
	e.attachJSON(id)
	e.ok("detach", id)
	if left := pinsUnder(e.pinDir); len(left) != 0 {
		t.Fatalf("after detach: pins left: %v", left)
	}
}

// pinsUnder lists per-endpoint pins (links) under dir; the shared maps and
// programs may stay.
func pinsUnder(dir string) []string {
	var out []string
	filepath.WalkDir(filepath.Join(dir, "links"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestDryRunAndVerbose(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	id, pid := testenv.RunNone(t, cli, "dry")
	hostBefore := hostSnapshot(t)
	out := e.ok("attach", id, "--ip", "172.17.201.5/16", "--dry-run")
	for _, want := range []string{
		"ip link add nsw", "type veth peer name nsp",
		"master docker0",
		fmt.Sprintf("mtu 1500 netns %d", pid),
		fmt.Sprintf("nsenter -t %d -n ip addr add 172.17.201.5/16 dev eth0", pid),
		"route add default via 172.17.0.1 dev eth0",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("dry run lacks %q:\n%s", want, out)
		}
	}
	if hostSnapshot(t) != hostBefore {
		t.Fatal("dry run changed the host")
	}
	r := e.run("-v", "attach", id, "--mode", "off")
	if r.code != 0 || !strings.Contains(r.stderr, "step 1/9 veth") || !strings.Contains(r.stderr, "step 9/9 record") {
		t.Fatalf("verbose attach: %d\n%s", r.code, r.stderr)
	}
}

// TestDetachAfterKill: a container killed while attached is detached cleanly.
func TestDetachAfterKill(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	id, _ := testenv.RunNone(t, cli, "killed")
	rec := e.attachJSON(id)
	if err := cli.ContainerKill(context.Background(), id, "KILL"); err != nil {
		t.Fatal(err)
	}
	e.ok("detach", id)
	if _, err := netlink.LinkByName(rec.HostIf); err == nil {
		t.Fatalf("host veth %s left after detach of a killed container", rec.HostIf)
	}
	if recs, _, _ := (state.Store{Dir: e.stateDir}).List(); len(recs) != 0 {
		t.Fatal("record left after detach of a killed container")
	}
	if left := pinsUnder(e.pinDir); len(left) != 0 {
		t.Fatalf("pins left: %v", left)
	}
}
