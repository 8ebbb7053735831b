//go:build linux

package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/dockerengine"

	"github.com/vishvananda/netlink"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/test/testenv"
)

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// newBenchManager is a Manager with its own state and pin dirs, removed at
// the end.
func newBenchManager(b *testing.B) (*control.Manager, string) {
	b.Helper()
	testenv.RequireRoot(b)
	stateDir := b.TempDir()
	pinDir := "/sys/fs/bpf/nswire-bench-" + testenv.ContainerName("a")
	m, err := control.NewManager(control.Config{StateDir: stateDir, PinDir: pinDir, NewEngine: dockerengine.New})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		m.Close()
		os.RemoveAll(pinDir)
	})
	return m, stateDir
}

// attachModes are the datapath settings BenchmarkAttach compares: no
// programs, and observe with tcx links or with legacy tc filters.
var attachModes = []struct{ mode, attach string }{{"off", "auto"}, {"observe", "tcx"}, {"observe", "tc"}}

// BenchmarkAttach measures attach and detach of a running --network=none
// container per datapath mode, in process (the control API, what nswire
// itself spends) and through the CLI (what a user waits, including process
// start), at both settings of /sys/kernel/rcu_expedited: 1 (this VM) and 0
// (most distributions), where each synchronize_rcu() in the kernel costs a
// full grace period. Rounds interleave everything (per round: each setting,
// each mode, in process then CLI), so drift hits all cells alike. The
// original setting is restored at the end, and on SIGINT/SIGTERM. Run with
// `make bench-attach`.
func BenchmarkAttach(b *testing.B) {
	const rounds = 20
	rcu := testenv.UseRCUExpedited(b)
	cli := testenv.Docker(b)
	id, _ := testenv.RunNone(b, cli, "benchattach", "sleep", "600")
	m, _ := newBenchManager(b)
	ctx := context.Background()
	cliState := b.TempDir()
	cliPin := "/sys/fs/bpf/nswire-bench-" + testenv.ContainerName("c")
	b.Cleanup(func() { os.RemoveAll(cliPin) })
	runCLI := func(args ...string) time.Duration {
		t0 := time.Now()
		out, err := exec.Command(nswireBin, append([]string{"--state-dir", cliState, "--pin-dir", cliPin}, args...)...).CombinedOutput()
		d := time.Since(t0)
		if err != nil {
			b.Fatalf("nswire %v: %v\n%s", args, err, out)
		}
		return d
	}
	inProcess := func(mode, attach string) (att, det time.Duration) {
		t0 := time.Now()
		if _, err := m.Attach(ctx, control.AttachRequest{Target: control.TargetSpec{Container: id}, Mode: datapath.Mode(mode), Hook: datapath.Hook(attach)}, false); err != nil {
			b.Fatal(err)
		}
		att = time.Since(t0)
		t0 = time.Now()
		if _, err := m.Detach(ctx, id); err != nil {
			b.Fatal(err)
		}
		return att, time.Since(t0)
	}
	viaCLI := func(mode, attach string) (att, det time.Duration) {
		return runCLI("attach", id, "--mode", mode, "--attach-mode", attach), runCLI("detach", id)
	}
	// Warm up: the first attach loads and pins the programs.
	for _, md := range attachModes {
		inProcess(md.mode, md.attach)
		viaCLI(md.mode, md.attach)
	}
	type cell struct {
		rcu       bool
		mode, via string
	}
	att, det := map[cell][]time.Duration{}, map[cell][]time.Duration{}
	settings := []bool{rcu.Original(), !rcu.Original()}
	for r := range rounds {
		for i := range settings {
			on := settings[(i+r)%2] // alternate which setting goes first
			rcu.Set(on)
			for _, md := range attachModes {
				name := md.mode + "-" + md.attach
				a, d := inProcess(md.mode, md.attach)
				c := cell{on, name, "in-process"}
				att[c], det[c] = append(att[c], a), append(det[c], d)
				a, d = viaCLI(md.mode, md.attach)
				c.via = "cli"
				att[c], det[c] = append(att[c], a), append(det[c], d)
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "attach/detach medians over %d interleaved rounds (container %s, docker0)\n", rounds, id[:12])
	fmt.Fprintf(&tbl, "%-14s %-11s %-12s %9s %9s %9s %9s\n", "rcu_expedited", "via", "mode", "attach", "att-min", "detach", "det-min")
	for _, on := range []bool{true, false} {
		for _, via := range []string{"in-process", "cli"} {
			for _, md := range attachModes {
				c := cell{on, md.mode + "-" + md.attach, via}
				fmt.Fprintf(&tbl, "%-14d %-11s %-12s %8.1fms %8.1fms %8.1fms %8.1fms\n", boolInt(on), via, c.mode,
					ms(median(att[c])), ms(slices.Min(att[c])), ms(median(det[c])), ms(slices.Min(det[c])))
				unit := fmt.Sprintf("-%s-%s-rcu%d", via, c.mode, boolInt(on))
				b.ReportMetric(ms(median(att[c])), "ms/attach"+unit)
				b.ReportMetric(ms(median(det[c])), "ms/detach"+unit)
			}
		}
	}
	b.Log("\n" + tbl.String())
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// BenchmarkAttachScaling attaches 200 targets (throwaway named network
// namespaces) one after another, several runs, and compares the median time
// of the 1st attach with that of the 200th: attach time must not grow with
// the number of attached targets (ratio under 1.5). The targets go on a
// test bridge of their own: on docker0, other users of the machine's
// addresses would make the address choice, not nswire, the variable.
func BenchmarkAttachScaling(b *testing.B) {
	const n, runs = 200, 3
	testenv.RequireRoot(b)
	br := fmt.Sprintf("nswbs%04x", os.Getpid()%0x10000)
	testBridgeFor(b, br, "10.221.0.1/24")
	nss := make([]string, n)
	for i := range nss {
		nss[i] = fmt.Sprintf("nswbs%d-%d", os.Getpid()%10000, i)
		testenv.NewNamedNetNS(b, nss[i])
	}
	m, _ := newBenchManager(b)
	ctx := context.Background()
	// Warm up: the first attach on a machine loads and pins the programs.
	if _, err := m.Attach(ctx, control.AttachRequest{Target: control.TargetSpec{NetnsPath: "/run/netns/" + nss[0]}, Bridge: br}, false); err != nil {
		b.Fatal(err)
	}
	if _, err := m.Detach(ctx, "/run/netns/"+nss[0]); err != nil {
		b.Fatal(err)
	}
	var first, last []time.Duration
	for r := range runs {
		times := make([]time.Duration, n)
		for i, ns := range nss {
			t0 := time.Now()
			if _, err := m.Attach(ctx, control.AttachRequest{Target: control.TargetSpec{NetnsPath: "/run/netns/" + ns}, Bridge: br}, false); err != nil {
				b.Fatalf("run %d attach %d: %v", r, i+1, err)
			}
			times[i] = time.Since(t0)
		}
		first, last = append(first, times[0]), append(last, times[n-1])
		b.Logf("run %d: attach #1 %v, #100 %v, #200 %v; median of all %v", r+1, times[0], times[n/2-1], times[n-1], median(times))
		for _, ns := range nss {
			if _, err := m.Detach(ctx, "/run/netns/"+ns); err != nil {
				b.Fatal(err)
			}
		}
	}
	ratio := float64(median(last)) / float64(median(first))
	b.ReportMetric(float64(median(first).Microseconds())/1000, "ms/attach-1st")
	b.ReportMetric(float64(median(last).Microseconds())/1000, "ms/attach-200th")
	b.ReportMetric(ratio, "200th/1st")
	b.Logf("median over %d runs: 1st attach %v, 200th attach %v, ratio %.2f (bar: < 1.5)", runs, median(first), median(last), ratio)
}

// BenchmarkStats500 attaches 500 targets (throwaway named network
// namespaces) and times `nswire stats -o json` over all of them, a new
// process each time as a user runs it (bar: ≤ 50 ms).
func BenchmarkStats500(b *testing.B) {
	const n, runs = 500, 15
	testenv.RequireRoot(b)
	stateDir := b.TempDir()
	pinDir := "/sys/fs/bpf/nswire-bench-" + testenv.ContainerName("s")
	m, err := control.NewManager(control.Config{StateDir: stateDir, PinDir: pinDir, NewEngine: dockerengine.New})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close(); os.RemoveAll(pinDir) })
	ctx := context.Background()
	brName := "nswbst0"
	testBridgeFor(b, brName, "10.233.0.1/20")
	for i := range n {
		ns := fmt.Sprintf("nswbst%d-%d", os.Getpid()%10000, i)
		testenv.NewNamedNetNS(b, ns)
		if _, err := m.Attach(ctx, control.AttachRequest{Target: control.TargetSpec{NetnsPath: "/run/netns/" + ns}, Bridge: brName}, false); err != nil {
			b.Fatalf("attach %d: %v", i+1, err)
		}
		b.Cleanup(func() { m.Detach(context.Background(), "/run/netns/"+ns) })
	}
	var times []time.Duration
	for range runs {
		t0 := time.Now()
		out, err := exec.Command(nswireBin, "--state-dir", stateDir, "--pin-dir", pinDir, "stats", "-o", "json").Output()
		times = append(times, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if got := strings.Count(string(out), `"hostIf"`); got != n {
			b.Fatalf("stats listed %d endpoints, want %d", got, n)
		}
	}
	b.ReportMetric(float64(median(times).Microseconds())/1000, "ms/stats-median")
	b.Logf("nswire stats -o json, %d endpoints, %d runs: median %v (min %v, max %v); bar ≤ 50 ms", n, runs, median(times), slices.Min(times), slices.Max(times))
}

// testBridgeFor creates a bridge with the address cidr (the gateway), up,
// deleted at cleanup.
func testBridgeFor(tb testing.TB, name, cidr string) {
	tb.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	br := &netlink.Bridge{LinkAttrs: attrs}
	if err := netlink.LinkAdd(br); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { netlink.LinkDel(br) })
	ip, n, _ := net.ParseCIDR(cidr)
	n.IP = ip
	if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: n}); err != nil {
		tb.Fatal(err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		tb.Fatal(err)
	}
}
