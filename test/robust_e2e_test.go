//go:build linux

package test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/netops"
	"github.com/nswire/nswire/test/testenv"
)

// runCtx is run with a context that kills nswire when it ends: the outer
// bound of a test that must not hang, not a timing assertion.
func (e *env) runCtx(ctx context.Context, args ...string) (result, error) {
	e.t.Helper()
	full := append([]string{"--state-dir", e.stateDir, "--pin-dir", e.pinDir}, args...)
	c := exec.CommandContext(ctx, nswireBin, full...)
	c.Env = append(os.Environ(), e.extraEnv...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	if ctx.Err() != nil {
		return result{}, ctx.Err()
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		return result{}, err
	}
	return result{out.String(), errb.String(), code}, nil
}

// hungEngine is a Docker socket that accepts connections and never answers.
func hungEngine(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "hung.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never read or answered
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return "unix://" + sock
}

// TestHungEngineIsBounded: with a Docker engine that accepts and never
// answers, attach and ls -a end with an error naming the engine's address
// and what to check, instead of hanging.
func TestHungEngineIsBounded(t *testing.T) {
	e := newEnv(t)
	host := hungEngine(t)
	e.extraEnv = []string{"DOCKER_HOST=" + host}
	for _, args := range [][]string{
		{"attach", "somecontainer", "--docker-timeout", "1s"},
		{"ls", "-a", "--docker-timeout", "1s"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		r, err := e.runCtx(ctx, args...)
		cancel()
		if err != nil {
			t.Fatalf("nswire %v with a hung engine: %v (it hung)", args, err)
		}
		if r.code != 1 {
			t.Fatalf("nswire %v: exit %d, want 1\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		for _, want := range []string{"the Docker engine did not answer in time at " + host, "within 1s", "dockerd is running", "DOCKER_HOST", "--docker-timeout"} {
			if !strings.Contains(r.stderr, want) {
				t.Fatalf("nswire %v: stderr %q lacks %q", args, r.stderr, want)
			}
		}
	}
	e.extraEnv = nil
	e.fails([]string{"ls", "--docker-timeout", "0s"}, "--docker-timeout 0s")

	// Without -a, ls tells the states of container records from local
	// facts when the engine does not answer, and says so.
	cli := testenv.Docker(t)
	id, _ := testenv.RunNone(t, cli, "hung")
	name := containerName(t, id)
	e.attachJSON(name)
	ls := func() []control.ListRow {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e.extraEnv = []string{"DOCKER_HOST=" + host}
		defer func() { e.extraEnv = nil }()
		r, err := e.runCtx(ctx, "ls", "-o", "json", "--docker-timeout", "1s")
		if err != nil || r.code != 0 {
			t.Fatalf("ls with a hung engine: %v, exit %d\n%s", err, r.code, r.stderr)
		}
		var rows []control.ListRow
		if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 1 {
			t.Fatalf("ls -o json with a hung engine: %v\n%s", err, r.stdout)
		}
		return rows
	}
	if rows := ls(); rows[0].State != control.StateLive {
		t.Fatalf("a live container with a hung engine: %+v", rows[0])
	}
	if err := cli.ContainerKill(context.Background(), id, "KILL"); err != nil {
		t.Fatal(err)
	}
	if rows := ls(); rows[0].State != control.StateStopped || !strings.Contains(rows[0].Reason, "did not answer in time at "+host) {
		t.Fatalf("a killed container with a hung engine: %+v", rows[0])
	}
	e.ok("detach", name)
}

// lsRows is `nswire ls -o json`.
func (e *env) lsRows(args ...string) []control.ListRow {
	e.t.Helper()
	var rows []control.ListRow
	out := e.ok(append([]string{"ls", "-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		e.t.Fatalf("ls -o json: %v\n%s", err, out)
	}
	return rows
}

// TestStaleStateIsTold: after docker restart, docker stop and docker rm, ls,
// stats (table, JSON, Prometheus) and doctor say so; the old PID, ifindex
// and counters are never shown as current.
func TestStaleStateIsTold(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	id, _ := testenv.RunNone(t, cli, "stale")
	name := containerName(t, id)
	rec := e.attachJSON(name)
	if rows := e.lsRows(); len(rows) != 1 || rows[0].State != control.StateLive || rows[0].PID != rec.PID {
		t.Fatalf("ls of a live record: %+v", rows)
	}
	if s := e.stats(name); s.State != control.StateLive || !s.Counted {
		t.Fatalf("stats of a live record: %+v", s)
	}

	ctx := context.Background()
	zero := 0
	check := func(want control.RecordState, reason string) {
		t.Helper()
		rows := e.lsRows()
		if len(rows) != 1 || rows[0].State != want || rows[0].PID != 0 || !strings.Contains(rows[0].Reason, reason) {
			t.Fatalf("ls -o json, want %s (%q): %+v", want, reason, rows)
		}
		r := e.run("ls")
		// PID and IFINDEX are "-": what the record claims is not current.
		notCurrent := regexp.MustCompile(`\s` + string(want) + `\s+-\s+` + rec.HostIf + `\s+-\s`)
		if r.code != 0 || !notCurrent.MatchString(r.stdout) || !strings.Contains(r.stderr, reason) {
			t.Fatalf("ls table, want %s:\n%s%s", want, r.stdout, r.stderr)
		}
		s := e.stats(name)
		if s.State != want || s.Counted || s.RX.Packets != 0 || s.TX.Packets != 0 || s.RXByProto != nil {
			t.Fatalf("stats -o json of a %s record: %+v", want, s)
		}
		if out := e.ok("stats"); !strings.Contains(out, "not counted ("+string(want)+")") {
			t.Fatalf("stats table of a %s record:\n%s", want, out)
		}
		prom := e.ok("stats", "-o", "prometheus")
		if !strings.Contains(prom, `state="`+string(want)+`"`) || strings.Contains(prom, `nswire_packets_total{container="`+name+`"`) {
			t.Fatalf("prometheus of a %s record:\n%s", want, prom)
		}
		if out := e.run("doctor").stdout; !strings.Contains(out, name+" is "+string(want)) {
			t.Fatalf("doctor does not say %s is %s:\n%s", name, want, out)
		}
	}

	if err := cli.ContainerRestart(ctx, id, container.StopOptions{Timeout: &zero}); err != nil {
		t.Fatal(err)
	}
	check(control.StateRestarted, "nswire attach "+name)
	if err := cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &zero}); err != nil {
		t.Fatal(err)
	}
	check(control.StateStopped, "the container is exited")
	if err := cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	check(control.StateGone, "was removed")
	e.ok("detach", name)
	if rows := e.lsRows(); len(rows) != 0 {
		t.Fatalf("after detach: %+v", rows)
	}
}

// TestDamagedRecordIsRecoverable: a truncated record is listed as damaged
// with its file (a warning in the table, an entry in JSON), and `detach
// NAME` removes the veth, pins and map entries nswire made for the container
// and moves the file aside, never deleting it.
func TestDamagedRecordIsRecoverable(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	id, _ := testenv.RunNone(t, cli, "damaged")
	name := containerName(t, id)
	rec := e.attachJSON(name)
	path := state.Store{Dir: e.stateDir}.Path(id)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	truncated := data[:len(data)/2]
	if err := os.WriteFile(path, truncated, 0o600); err != nil {
		t.Fatal(err)
	}

	r := e.run("ls")
	if r.code != 0 || !strings.Contains(r.stderr, "damaged record "+path) || !strings.Contains(r.stdout, "damaged") || !strings.Contains(r.stdout, id[:12]) {
		t.Fatalf("ls with a damaged record:\n%s%s", r.stdout, r.stderr)
	}
	rows := e.lsRows()
	if len(rows) != 1 || rows[0].State != control.StateDamaged || rows[0].File != path || rows[0].ID != id || rows[0].Error == "" {
		t.Fatalf("ls -o json with a damaged record: %+v", rows)
	}
	var st []control.EndpointStats
	if err := json.Unmarshal([]byte(e.ok("stats", "-o", "json")), &st); err != nil || len(st) != 1 || st[0].State != control.StateDamaged || st[0].Counted {
		t.Fatalf("stats -o json with a damaged record: %+v, %v", st, err)
	}
	if out := e.run("doctor").stdout; !strings.Contains(out, "damaged records") || !strings.Contains(out, path) {
		t.Fatalf("doctor with a damaged record:\n%s", out)
	}
	e.fails([]string{"attach", name}, "damaged", "nswire detach "+name)
	if r := e.run("doctor", name); r.code != 1 || !strings.Contains(r.stdout, "the record of "+name+" is damaged: "+path) {
		t.Fatalf("doctor %s with a damaged record: exit %d\n%s", name, r.code, r.stdout)
	}

	out := e.ok("detach", name)
	aside := filepath.Join(e.stateDir, state.DamagedDir)
	if !strings.Contains(out, "damaged") || !strings.Contains(out, "removed its host veth "+rec.HostIf) || !strings.Contains(out, aside+"/") {
		t.Fatalf("detach of a damaged record said %q", out)
	}
	if _, err := netlink.LinkByName(rec.HostIf); err == nil {
		t.Fatalf("host veth %s is still there", rec.HostIf)
	}
	if p := pinsUnder(e.pinDir); len(p) != 0 {
		t.Fatalf("link pins left: %v", p)
	}
	for _, ifindex := range endpointsIn(t, e.pinDir) {
		if int(ifindex) == rec.HostIfindex {
			t.Fatalf("endpoint map entry of ifindex %d left", ifindex)
		}
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("the damaged record is still at %s", path)
	}
	kept, _ := filepath.Glob(filepath.Join(aside, filepath.Base(path)+".*"))
	if len(kept) != 1 {
		t.Fatalf("damaged records kept: %v", kept)
	}
	if b, err := os.ReadFile(kept[0]); err != nil || !bytes.Equal(b, truncated) {
		t.Fatalf("the kept file holds %q, %v", b, err)
	}
	if rows := e.lsRows(); len(rows) != 0 {
		t.Fatalf("ls after detach: %+v", rows)
	}
	// The container can be wired again.
	e.attachJSON(name)
	e.ok("detach", name)
}

// TestAttachRepairsWhatIsMissing: attach on an attached target checks what
// its record claims and repairs each missing part, saying what it repaired;
// a complete attachment is left alone.
func TestAttachRepairsWhatIsMissing(t *testing.T) {
	e := newEnv(t)
	tg := newTarget(t, "repair", testBridge(t, "nswtbrrp", "10.231.71.1/24").Name)
	rec := tg.attach(e)
	h, err := netlink.NewHandleAt(tg.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth0 := func() netlink.Link {
		l, err := h.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	repair := func(what string, want ...string) {
		t.Helper()
		out := e.ok(tg.args()...)
		for _, w := range append([]string{"repaired"}, want...) {
			if !strings.Contains(out, w) {
				t.Fatalf("attach after %s said %q, want %q", what, out, w)
			}
		}
		assertAttached(t, e, tg, "after repairing "+what)
	}

	os.RemoveAll(filepath.Join(e.pinDir, "links", rec.HostIf))
	// A dry run says what it would repair and changes nothing.
	if out := e.ok(tg.args("--dry-run")...); !strings.Contains(out, "# would repair: the ingress program") {
		t.Fatalf("dry run with the link pins removed said %q", out)
	}
	if p := pinsUnder(e.pinDir); len(p) != 0 {
		t.Fatalf("a dry run repaired: %v", p)
	}
	repair("removing the link pins", "ingress program", "egress program")

	addr := &netlink.Addr{IPNet: &net.IPNet{IP: rec.IPv4(), Mask: net.CIDRMask(rec.Address.Bits(), 32)}}
	if err := h.AddrDel(eth0(), addr); err != nil {
		t.Fatal(err)
	}
	repair("deleting the address", "address "+rec.Address.String(), "default route via "+rec.Gateway.String())

	if err := h.LinkSetDown(eth0()); err != nil {
		t.Fatal(err)
	}
	repair("setting eth0 down", "eth0 up")

	hostVeth, err := netlink.LinkByName(rec.HostIf)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNoMaster(hostVeth); err != nil {
		t.Fatal(err)
	}
	repair("taking the veth off the bridge", "port of "+tg.bridge)

	if _, err := netops.SetIPv6Conf(tg.ns, "eth0", "accept_ra", "1"); err != nil {
		t.Fatal(err)
	}
	repair("accept_ra=1", "accept_ra=0")

	if err := netlink.LinkDel(hostVeth); err != nil {
		t.Fatal(err)
	}
	if rows := e.lsRows(); len(rows) != 1 || rows[0].State != control.StateBroken || !strings.Contains(rows[0].Reason, "host veth "+rec.HostIf) {
		t.Fatalf("ls with the host veth deleted: %+v", rows)
	}
	repair("deleting the veth", "host veth "+rec.HostIf+" was missing", "wired again")
	recs, _, _ := state.Store{Dir: e.stateDir}.List()
	if len(recs) != 1 || recs[0].Address != rec.Address || recs[0].MAC.String() != rec.MAC.String() || recs[0].Slot != rec.Slot || recs[0].Hook != rec.Hook {
		t.Fatalf("wired again as %+v, was %+v", recs[0], rec)
	}

	out := e.ok(tg.args()...)
	if !strings.Contains(out, "already attached") || !strings.Contains(out, "nothing changed") {
		t.Fatalf("attach of a complete attachment said %q", out)
	}
	e.ok("detach", tg.id)
}

// TestNothingSharedChanges: an --mtu above the bridge's and a bridge that
// is down are refused, with the bridge's MTU and the command that brings it
// up; the bridge stays exactly as it was and nothing is left.
func TestNothingSharedChanges(t *testing.T) {
	e := newEnv(t)
	br := testBridge(t, "nswtbrsh", "10.231.72.1/24")
	tg := newTarget(t, "shared", br.Name)
	before := snapshot(t, tg.ns)
	e.fails(tg.args("--mtu", "9000"), "--mtu 9000 is above the MTU of bridge nswtbrsh (1500)", "give at most 1500")
	if l, _ := netlink.LinkByName(br.Name); l.Attrs().MTU != 1500 {
		t.Fatalf("bridge MTU is now %d", l.Attrs().MTU)
	}
	if err := netlink.LinkSetDown(br); err != nil {
		t.Fatal(err)
	}
	e.fails(tg.args(), "bridge nswtbrsh is down", "ip link set nswtbrsh up")
	if l, _ := netlink.LinkByName(br.Name); l.Attrs().Flags&net.FlagUp != 0 {
		t.Fatal("the bridge was brought up")
	}
	assertClean(t, e, tg, before, "after refused attaches")
	// Below the bridge's, the kernel would lower the bridge's MTU: refused.
	if err := netlink.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	e.fails(tg.args("--mtu", "1400"), "--mtu 1400 is below the MTU of bridge nswtbrsh (1500)")
	if l, _ := netlink.LinkByName(br.Name); l.Attrs().MTU != 1500 {
		t.Fatalf("bridge MTU is now %d", l.Attrs().MTU)
	}
	assertClean(t, e, tg, before, "after refused attaches")
	// The bridge's own MTU, given or not, is fine.
	if rec := tg.attach(e, "--mtu", "1500"); rec.MTU != 1500 {
		t.Fatalf("mtu %d", rec.MTU)
	}
	e.ok("detach", tg.id)
}

// TestNoRouterAdvertisementsAccepted: the interface attach creates has
// accept_ra=0 and autoconf=0, and --dry-run shows the step.
func TestNoRouterAdvertisementsAccepted(t *testing.T) {
	e := newEnv(t)
	tg := newTarget(t, "nora", testBridge(t, "nswtbrra", "10.231.73.1/24").Name)
	if out := e.ok(tg.args("--dry-run")...); !strings.Contains(out, "sysctl -w net.ipv6.conf.eth0.accept_ra=0 net.ipv6.conf.eth0.autoconf=0") {
		t.Fatalf("dry run lacks the no-ra step:\n%s", out)
	}
	tg.attach(e)
	for _, key := range []string{"accept_ra", "autoconf"} {
		v, ok, err := netops.IPv6Conf(tg.ns, "eth0", key)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			testenv.Unavailable(t, "the kernel has no IPv6")
		}
		if v != "0" {
			t.Fatalf("%s of eth0 is %s, want 0", key, v)
		}
	}
	e.ok("detach", tg.id)
}

// TestCLIEdges: --pid 0 is an error naming the value; --dry-run -o json is
// the plan as JSON.
func TestCLIEdges(t *testing.T) {
	e := newEnv(t)
	e.fails([]string{"attach", "--pid", "0"}, "--pid 0 is not a process ID")
	e.fails([]string{"observe", "--pid", "0"}, "--pid 0 is not a process ID")
	e.fails([]string{"attach", "--netns", ""}, `--netns "" is empty`)
	tg := newTarget(t, "plan", testBridge(t, "nswtbrpl", "10.231.74.1/24").Name)
	out := e.ok(tg.args("--dry-run", "-o", "json")...)
	var plan struct {
		Target string
		Record map[string]any
		Steps  []control.PlanStep
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("dry run -o json is not JSON: %v\n%s", err, out)
	}
	var names []string
	for _, s := range plan.Steps {
		names = append(names, s.Name)
		if s.Command == "" {
			t.Fatalf("step %s has no command", s.Name)
		}
	}
	if got := strings.Join(names, " "); got != "veth master host-up rename no-ra up address route datapath record" {
		t.Fatalf("steps %q", got)
	}
	if !strings.HasPrefix(plan.Steps[0].Command, "ip link add "+tg.hostIf) || plan.Record == nil || plan.Record["id"] != tg.id {
		t.Fatalf("plan %+v", plan)
	}
	if f := stateFiles(t, e.stateDir); len(f) != 0 {
		t.Fatalf("dry run left %v", f)
	}
}

// TestStateSymlinksRefused: a symlink planted at the lock's path makes
// attach fail naming the path; the file it points to is untouched.
func TestStateSymlinksRefused(t *testing.T) {
	e := newEnv(t)
	tg := newTarget(t, "symlink", testBridge(t, "nswtbrsy", "10.231.75.1/24").Name)
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(e.stateDir, "lock")
	if err := os.Symlink(victim, lock); err != nil {
		t.Fatal(err)
	}
	e.fails(tg.args(), "unsafe state path", lock, "is a symlink")
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Fatalf("the lock's symlink target now holds %q", b)
	}
	os.Remove(lock)
	tg.attach(e)
	e.ok("detach", tg.id)
}

// TestAttachRepairsIPv6: for a dual-stack attachment, attach also repairs
// the IPv6 address, the IPv6 default route, and IPv6 turned off on eth0.
func TestAttachRepairsIPv6(t *testing.T) {
	e := newEnv(t)
	br := testBridge(t, "nswtbrr6", "10.231.74.1/24")
	gw6 := &netlink.Addr{IPNet: mustCIDR(t, "fd00:4e53:7a13::1/64"), Flags: unix.IFA_F_NODAD}
	if err := netlink.AddrAdd(br, gw6); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(t, "repair6", br.Name)
	rec := tg.attach(e)
	if rec.Address6.Addr().String() == "invalid IP" || rec.Gateway6.String() != "fd00:4e53:7a13::1" {
		t.Fatalf("not dual stack: address6 %s gateway6 %s", rec.Address6, rec.Gateway6)
	}
	h, err := netlink.NewHandleAt(tg.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	repair := func(what string, want ...string) {
		t.Helper()
		out := e.ok(tg.args()...)
		for _, w := range append([]string{"repaired"}, want...) {
			if !strings.Contains(out, w) {
				t.Fatalf("attach after %s said %q, want %q", what, out, w)
			}
		}
		addrs, err := h.AddrList(eth0, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range addrs {
			if a.IPNet.String() == rec.Address6.String() {
				found = a.Flags&unix.IFA_F_TENTATIVE == 0
			}
		}
		if !found {
			t.Fatalf("after repairing %s: %s is not on eth0, usable: %v", what, rec.Address6, addrs)
		}
		if gw, _, err := netops.DefaultRoute(h, netlink.FAMILY_V6); err != nil || gw.String() != rec.Gateway6.String() {
			t.Fatalf("after repairing %s: IPv6 default route via %v (%v), want %s", what, gw, err, rec.Gateway6)
		}
	}
	addr6 := &netlink.Addr{IPNet: &net.IPNet{IP: rec.IPv6(), Mask: net.CIDRMask(rec.Address6.Bits(), 128)}}
	if err := h.AddrDel(eth0, addr6); err != nil {
		t.Fatal(err)
	}
	repair("deleting the IPv6 address", "address "+rec.Address6.String())
	if err := netops.DelDefaultRoute(h, eth0, net.IP(rec.Gateway6.AsSlice())); err != nil {
		t.Fatal(err)
	}
	repair("deleting the IPv6 default route", "default route via "+rec.Gateway6.String())
	if _, err := netops.SetIPv6Conf(tg.ns, "eth0", "disable_ipv6", "1"); err != nil {
		t.Fatal(err)
	}
	repair("turning IPv6 off on eth0", "IPv6 on eth0 (disable_ipv6 was 1)", "address "+rec.Address6.String(), "default route via "+rec.Gateway6.String())
	if out := e.ok(tg.args()...); !strings.Contains(out, "nothing changed") {
		t.Fatalf("attach of a complete dual-stack attachment said %q", out)
	}
	e.ok("detach", tg.id)
}
