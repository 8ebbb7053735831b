//go:build linux

package test

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nswire/nswire/control/state"

	"github.com/nswire/nswire/control/bench"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/vishvananda/netlink"

	"github.com/nswire/nswire/test/testenv"
)

// tinyBench is the smallest configuration that still measures every cell.
var tinyBench = []string{"bench", "--rounds", "1", "--duration", "400ms", "--slices", "2", "--warmup", "50ms"}

// nswLinks returns the names of the host's links that start with nsw.
func nswLinks(t *testing.T) map[string]bool {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "nsw") {
			out[l.Attrs().Name] = true
		}
	}
	return out
}

// benchLeftovers lists what a bench left behind: host veths that were not
// there before, namespaces nswb-*, containers labelled org.nswire.bench,
// records.
func benchLeftovers(t *testing.T, e *env, cli *client.Client, linksBefore map[string]bool) []string {
	t.Helper()
	var left []string
	for name := range nswLinks(t) {
		if !linksBefore[name] {
			left = append(left, "link "+name)
		}
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), bench.NetnsPrefix) {
			left = append(left, "netns "+d.Name())
		}
	}
	if cli != nil {
		cs, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", bench.Label))})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			left = append(left, "container "+strings.Join(c.Names, ","))
		}
	}
	recs, _, _ := state.Store{Dir: e.stateDir}.List()
	for _, r := range recs {
		left = append(left, "record "+r.DisplayName())
	}
	return left
}

// checkBenchResult asserts that r is complete and consistent: every variant
// × workload × figure present once per round, numbers positive, ratios the
// quotients of the medians shown.
func checkBenchResult(t *testing.T, r *bench.Result, variants []string) {
	t.Helper()
	if !slices.Equal(r.Variants, variants) {
		t.Fatalf("variants run %v, want %v (notes %v)", r.Variants, variants, r.Notes)
	}
	perCell := r.Config.SliceCount()
	if want := r.Config.Rounds * len(r.Config.Workloads) * len(variants) * perCell; len(r.Samples) != want {
		t.Errorf("%d samples, want %d", len(r.Samples), want)
	}
	seen := map[string]int{}
	for _, s := range r.Samples {
		seen[s.Variant+"/"+s.Workload]++
		if s.Seconds <= 0 {
			t.Errorf("sample %s/%s measured %v s", s.Variant, s.Workload, s.Seconds)
		}
		for _, md := range bench.Metrics(s.Workload) {
			if _, ok := s.Metrics[md.Key]; !ok {
				t.Errorf("sample %s/%s has no %s", s.Variant, s.Workload, md.Key)
			}
		}
	}
	for _, v := range variants {
		for _, w := range r.Config.Workloads {
			if seen[v+"/"+w] != r.Config.Rounds*perCell {
				t.Errorf("%s/%s measured %d times, want %d", v, w, seen[v+"/"+w], r.Config.Rounds*perCell)
			}
		}
	}
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	for _, w := range r.Config.Workloads {
		for _, md := range bench.Metrics(w) {
			off, hasOff := r.Figure(w, md.Key, bench.VariantOff)
			lo, hasLo := r.Figure(w, md.Key, bench.VariantLoopback)
			for _, v := range variants {
				f, ok := r.Figure(w, md.Key, v)
				if !ok {
					t.Errorf("no figure %s %s %s", w, md.Key, v)
					continue
				}
				if f.N != r.Config.Rounds || f.Min > f.Median || f.Median > f.Max {
					t.Errorf("%s %s %s: n %d, min %v median %v max %v", w, md.Key, v, f.N, f.Min, f.Median, f.Max)
				}
				if !(f.Median > 0) && !md.MayBeZero || f.Median < 0 || math.IsNaN(f.Median) || math.IsInf(f.Median, 0) {
					t.Errorf("%s %s %s: median %v is not a positive number", w, md.Key, v, f.Median)
				}
				for _, c := range []struct {
					name  string
					has   bool
					base  bench.Figure
					ratio *float64
				}{{"off", hasOff, off, f.VsOff}, {"loopback", hasLo, lo, f.VsLoopback}} {
					switch {
					case md.MayBeZero && c.ratio != nil:
						t.Errorf("%s %s %s: a ratio to %s for a count of trouble", w, md.Key, v, c.name)
					case !md.MayBeZero && c.has && c.base.Median != 0 && c.ratio == nil:
						t.Errorf("%s %s %s: no ratio to %s", w, md.Key, v, c.name)
					case c.ratio != nil && !close(*c.ratio, f.Median/c.base.Median):
						t.Errorf("%s %s %s: ratio to %s %v, but the medians give %v", w, md.Key, v, c.name, *c.ratio, f.Median/c.base.Median)
					}
				}
			}
		}
	}
	e := r.Env
	if e.Kernel == "" || e.CPUs <= 0 || e.MTU <= 0 || e.Offloads == "" || e.BridgeNetfilter == "" || e.Pinning == "" {
		t.Errorf("incomplete header: %+v", e)
	}
	if slices.Contains(variants, bench.VariantFastpath) && e.AttachMode != "tcx" && e.AttachMode != "tc" {
		t.Errorf("attach mode %q, want tcx or tc", e.AttachMode)
	}
}

// runBench runs a tiny bench with -o json and --out, checks the saved file
// is the printed result, and returns it.
func runBench(t *testing.T, e *env, extra ...string) *bench.Result {
	t.Helper()
	out := t.TempDir()
	args := append(slices.Clone(tinyBench), append(extra, "-o", "json", "--out", out, "--plot", filepath.Join(out, "b.png"))...)
	stdout := e.ok(args...)
	var r bench.Result
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("bench -o json printed no result: %v\n%s", err, stdout)
	}
	files, _ := filepath.Glob(filepath.Join(out, "bench-*.json"))
	if len(files) != 1 {
		t.Fatalf("--out holds %v, want one bench-*.json", files)
	}
	saved, err := bench.ReadResult(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !saved.Started.Equal(r.Started) || len(saved.Samples) != len(r.Samples) {
		t.Errorf("the saved result is not the printed one")
	}
	for _, png := range []string{filepath.Join(out, "b.png"), strings.TrimSuffix(files[0], ".json") + ".png"} {
		if st, err := os.Stat(png); err != nil || st.Size() < 1000 {
			t.Errorf("plot %s: %v", png, err)
		}
	}
	// compare of a run with itself: every change is zero.
	cmp := e.ok("bench", "compare", files[0], files[0])
	if !strings.Contains(cmp, "+0.0%") || strings.Contains(cmp, "better") || strings.Contains(cmp, "worse") {
		t.Errorf("compare with itself:\n%s", cmp)
	}
	return &r
}

func TestBenchNetnsOnly(t *testing.T) {
	e := newEnv(t)
	before := nswLinks(t)
	r := runBench(t, e, "--netns-only")
	checkBenchResult(t, r, []string{"off", "observe", "fastpath", "loopback"})
	if !strings.Contains(strings.Join(r.Notes, "\n"), "variant docker skipped") {
		t.Errorf("no note that docker was skipped: %v", r.Notes)
	}
	if r.Env.Subjects != "netns" {
		t.Errorf("subjects %q", r.Env.Subjects)
	}
	if left := benchLeftovers(t, e, nil, before); len(left) > 0 {
		t.Errorf("the bench left %v", left)
	}
}

func TestBenchDocker(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	testenv.Image(t)
	before := nswLinks(t)
	r := runBench(t, e)
	checkBenchResult(t, r, bench.Variants)
	if !strings.HasPrefix(r.Env.Subjects, "containers") {
		t.Errorf("subjects %q", r.Env.Subjects)
	}
	if left := benchLeftovers(t, e, cli, before); len(left) > 0 {
		t.Errorf("the bench left %v", left)
	}
}

// TestBenchInterrupt sends SIGINT in the middle of the first round and
// checks the bench exits non-zero, says so, and leaves nothing behind.
func TestBenchInterrupt(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	testenv.Image(t)
	before := nswLinks(t)
	c := e.cmd("bench", "--rounds", "3", "--duration", "1s")
	stderr, err := c.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var log []string
	for sc.Scan() {
		log = append(log, sc.Text())
		if strings.Contains(sc.Text(), "round 1/3") {
			time.Sleep(1500 * time.Millisecond) // inside a cell
			c.Process.Signal(syscall.SIGINT)
			break
		}
	}
	for sc.Scan() {
		log = append(log, sc.Text())
	}
	err = c.Wait()
	if ee, ok := err.(interface{ ExitCode() int }); !ok || ee.ExitCode() != 1 {
		t.Errorf("interrupted bench: %v, want exit 1\n%s", err, strings.Join(log, "\n"))
	}
	if !strings.Contains(strings.Join(log, "\n"), "interrupted") {
		t.Errorf("no word of the interruption:\n%s", strings.Join(log, "\n"))
	}
	if left := benchLeftovers(t, e, cli, before); len(left) > 0 {
		t.Errorf("the interrupted bench left %v", left)
	}
}

// TestBenchBadInput checks that bad input is refused before anything is
// created.
func TestBenchBadInput(t *testing.T) {
	e := newEnv(t)
	before := nswLinks(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--variants", "off,turbo"}, `unknown variant "turbo": pick from docker,off,observe,fastpath,loopback`},
		{[]string{"--workloads", "tcp_rrr"}, `unknown workload "tcp_rrr"`},
		{[]string{"--duration", "10ms"}, "--duration 10ms is too short to measure: give at least 200ms"},
		{[]string{"--rounds", "0"}, "--rounds 0 is out of range"},
		{[]string{"--duration", "0"}, "--duration 0s is too short to measure"},
		{[]string{"--bridge", "nswnobridge"}, `bridge "nswnobridge" does not exist`},
		{[]string{"--image", "nswire-no-such-image:latest"}, "image nswire-no-such-image:latest"},
		{[]string{"--plot", "x.gif"}, "--plot x.gif: give a file name ending in .png"},
		{[]string{"-o", "yaml"}, `-o "yaml" is not a known output format`},
	} {
		if tc.args[0] == "--image" {
			testenv.Docker(t)
		}
		e.fails(append([]string{"bench"}, tc.args...), tc.want)
		if left := benchLeftovers(t, e, nil, before); len(left) > 0 {
			t.Fatalf("bench %v left %v", tc.args, left)
		}
	}
	e.fails([]string{"bench", "compare", "/nonexistent/a.json", "/nonexistent/b.json"}, "read bench result")
	// Not root: the missing capabilities are named.
	c := e.cmd("bench", "--netns-only")
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := c.CombinedOutput()
	if !strings.Contains(string(out), "missing capabilities: [CAP_NET_ADMIN") {
		t.Errorf("unprivileged bench said %q", out)
	}
}
