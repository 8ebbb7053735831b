//go:build linux

package test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkStart measures process start: `nswire version` against a
// hello-world Go binary built the same way (CGO_ENABLED=0), interleaved, 50
// runs each, medians; then lists the packages whose init functions cost the
// most in `GODEBUG=inittrace=1 nswire version`. Bar (issue 14): nswire
// version ≤ 1.5× hello world. Needs no privilege. Run with `make bench-start`.
func BenchmarkStart(b *testing.B) {
	const runs = 50
	dir := b.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	hello := filepath.Join(dir, "hello")
	build := exec.Command("go", "build", "-o", hello, src)
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build hello: %v\n%s", err, out)
	}
	run := func(name string, args ...string) time.Duration {
		t0 := time.Now()
		out, err := exec.Command(name, args...).CombinedOutput()
		d := time.Since(t0)
		if err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return d
	}
	run(nswireBin, "version") // warm the page cache
	run(hello)
	var tn, th []time.Duration
	for i := range runs {
		if i%2 == 0 {
			tn, th = append(tn, run(nswireBin, "version")), append(th, run(hello))
		} else {
			th, tn = append(th, run(hello)), append(tn, run(nswireBin, "version"))
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	ratio := float64(median(tn)) / float64(median(th))
	b.ReportMetric(ms(median(tn)), "ms/nswire-version")
	b.ReportMetric(ms(median(th)), "ms/hello")
	b.ReportMetric(ratio, "nswire/hello")

	// Init costs: per package, the median over several traced runs.
	const traces = 9
	clocks, bytesOf := map[string][]float64{}, map[string]int{}
	for range traces {
		c := exec.Command(nswireBin, "version")
		c.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		var stderr bytes.Buffer
		c.Stderr = &stderr
		if err := c.Run(); err != nil {
			b.Fatalf("nswire version: %v\n%s", err, stderr.String())
		}
		run, err := parseInitTrace(stderr.String())
		if err != nil {
			b.Fatal(err)
		}
		for _, in := range run {
			clocks[in.pkg] = append(clocks[in.pkg], in.clockMS)
			bytesOf[in.pkg] = in.bytes
		}
	}
	var inits []initCost
	for pkg, cs := range clocks {
		slices.Sort(cs)
		inits = append(inits, initCost{pkg: pkg, clockMS: cs[len(cs)/2], bytes: bytesOf[pkg]})
	}
	var total float64
	for _, in := range inits {
		total += in.clockMS
	}
	slices.SortFunc(inits, func(x, y initCost) int {
		switch {
		case x.clockMS > y.clockMS:
			return -1
		case x.clockMS < y.clockMS:
			return 1
		}
		return strings.Compare(x.pkg, y.pkg)
	})
	var s strings.Builder
	fmt.Fprintf(&s, "process start, %d interleaved runs each: nswire version median %.2fms (min %.2fms), hello world median %.2fms (min %.2fms), ratio %.2f (bar ≤ 1.5)\n",
		runs, ms(median(tn)), ms(slices.Min(tn)), ms(median(th)), ms(slices.Min(th)), ratio)
	fmt.Fprintf(&s, "GODEBUG=inittrace=1 nswire version, per-package medians of %d runs: %d packages initialised, %.2fms init clock in all; the top 15:\n", traces, len(inits), total)
	for _, in := range inits[:min(15, len(inits))] {
		fmt.Fprintf(&s, "  %7.3fms %9d bytes  %s\n", in.clockMS, in.bytes, in.pkg)
	}
	b.Log("\n" + s.String())
}

type initCost struct {
	pkg     string
	clockMS float64
	bytes   int
}

// parseInitTrace reads the runtime's inittrace lines:
// "init <pkg> @<start> ms, <clock> ms clock, <bytes> bytes, <allocs> allocs".
func parseInitTrace(s string) ([]initCost, error) {
	var out []initCost
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 9 || f[0] != "init" || f[6] != "clock," {
			continue
		}
		clock, err := strconv.ParseFloat(f[4], 64)
		if err != nil {
			return nil, fmt.Errorf("inittrace line %q: %w", sc.Text(), err)
		}
		bytes, _ := strconv.Atoi(f[7])
		out = append(out, initCost{pkg: f[1], clockMS: clock, bytes: bytes})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no inittrace lines in %q", s)
	}
	return out, nil
}

func TestParseInitTrace(t *testing.T) {
	in := "init internal/bytealg @0.022 ms, 0 ms clock, 0 bytes, 0 allocs\n" +
		"some other line\n" +
		"init github.com/distribution/reference @4.1 ms, 2.800 ms clock, 414456 bytes, 3890 allocs\n"
	got, err := parseInitTrace(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []initCost{{"internal/bytealg", 0, 0}, {"github.com/distribution/reference", 2.8, 414456}}
	if !slices.Equal(got, want) {
		t.Fatalf("parseInitTrace = %+v, want %+v", got, want)
	}
	if _, err := parseInitTrace("hello\n"); err == nil {
		t.Fatal("parseInitTrace of no trace lines: want an error")
	}
}
