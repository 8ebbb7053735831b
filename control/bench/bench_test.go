package bench

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1}, 2},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{9, 9, 1, 9, 1}, 9},
	} {
		in := slices.Clone(c.in)
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("Median changed its input: %v became %v", in, c.in)
		}
	}
}

func TestRoundOrder(t *testing.T) {
	v := []string{"A", "B", "C", "D", "E"}
	want := [][]string{
		{"A", "B", "C", "D", "E"},
		{"B", "C", "D", "E", "A"},
		{"C", "D", "E", "A", "B"},
		{"D", "E", "A", "B", "C"},
		{"E", "A", "B", "C", "D"},
		{"A", "B", "C", "D", "E"},
	}
	for r, w := range want {
		if got := RoundOrder(v, r); !slices.Equal(got, w) {
			t.Errorf("round %d: %v, want %v", r, got, w)
		}
	}
	// Over len(v) rounds every variant takes every position once.
	for pos := range v {
		seen := map[string]bool{}
		for r := range v {
			seen[RoundOrder(v, r)[pos]] = true
		}
		if len(seen) != len(v) {
			t.Errorf("position %d holds only %v over %d rounds", pos, seen, len(v))
		}
	}
	if RoundOrder(nil, 3) != nil {
		t.Error("RoundOrder(nil) is not nil")
	}
}

func TestBenchConfigValidate(t *testing.T) {
	ok := func() Config { c := Config{}; c.Defaults(); return c }
	base := ok()
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if base.Rounds != 5 || base.Duration != 3*time.Second || len(base.Variants) != 5 || len(base.Workloads) != 4 ||
		base.Family != 4 || base.Bridge != "docker0" || base.FamilyName() != "IPv4" {
		t.Errorf("defaults: %+v", base)
	}
	for _, c := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"unknown variant", func(c *Config) { c.Variants = []string{"off", "turbo"} }, `unknown variant "turbo"`},
		{"twice", func(c *Config) { c.Variants = []string{"off", "off"} }, `variant "off" is given twice`},
		{"unknown workload", func(c *Config) { c.Workloads = []string{"tcp_rrr"} }, `unknown workload "tcp_rrr"`},
		{"short", func(c *Config) { c.Duration = 50 * time.Millisecond }, "too short to measure"},
		{"rounds", func(c *Config) { c.Rounds = -1 }, "--rounds -1"},
		{"warmup", func(c *Config) { c.Warmup = -time.Second }, "--warmup"},
		{"bridge", func(c *Config) { c.Bridge = "a/b" }, "--bridge"},
		{"family", func(c *Config) { c.Family = 5 }, "IP family 5 is unknown: give 4 or 6 (--ipv6)"},
		{"family 46", func(c *Config) { c.Family = 46 }, "IP family 46 is unknown"},
		{"network name", func(c *Config) { c.Network, c.Bridge = "bad name!", "" }, `--network: network name "bad name!" has ' ' at byte 3`},
		{"network netns-only", func(c *Config) { c.Network, c.Bridge, c.NetnsOnly = "v6bench", "", true },
			"--network v6bench needs Docker, --netns-only does without it"},
		{"no bridge", func(c *Config) { c.Bridge = "" }, "--bridge"},
	} {
		cfg := ok()
		c.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	c := Config{Iperf3: true}
	c.Defaults()
	if !slices.Contains(c.Workloads, WorkloadIperf3) {
		t.Errorf("--iperf3 did not add the iperf3 workload: %v", c.Workloads)
	}
	// Good IPv6 configurations: on a network (no bridge: the network's),
	// and on a bridge given by name.
	for _, c := range []Config{{Family: 6, Network: "v6bench"}, {Family: 6, Bridge: "br-v6"}, {Family: 6, NetnsOnly: true}} {
		c.Defaults()
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
		if c.FamilyName() != "IPv6" || (c.Network != "") == (c.Bridge != "") {
			t.Errorf("%+v: family %s, network %q, bridge %q", c, c.FamilyName(), c.Network, c.Bridge)
		}
	}
}

// fakeResult builds a result with rate values per variant per round.
func fakeResult(rates map[string][]float64) *Result {
	r := &Result{Version: ResultVersion, Config: Config{Workloads: []string{WorkloadTCPCRR}}}
	for _, v := range Variants {
		if _, ok := rates[v]; ok {
			r.Variants = append(r.Variants, v)
		}
	}
	for _, v := range r.Variants {
		for i, x := range rates[v] {
			r.Samples = append(r.Samples, Sample{Round: i + 1, Variant: v, Workload: WorkloadTCPCRR,
				Metrics: map[string]float64{"rate": x, "cpu": 100 / x, "resets": 0}})
		}
	}
	r.Summarize()
	return r
}

func TestSummarizeRatios(t *testing.T) {
	r := fakeResult(map[string][]float64{
		VariantOff:      {100, 90, 110},
		VariantFastpath: {130, 140, 120},
		VariantLoopback: {200, 190, 210, 220},
	})
	f, ok := r.Figure(WorkloadTCPCRR, "rate", VariantFastpath)
	if !ok {
		t.Fatal("no fastpath rate")
	}
	if f.Median != 130 || f.Min != 120 || f.Max != 140 || f.N != 3 {
		t.Errorf("fastpath: %+v", f)
	}
	if f.VsOff == nil || math.Abs(*f.VsOff-1.3) > 1e-12 {
		t.Errorf("fastpath vs off = %v, want 1.3", f.VsOff)
	}
	if f.VsLoopback == nil || math.Abs(*f.VsLoopback-130/205.0) > 1e-12 {
		t.Errorf("fastpath vs loopback = %v, want %v", f.VsLoopback, 130/205.0)
	}
	if math.Abs(f.SpreadPct()-100*20/130.0) > 1e-9 {
		t.Errorf("spread %v", f.SpreadPct())
	}
	off, _ := r.Figure(WorkloadTCPCRR, "rate", VariantOff)
	if *off.VsOff != 1 {
		t.Errorf("off vs off = %v", *off.VsOff)
	}
	// A zero median (resets) has no ratio rather than an infinite one.
	z, ok := r.Figure(WorkloadTCPCRR, "resets", VariantFastpath)
	if !ok || z.VsOff != nil {
		t.Errorf("resets: %+v", z)
	}
	// Every figure of every variant is there, in the configured order.
	var got []string
	for _, f := range r.Summary {
		if f.Metric == "rate" {
			got = append(got, f.Variant)
		}
	}
	if !slices.Equal(got, r.Variants) {
		t.Errorf("rate rows %v, want %v", got, r.Variants)
	}
	// Without off, no ratio to off.
	r2 := fakeResult(map[string][]float64{VariantFastpath: {1}, VariantLoopback: {2}})
	if f, _ := r2.Figure(WorkloadTCPCRR, "rate", VariantFastpath); f.VsOff != nil || *f.VsLoopback != 0.5 {
		t.Errorf("without off: %+v", f)
	}
}

func TestCompareBench(t *testing.T) {
	a := fakeResult(map[string][]float64{VariantOff: {100}, VariantFastpath: {150}})
	b := fakeResult(map[string][]float64{VariantOff: {100}, VariantFastpath: {120}, VariantLoopback: {300}})
	rows, err := Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	find := func(metric, unit, v string) Change {
		for _, r := range rows {
			if r.Metric == metric && r.Unit == unit && r.Variant == v {
				return r
			}
		}
		t.Fatalf("no row %s %s %s in %+v", metric, unit, v, rows)
		return Change{}
	}
	fp := find("rate", "conn/s", VariantFastpath)
	if fp.A != 150 || fp.B != 120 || math.Abs(fp.ChangePct-(-20)) > 1e-9 || fp.Better == nil || *fp.Better {
		t.Errorf("fastpath rate: %+v", fp)
	}
	cpu := find("cpu", "cpu-µs/conn", VariantFastpath) // lower is better: a rise is worse
	if cpu.Better == nil || *cpu.Better {
		t.Errorf("fastpath cpu: %+v", cpu)
	}
	if off := find("rate", "conn/s", VariantOff); off.ChangePct != 0 || off.Better != nil {
		t.Errorf("off: %+v", off)
	}
	ratio := find("rate", "×off", VariantFastpath)
	if ratio.A != 1.5 || ratio.B != 1.2 {
		t.Errorf("ratio row: %+v", ratio)
	}
	for _, r := range rows {
		if r.Variant == VariantLoopback {
			t.Errorf("loopback is only in B but compared: %+v", r)
		}
	}
	if _, err := Compare(a, fakeResult(map[string][]float64{VariantDocker: {1}})); err == nil {
		t.Error("no common figure: no error")
	}
}

func TestReadBenchResult(t *testing.T) {
	dir := t.TempDir()
	a := fakeResult(map[string][]float64{VariantOff: {100}})
	data, _ := json.Marshal(a)
	good := filepath.Join(dir, "a.json")
	os.WriteFile(good, data, 0o644)
	if r, err := ReadResult(good); err != nil || len(r.Summary) != len(a.Summary) || r.Config.Family != 4 {
		t.Errorf("read back: %v (a file without a family is IPv4)", err)
	}
	a.Config.Family = 6
	data, _ = json.Marshal(a)
	os.WriteFile(good, data, 0o644)
	if r, err := ReadResult(good); err != nil || r.Config.Family != 6 {
		t.Errorf("read back IPv6: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"version": 7}`), 0o644)
	if _, err := ReadResult(bad); err == nil || !strings.Contains(err.Error(), "version 7") {
		t.Errorf("wrong version: %v", err)
	}
	os.WriteFile(bad, []byte(`not json`), 0o644)
	if _, err := ReadResult(bad); err == nil || !strings.Contains(err.Error(), "not a bench result") {
		t.Errorf("not json: %v", err)
	}
	if _, err := ReadResult(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestPlotBench(t *testing.T) {
	r := fakeResult(map[string][]float64{VariantOff: {100, 90}, VariantFastpath: {130, 120}, VariantLoopback: {200, 180}})
	r.Config.Rounds, r.Config.Duration = 2, time.Second
	f := filepath.Join(t.TempDir(), "b.png")
	if err := Plot(r, f); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(f)
	if err != nil || len(data) < 1000 || string(data[1:4]) != "PNG" {
		t.Errorf("plot file: %d bytes, %v", len(data), err)
	}
}

func TestFormatNumber(t *testing.T) {
	for in, want := range map[float64]string{123456.7: "123457", 123.45: "123.5", 12.345: "12.35", 1.2345: "1.234", 0: "0.000"} {
		if got := FormatNumber(in); got != want {
			t.Errorf("FormatNumber(%v) = %q, want %q", in, got, want)
		}
	}
}

// TestSummarizeSlices: a round's value is the mean of its slices, and the
// paired ratio is the median of per-round ratios.
func TestSummarizeSlices(t *testing.T) {
	r := &Result{Version: ResultVersion, Config: Config{Workloads: []string{WorkloadTCPCRR}}, Variants: []string{VariantOff, VariantFastpath}}
	add := func(v string, round, slice int, rate float64) {
		r.Samples = append(r.Samples, Sample{Round: round, Slice: slice, Variant: v, Workload: WorkloadTCPCRR,
			Metrics: map[string]float64{"rate": rate, "cpu": 1, "resets": 0}})
	}
	// off: rounds 100 (90,110), 200 (200,200), 150 (140,160)
	add(VariantOff, 1, 1, 90)
	add(VariantOff, 1, 2, 110)
	add(VariantOff, 2, 1, 200)
	add(VariantOff, 2, 2, 200)
	add(VariantOff, 3, 1, 140)
	add(VariantOff, 3, 2, 160)
	// fastpath: rounds 130, 220, 180 → per-round ratios 1.3, 1.1, 1.2
	add(VariantFastpath, 1, 1, 120)
	add(VariantFastpath, 1, 2, 140)
	add(VariantFastpath, 2, 1, 220)
	add(VariantFastpath, 2, 2, 220)
	add(VariantFastpath, 3, 1, 170)
	add(VariantFastpath, 3, 2, 190)
	r.Summarize()
	off, _ := r.Figure(WorkloadTCPCRR, "rate", VariantOff)
	fp, _ := r.Figure(WorkloadTCPCRR, "rate", VariantFastpath)
	if off.N != 3 || off.Median != 150 || off.Min != 100 || off.Max != 200 {
		t.Fatalf("off = %+v, want n 3 median 150 min 100 max 200", off)
	}
	if fp.Median != 180 || *fp.VsOff != 1.2 {
		t.Fatalf("fastpath median %v ×off %v, want 180 and 1.2", fp.Median, *fp.VsOff)
	}
	if fp.PairedVsOff == nil || math.Abs(*fp.PairedVsOff-1.2) > 1e-12 {
		t.Fatalf("paired ×off = %v, want 1.2 (median of 1.3, 1.1, 1.2)", fp.PairedVsOff)
	}
}

func TestSliceCount(t *testing.T) {
	for _, tc := range []struct {
		d      time.Duration
		slices int
		want   int
	}{{3 * time.Second, 5, 5}, {400 * time.Millisecond, 5, 2}, {200 * time.Millisecond, 5, 1}, {time.Second, 1, 1}} {
		c := Config{Duration: tc.d, Slices: tc.slices}
		if got := c.SliceCount(); got != tc.want {
			t.Errorf("SliceCount(%v, %d) = %d, want %d", tc.d, tc.slices, got, tc.want)
		}
	}
}
