//go:build linux

// Reliability tests: crash safety at every step of attach and detach, gc,
// doctor, concurrency (with a -race build of nswire), the state lock, ARP
// probing and announcing, dead and reused PIDs, and file permissions. Most
// targets are named network namespaces (--netns) rather than containers:
// they behave the same for wiring and cost milliseconds instead of a docker
// run each. Traffic goes only to addresses these tests create, on bridges
// they create (except where docker0 itself is the subject).
package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nswire/nswire/control/state"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nswire/nswire/bpf"
	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/netops"
	"github.com/nswire/nswire/test/testenv"
)

// target is a named network namespace to attach with --netns to a bridge.
type target struct {
	ns     netns.NsHandle
	path   string
	id     string // the record ID nswire gives it
	hostIf string
	bridge string
}

// args are the attach arguments of tg, then extra.
func (tg *target) args(extra ...string) []string {
	return append([]string{"attach", "--netns", tg.path, "--bridge", tg.bridge}, extra...)
}

// attach attaches tg and returns its record.
func (tg *target) attach(e *env, extra ...string) *state.Record {
	return e.attachJSON(tg.args(extra...)[1:]...)
}

func newTarget(t *testing.T, prefix, bridge string) *target {
	t.Helper()
	name := strings.ToLower(testenv.ContainerName(prefix))
	ns := testenv.NewNamedNetNS(t, name)
	ino, err := netops.Inode(ns)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("netns:%d", ino)
	return &target{ns: ns, path: "/run/netns/" + name, id: id, hostIf: netops.HostVethName(id), bridge: bridge}
}

// testBridge creates a bridge with cidr (the gateway address) for the
// test, so that address choices and ARP do not meet anyone else's.
func testBridge(t *testing.T, name, cidr string) *netlink.Bridge {
	t.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	br := &netlink.Bridge{LinkAttrs: attrs}
	netlink.LinkDel(br) // leftover of a crashed run
	if err := netlink.LinkAdd(br); err != nil {
		t.Fatalf("create bridge %s: %v", name, err)
	}
	t.Cleanup(func() { netlink.LinkDel(br) })
	if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: mustCIDR(t, cidr)}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	return br
}

// squatter is a namespace nswire knows nothing of, wired into bridge by
// hand with address cidr: a host that already uses an address.
func squatter(t *testing.T, bridge, hostName, cidr string) (netns.NsHandle, net.HardwareAddr) {
	t.Helper()
	ns := testenv.NewNetNS(t)
	attrs := netlink.NewLinkAttrs()
	attrs.Name = hostName
	v := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns))}
	netlink.LinkDel(v)
	if err := netlink.LinkAdd(v); err != nil {
		t.Fatalf("create veth %s: %v", hostName, err)
	}
	t.Cleanup(func() { netlink.LinkDel(v) })
	br, _ := netlink.LinkByName(bridge)
	host, _ := netlink.LinkByName(hostName)
	if err := netlink.LinkSetMaster(host, br); err != nil {
		t.Fatal(err)
	}
	netlink.LinkSetUp(host)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	peer, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(peer, &netlink.Addr{IPNet: mustCIDR(t, cidr)}); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(peer); err != nil {
		t.Fatal(err)
	}
	// Until the bridge forwards from the new port, nobody hears it; until
	// the kernel saw the bridge's carrier come on (up to a second after its
	// first port, for a new bridge), what the host sends on the bridge is
	// dropped.
	// The same holds for both ends of the squatter's veth: until the link
	// watcher activated their queues, the squatter's ARP reply is dropped.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		state, _ := os.ReadFile("/sys/class/net/" + hostName + "/brport/state")
		oper, _ := os.ReadFile("/sys/class/net/" + bridge + "/operstate")
		hostOper, _ := os.ReadFile("/sys/class/net/" + hostName + "/operstate")
		inner, err := h.LinkByName("eth0")
		innerUp := err == nil && inner.Attrs().OperState == netlink.OperUp
		if strings.TrimSpace(string(state)) == "3" && strings.TrimSpace(string(oper)) == "up" &&
			strings.TrimSpace(string(hostOper)) == "up" && innerUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge port %s never forwards", hostName)
		}
	}
	return ns, peer.Attrs().HardwareAddr
}

// stateFiles lists every file in the state dir but the lock: records,
// tombstones, temp files.
func stateFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != "lock" {
			out = append(out, e.Name())
		}
	}
	return out
}

// endpointsIn returns the host ifindexes in the pinned endpoints map.
func endpointsIn(t *testing.T, pinDir string) []uint32 {
	t.Helper()
	objs, err := bpf.OpenMaps(pinDir)
	if err != nil {
		return nil // nothing pinned
	}
	defer objs.Close()
	eps, err := objs.AllEndpoints()
	if err != nil {
		t.Fatal(err)
	}
	var out []uint32
	for k := range eps {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// assertClean fails t unless nothing of tg is left: no host veth, no
// record, tombstone or temp file, no link pin, no map entry, and the
// namespace exactly as before.
func assertClean(t *testing.T, e *env, tg *target, nsBefore, when string) {
	t.Helper()
	if _, err := netlink.LinkByName(tg.hostIf); err == nil {
		t.Fatalf("%s: host veth %s left", when, tg.hostIf)
	}
	if f := stateFiles(t, e.stateDir); len(f) != 0 {
		t.Fatalf("%s: state files left: %v", when, f)
	}
	if p := pinsUnder(e.pinDir); len(p) != 0 {
		t.Fatalf("%s: link pins left: %v", when, p)
	}
	if eps := endpointsIn(t, e.pinDir); len(eps) != 0 {
		t.Fatalf("%s: endpoint map entries left: %v", when, eps)
	}
	if got := snapshot(t, tg.ns); got != nsBefore {
		t.Fatalf("%s: namespace is\n%s\nwant\n%s", when, got, nsBefore)
	}
}

// assertAttached fails t unless tg is completely attached: one record, and
// doctor finds every part of it (veth ends, bridge port, address, route,
// gateway ARP, programs as recorded, counters moving).
func assertAttached(t *testing.T, e *env, tg *target, when string) {
	t.Helper()
	recs, bad, _ := state.Store{Dir: e.stateDir}.List()
	if len(recs) != 1 || len(bad) != 0 || recs[0].ID != tg.id {
		t.Fatalf("%s: records %v, corrupt %v", when, recs, bad)
	}
	r := e.run("doctor", tg.id)
	if r.code != 0 {
		t.Fatalf("%s: doctor %s: exit %d\n%s%s", when, tg.id, r.code, r.stdout, r.stderr)
	}
}

// TestCrashAtEveryAttachStep kills nswire (exit 86 from the crash hook, as
// abrupt as SIGKILL: no deferred cleanup runs) after each step of an
// attach in turn, then recovers either with `nswire gc` or with the next
// attach, and checks the result is a clean host or a complete attach.
func TestCrashAtEveryAttachStep(t *testing.T) {
	e := newEnv(t)
	tg := newTarget(t, "crash-a", testBridge(t, "nswtbra", "10.231.1.1/24").Name)
	before := snapshot(t, tg.ns)
	steps := strings.Count(e.ok(tg.args("--dry-run")...), "\n")
	if steps != 10 {
		t.Fatalf("attach has %d steps, want 10", steps)
	}
	for k := 1; k <= steps; k++ {
		for _, recovery := range []string{"gc", "attach"} {
			when := fmt.Sprintf("crash after attach step %d, then %s", k, recovery)
			e.extraEnv = []string{fmt.Sprintf("NSWIRE_CRASH_AFTER_STEP=%d", k)}
			if r := e.run(tg.args()...); r.code != control.CrashExitCode {
				t.Fatalf("%s: exit %d, want %d\n%s", when, r.code, control.CrashExitCode, r.stderr)
			}
			e.extraEnv = nil
			switch recovery {
			case "gc":
				e.ok("gc")
				if k == steps { // the record was written: a complete attach, kept
					assertAttached(t, e, tg, when)
					e.ok("detach", tg.id)
				}
			case "attach":
				tg.attach(e)
				assertAttached(t, e, tg, when)
				e.ok("detach", tg.id)
			}
			assertClean(t, e, tg, before, when)
		}
	}
}

// TestCrashAtEveryDetachStep kills nswire after each step of a detach in
// turn, then recovers with gc, with the next detach, or with the next
// attach.
func TestCrashAtEveryDetachStep(t *testing.T) {
	e := newEnv(t)
	tg := newTarget(t, "crash-d", testBridge(t, "nswtbrd", "10.231.2.1/24").Name)
	before := snapshot(t, tg.ns)
	const steps = 4 // tombstone, datapath, veth, tombstone removal
	for k := 1; k <= steps; k++ {
		for _, recovery := range []string{"gc", "detach", "attach"} {
			when := fmt.Sprintf("crash after detach step %d, then %s", k, recovery)
			tg.attach(e)
			e.extraEnv = []string{fmt.Sprintf("NSWIRE_CRASH_AFTER_STEP=%d", k)}
			if r := e.run("detach", tg.id); r.code != control.CrashExitCode {
				t.Fatalf("%s: exit %d, want %d\n%s", when, r.code, control.CrashExitCode, r.stderr)
			}
			e.extraEnv = nil
			if recs, _, _ := (state.Store{Dir: e.stateDir}).List(); len(recs) != 0 {
				t.Fatalf("%s: the interrupted detach left a record that ls would show", when)
			}
			switch recovery {
			case "gc":
				e.ok("gc")
			case "detach":
				e.ok("detach", tg.id)
			case "attach":
				tg.attach(e)
				assertAttached(t, e, tg, when)
				e.ok("detach", tg.id)
			}
			assertClean(t, e, tg, before, when)
		}
	}
}

// TestGCRemovesOnlyOrphans: gc removes a dead target's record, veth, pins
// and map entries, and keeps what it did not create: an untagged nsw veth,
// an nsw veth whose peer is in the host, a corrupt record. --dry-run lists
// and removes nothing.
func TestGCRemovesOnlyOrphans(t *testing.T) {
	e := newEnv(t)
	live := newTarget(t, "gc-live", testBridge(t, "nswtbrgc", "10.231.3.1/24").Name)
	live.attach(e)

	// A target whose process (and with it its namespace) dies while
	// attached: its veth goes with the namespace, its record, pins and map
	// entry stay.
	proc := sleeperInNewNetns(t)
	dead := e.attachJSON("--pid", fmt.Sprint(proc.Process.Pid), "--bridge", live.bridge)
	proc.Process.Kill()
	proc.Wait()
	waitGone(t, dead.HostIf)

	// Not nswire's: an nsw-named veth with no tag (peer in a namespace),
	// and one whose both ends are in the host.
	other := testenv.NewNetNS(t)
	for _, v := range []*netlink.Veth{
		{LinkAttrs: netlink.LinkAttrs{Name: "nsw0badc0de"}, PeerName: "nswpeer0", PeerNamespace: netlink.NsFd(int(other))},
		{LinkAttrs: netlink.LinkAttrs{Name: "nsw0badc0df"}, PeerName: "nswpeer1"},
	} {
		v.TxQLen = -1
		if err := netlink.LinkAdd(v); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { netlink.LinkDel(v) })
	}
	// A corrupt record of a docker-like ID.
	corrupt := filepath.Join(e.stateDir, strings.Repeat("ab", 32)+".json")
	if err := os.WriteFile(corrupt, []byte(`{"version":1,"id":"ab`), 0o600); err != nil {
		t.Fatal(err)
	}

	var dry control.GCReport
	if err := json.Unmarshal([]byte(e.ok("gc", "--dry-run", "-o", "json")), &dry); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, it := range dry.Items {
		if it.Removed {
			t.Fatalf("dry run removed %+v", it)
		}
		kinds[it.Kind+" "+it.Name] = true
	}
	if !kinds["record "+dead.Name] || !kinds["corrupt-record "+corrupt] || dry.Live != 1 {
		t.Fatalf("dry run found %+v", dry)
	}
	if recs, _, _ := (state.Store{Dir: e.stateDir}).List(); len(recs) != 2 {
		t.Fatalf("dry run changed the records: %d left", len(recs))
	}
	out := e.ok("gc")
	if !strings.Contains(out, "removed") || !strings.Contains(out, fmt.Sprintf("its process %d is gone", dead.PID)) || !strings.Contains(out, "kept") {
		t.Fatalf("gc said:\n%s", out)
	}
	for _, n := range []string{"nsw0badc0de", "nsw0badc0df", live.hostIf} {
		if _, err := netlink.LinkByName(n); err != nil {
			t.Fatalf("gc removed %s, which it must keep", n)
		}
	}
	if _, err := os.Stat(corrupt); err != nil {
		t.Fatal("gc removed the corrupt record")
	}
	if p := pinsUnder(e.pinDir); len(p) != 2 { // live's ingress and egress
		t.Fatalf("pins after gc: %v", p)
	}
	if eps := endpointsIn(t, e.pinDir); len(eps) != 1 {
		t.Fatalf("endpoints after gc: %v", eps)
	}
	os.Remove(corrupt)
	assertAttached(t, e, live, "after gc")
	e.ok("detach", live.id)
	if out := e.ok("gc"); !strings.Contains(out, "nothing to collect") {
		t.Fatalf("second gc: %s", out)
	}
}

func waitGone(t *testing.T, link string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := netlink.LinkByName(link); err != nil {
			return
		}
	}
	t.Fatalf("%s still exists", link)
}

var (
	raceOnce sync.Once
	raceBin  string
	raceErr  error
)

// raceNswire builds nswire with -race once, for the concurrency tests: a
// data race makes the binary exit 66.
func raceNswire(t *testing.T) string {
	t.Helper()
	raceOnce.Do(func() {
		raceBin = filepath.Join(filepath.Dir(nswireBin), "nswire-race")
		out, err := exec.Command("go", "build", "-race", "-o", raceBin, "../cmd/nswire").CombinedOutput()
		if err != nil {
			raceErr = fmt.Errorf("go build -race: %v\n%s", err, out)
		}
	})
	if raceErr != nil {
		t.Fatal(raceErr)
	}
	return raceBin
}

// runRace runs the -race nswire of e with args.
func (e *env) runRace(bin string, args ...string) result {
	full := append([]string{"--state-dir", e.stateDir, "--pin-dir", e.pinDir}, args...)
	c := exec.Command(bin, full...)
	var out, errb strings.Builder
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		errb.WriteString(err.Error())
	}
	return result{out.String(), errb.String(), code}
}

// TestFiftyConcurrentAttaches: 50 nswire processes (built with -race)
// attach 50 different namespaces at once; all succeed with distinct
// addresses, names, MACs and slots; then 50 detach at once and nothing is
// left. The targets are --netns namespaces on a bridge of the test's own.
func TestFiftyConcurrentAttaches(t *testing.T) {
	e := newEnv(t)
	bin := raceNswire(t)
	testBridge(t, "nswtbr50", "10.231.50.1/24")
	const n = 50
	tgs := make([]*target, n)
	for i := range tgs {
		tgs[i] = newTarget(t, fmt.Sprintf("c50-%d", i), "nswtbr50")
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range tgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.runRace(bin, tgs[i].args("-o", "json")...)
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent attaches (race build) took %s", n, time.Since(start))
	seen := map[string]string{}
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("attach %d: exit %d\n%s", i, r.code, r.stderr)
		}
		var rec state.Record
		if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil {
			t.Fatalf("attach %d: %v\n%s", i, err, r.stdout)
		}
		for _, k := range []string{"ip " + rec.Address.String(), "if " + rec.HostIf, "mac " + rec.MAC.String(), fmt.Sprintf("slot %d", rec.Slot), fmt.Sprintf("ifindex %d", rec.HostIfindex)} {
			if prev, dup := seen[k]; dup {
				t.Fatalf("%s given to both %s and %s", k, prev, rec.ID)
			}
			seen[k] = rec.ID
		}
	}
	if recs, bad, _ := (state.Store{Dir: e.stateDir}).List(); len(recs) != n || len(bad) != 0 {
		t.Fatalf("%d records (%d corrupt), want %d", len(recs), len(bad), n)
	}
	for i := range tgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.runRace(bin, "detach", tgs[i].id)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("detach %d: exit %d\n%s", i, r.code, r.stderr)
		}
	}
	if f := stateFiles(t, e.stateDir); len(f) != 0 {
		t.Fatalf("state left: %v", f)
	}
	if p := pinsUnder(e.pinDir); len(p) != 0 {
		t.Fatalf("pins left: %v", p)
	}
	for _, tg := range tgs {
		if _, err := netlink.LinkByName(tg.hostIf); err == nil {
			t.Fatalf("veth %s left", tg.hostIf)
		}
	}
}

// TestAttachDetachGCRace: attach, detach and gc of the same target race
// (three -race processes at once, many rounds); every process succeeds and
// after each round the target is either completely attached or completely
// clean.
func TestAttachDetachGCRace(t *testing.T) {
	e := newEnv(t)
	bin := raceNswire(t)
	tg := newTarget(t, "race", testBridge(t, "nswtbrr", "10.231.4.1/24").Name)
	before := snapshot(t, tg.ns)
	for round := range 15 {
		var wg sync.WaitGroup
		res := make([]result, 3)
		for i, args := range [][]string{tg.args(), {"detach", tg.id}, {"gc"}} {
			wg.Add(1)
			go func() { defer wg.Done(); res[i] = e.runRace(bin, args...) }()
		}
		wg.Wait()
		for i, r := range res {
			if r.code != 0 {
				t.Fatalf("round %d, process %d: exit %d\n%s", round, i, r.code, r.stderr)
			}
		}
		when := fmt.Sprintf("round %d", round)
		if recs, _, _ := (state.Store{Dir: e.stateDir}).List(); len(recs) == 1 {
			assertAttached(t, e, tg, when)
		} else {
			assertClean(t, e, tg, before, when)
		}
	}
	e.ok("detach", tg.id)
	assertClean(t, e, tg, before, "end")
}

// TestKilledLockHolderDoesNotBlock: an attach waiting for the state lock
// proceeds as soon as the holder is SIGKILLed (the kernel drops a flock
// with its holder's last descriptor).
func TestKilledLockHolderDoesNotBlock(t *testing.T) {
	e := newEnv(t)
	testenv.RequireTool(t, "flock")
	tg := newTarget(t, "lock", testBridge(t, "nswtbrl", "10.231.5.1/24").Name)
	lockPath := filepath.Join(e.stateDir, "lock")
	// -o: sleep does not inherit the lock; flock itself holds it.
	holder := exec.Command("flock", "-o", lockPath, "sleep", "60")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if exec.Command("flock", "-n", lockPath, "true").Run() != nil {
			break // held
		}
		if time.Now().After(deadline) {
			t.Fatal("flock never took the lock")
		}
	}
	attach := e.cmd(tg.args()...)
	done := make(chan error, 1)
	if err := attach.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- attach.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("attach finished while the lock was held: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	killed := time.Now()
	holder.Process.Signal(syscall.SIGKILL)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("attach after the holder was killed: %v", err)
		}
		t.Logf("attach finished %s after the holder was killed", time.Since(killed))
	case <-time.After(5 * time.Second):
		t.Fatal("attach still blocked 5 s after the lock holder was killed")
	}
	e.ok("detach", tg.id)
}

// TestAddressConflict: a namespace nswire does not know holds an address on
// the bridge (nothing in the host's neighbour table says so). Attach with
// that address fails cleanly; the automatic choice skips it.
func TestAddressConflict(t *testing.T) {
	e := newEnv(t)
	testBridge(t, "nswtbrc", "10.231.60.1/29") // hosts .2 … .6; the automatic choice starts at .6
	_, squatMAC := squatter(t, "nswtbrc", "nswtsq0", "10.231.60.6/29")
	tg := newTarget(t, "conflict", "nswtbrc")
	before, hostBefore := snapshot(t, tg.ns), hostSnapshot(t)

	e.fails(tg.args("--ip", "10.231.60.6/29"),
		"--ip 10.231.60.6 is already in use by a host with MAC "+squatMAC.String(), "every step done was undone")
	if got := hostSnapshot(t); got != hostBefore {
		t.Fatalf("failed attach changed the host:\n%s\nwant\n%s", got, hostBefore)
	}
	assertClean(t, e, tg, before, "after the refused --ip")

	rec := tg.attach(e)
	if rec.Address.String() != "10.231.60.5/29" {
		t.Fatalf("automatic choice gave %s, want 10.231.60.5/29 (skipping the squatter's .6)", rec.Address.String())
	}
	e.ok("detach", tg.id)
}

// TestGratuitousARPUpdatesNeighbours: a neighbour on the bridge holds a
// stale entry for an address (from a previous owner); attaching a target
// with that address updates the neighbour's entry to the new MAC at once.
func TestGratuitousARPUpdatesNeighbours(t *testing.T) {
	e := newEnv(t)
	testBridge(t, "nswtbrg", "10.231.61.1/24")
	nb, _ := squatter(t, "nswtbrg", "nswtnb0", "10.231.61.2/24")
	h, err := netlink.NewHandleAt(nb)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth0, _ := h.LinkByName("eth0")
	old, _ := net.ParseMAC("02:00:de:ad:be:ef")
	ip := net.ParseIP("10.231.61.40").To4()
	if err := h.NeighSet(&netlink.Neigh{LinkIndex: eth0.Attrs().Index, Family: netlink.FAMILY_V4, IP: ip, HardwareAddr: old, State: netlink.NUD_STALE}); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(t, "garp", "nswtbrg")
	rec := tg.attach(e, "--ip", "10.231.61.40/24", "--mode", "off")
	var got string
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		ns, _ := h.NeighList(eth0.Attrs().Index, netlink.FAMILY_V4)
		for _, n := range ns {
			if n.IP.Equal(ip) {
				got = n.HardwareAddr.String()
			}
		}
		if got == rec.MAC.String() {
			break
		}
	}
	if got != rec.MAC.String() {
		t.Fatalf("the neighbour's entry for %s is %s, want the new owner's %s", ip, got, rec.MAC.String())
	}
	e.ok("detach", tg.id)
}

// sleeperInNewNetns starts a process in a network namespace of its own.
func sleeperInNewNetns(t *testing.T) *exec.Cmd {
	t.Helper()
	c := exec.Command("sleep", "300")
	c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	return c
}

// TestReusedPIDIsNeverFollowed: a record whose PID died and was reused by a
// process in another namespace (here: a process in the host namespace) is
// found stale by gc, which removes the record without entering or changing
// the new process's namespace; doctor says so too.
func TestReusedPIDIsNeverFollowed(t *testing.T) {
	e := newEnv(t)
	proc := sleeperInNewNetns(t)
	rec := e.attachJSON("--pid", fmt.Sprint(proc.Process.Pid), "--mode", "off", "--bridge", testBridge(t, "nswtbrpid", "10.231.8.1/24").Name)
	proc.Process.Kill()
	proc.Wait()
	waitGone(t, rec.HostIf)
	// "Reuse": the record's PID now names a process in the host namespace.
	other := exec.Command("sleep", "300")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	rec.PID = other.Process.Pid
	rec.NetnsPath = fmt.Sprintf("/proc/%d/ns/net", rec.PID)
	if err := (state.Store{Dir: e.stateDir}).Put(rec); err != nil {
		t.Fatal(err)
	}
	hostBefore := snapshot(t, hostNS(t))
	r := e.run("doctor", rec.ID)
	if r.code != 1 || !strings.Contains(r.stdout, "is now in another namespace") {
		t.Fatalf("doctor of a reused PID: exit %d\n%s", r.code, r.stdout)
	}
	if out := e.ok("gc"); !strings.Contains(out, "now in another namespace") {
		t.Fatalf("gc said:\n%s", out)
	}
	if f := stateFiles(t, e.stateDir); len(f) != 0 {
		t.Fatalf("state left: %v", f)
	}
	if got := snapshot(t, hostNS(t)); got != hostBefore {
		t.Fatalf("gc changed the namespace of the PID's new owner:\n%s\nwant\n%s", got, hostBefore)
	}
}

// TestDoctor: the machine check passes here and explains a missing bridge;
// the target check passes for an attached target and names what broke
// when its interface is down or its veth left the bridge.
func TestDoctor(t *testing.T) {
	e := newEnv(t)
	var rep control.DoctorReport
	if err := json.Unmarshal([]byte(e.ok("doctor", "-o", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, c := range rep.Checks {
		names[c.Name] = c.Status
	}
	for _, n := range []string{"privileges", "bpffs", "tcx", "btf", "bridge", "docker", "br_netfilter", "addresses", "state"} {
		if names[n] == "" {
			t.Fatalf("doctor has no %s check: %+v", n, rep)
		}
	}
	if !rep.OK || names["docker"] != control.CheckOK || names["tcx"] != control.CheckOK {
		t.Fatalf("doctor on the test machine: %+v", rep)
	}
	r := e.run("doctor", "--bridge", "nswnosuchbr")
	if r.code != 1 || !strings.Contains(r.stdout, `FAIL  bridge        bridge "nswnosuchbr" does not exist`) || !strings.Contains(r.stdout, "fix: ") {
		t.Fatalf("doctor --bridge nswnosuchbr: exit %d\n%s", r.code, r.stdout)
	}
	// Not root: the capabilities are named, with the fix.
	c := e.cmd("doctor")
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := c.CombinedOutput()
	if !strings.Contains(string(out), "FAIL  privileges") || !strings.Contains(string(out), "CAP_NET_ADMIN") || !strings.Contains(string(out), "setcap") {
		t.Fatalf("unprivileged doctor said:\n%s", out)
	}

	tg := newTarget(t, "doctor", testBridge(t, "nswtbrdr", "10.231.6.1/24").Name)
	rec := tg.attach(e)
	out2 := e.ok("doctor", tg.id)
	for _, want := range []string{"OK    gateway", "answered ARP", "OK    programs", "OK    counters", "OK    route"} {
		if !strings.Contains(out2, want) {
			t.Fatalf("doctor %s lacks %q:\n%s", tg.id, want, out2)
		}
	}
	// Break it: the container's interface down.
	h, _ := netlink.NewHandleAt(tg.ns)
	defer h.Close()
	eth0, _ := h.LinkByName("eth0")
	h.LinkSetDown(eth0)
	r = e.run("doctor", tg.id)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL  container-if  eth0 is down") {
		t.Fatalf("doctor with eth0 down: exit %d\n%s", r.code, r.stdout)
	}
	h.LinkSetUp(eth0)
	host, _ := netlink.LinkByName(rec.HostIf)
	netlink.LinkSetNoMaster(host)
	r = e.run("doctor", tg.id, "-o", "json")
	if r.code != 1 || !strings.Contains(r.stdout, `"name": "bridge-port"`) || !strings.Contains(r.stdout, "is not a port of nswtbrdr") {
		t.Fatalf("doctor with the veth off the bridge: exit %d\n%s", r.code, r.stdout)
	}
	e.ok("detach", tg.id)
	if r := e.run("doctor", tg.id); r.code != 1 || !strings.Contains(r.stdout, "is not attached") {
		t.Fatalf("doctor of a detached target: exit %d\n%s", r.code, r.stdout)
	}
}

// TestStatePermissions: the state dir, records and lock, the pin dir and
// every pin are root's alone; another user can neither read nor write
// them (so nobody but root can read or reset another's counters).
func TestStatePermissions(t *testing.T) {
	e := newEnv(t)
	tg := newTarget(t, "perm", testBridge(t, "nswtbrp", "10.231.7.1/24").Name)
	tg.attach(e)
	paths := map[string]os.FileMode{
		e.stateDir:                        0o700,
		filepath.Join(e.stateDir, "lock"): 0o600,
		e.pinDir:                          0o700,
	}
	recFiles, _ := filepath.Glob(filepath.Join(e.stateDir, "*.json"))
	for _, p := range recFiles {
		paths[p] = 0o600
	}
	filepath.WalkDir(e.pinDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != e.pinDir {
			if d.IsDir() {
				paths[p] = 0o700
			} else {
				paths[p] = 0o600
			}
		}
		return nil
	})
	if len(recFiles) != 1 || len(paths) < 8 {
		t.Fatalf("expected a record, maps and link pins, got %v", paths)
	}
	for p, want := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&^want != 0 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s: mode %04o uid %d, want at most %04o and root", p, got, fi.Sys().(*syscall.Stat_t).Uid, want)
		}
		// As nobody: neither open for reading nor for writing works.
		op := "exec 3<"
		if !fi.IsDir() {
			op = "exec 3>>"
		}
		sh := exec.Command("sh", "-c", op+`"$1"`, "sh", p)
		sh.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := sh.CombinedOutput(); err == nil {
			t.Errorf("user nobody could open %s (%s)", p, out)
		}
	}
	e.ok("detach", tg.id)
}

// attachContainer starts a --network=none container and attaches it.
func attachContainer(t *testing.T, e *env, prefix string) (string, *state.Record) {
	t.Helper()
	cli := testenv.Docker(t)
	id, _ := testenv.RunNone(t, cli, prefix)
	return id, e.attachJSON(id)
}

// TestGCAfterContainerRemoved: a container removed while attached leaves a
// record that gc removes (with its pins and map entry), freeing its
// address, which the next attach may choose again.
func TestGCAfterContainerRemoved(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	id, rec := attachContainer(t, e, "gc-removed")
	if err := cli.ContainerKill(context.Background(), id, "KILL"); err != nil {
		t.Fatal(err)
	}
	waitGone(t, rec.HostIf)
	out := e.ok("gc")
	if !strings.Contains(out, "its process") || !strings.Contains(out, "frees "+rec.Address.String()) {
		t.Fatalf("gc said:\n%s", out)
	}
	if f := stateFiles(t, e.stateDir); len(f) != 0 {
		t.Fatalf("state left: %v", f)
	}
	if p := pinsUnder(e.pinDir); len(p) != 0 {
		t.Fatalf("pins left: %v", p)
	}
	if eps := endpointsIn(t, e.pinDir); len(eps) != 0 {
		t.Fatalf("map entries left: %v", eps)
	}
}
