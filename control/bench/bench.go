package bench

// The bench's data model and arithmetic: configuration and its validation,
// the interleaved order of a round, medians, spreads and ratios, the result
// file, and the comparison of two result files. Nothing here touches the
// machine; bench_*_linux.go runs the experiment.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/netops"
)

// Bench variants: how the two ends of a workload are connected.
const (
	VariantDocker   = "docker"   // a pair wired by Docker's own bridge driver
	VariantOff      = "off"      // nswire wiring, no program
	VariantObserve  = "observe"  // nswire wiring, counting programs
	VariantFastpath = "fastpath" // nswire wiring, counting + redirect to the peer
	VariantLoopback = "loopback" // both ends in one namespace over lo: the limit
)

// Variants lists the variants in their default order.
var Variants = []string{VariantDocker, VariantOff, VariantObserve, VariantFastpath, VariantLoopback}

// Bench workloads.
const (
	WorkloadTCPRR     = "tcp_rr"     // 1-byte ping-pong on one connection
	WorkloadTCPCRR    = "tcp_crr"    // connect, 1-byte request/response, close
	WorkloadTCPStream = "tcp_stream" // one connection, 128 KiB writes
	WorkloadUDPRate   = "udp_rate"   // 64-byte datagrams as fast as possible
	WorkloadIperf3    = "iperf3"     // iperf3 TCP throughput, a cross-check
)

// Workloads lists the default workloads; WorkloadIperf3 is added by
// Config.Iperf3.
var Workloads = []string{WorkloadTCPRR, WorkloadTCPCRR, WorkloadTCPStream, WorkloadUDPRate}

// MinDuration is the shortest measuring time per cell that still gives
// a rate worth reporting.
const MinDuration = 200 * time.Millisecond

// MetricDef describes one figure a workload produces.
type MetricDef struct {
	Key          string `json:"key"`
	Unit         string `json:"unit"`
	HigherBetter bool   `json:"higherIsBetter"`
	MayBeZero    bool   `json:"mayBeZero,omitempty"` // e.g. loss; such figures get no ratios
}

// benchMetrics lists each workload's figures; the first is its headline.
var benchMetrics = map[string][]MetricDef{
	WorkloadTCPRR: {
		{Key: "rate", Unit: "trans/s", HigherBetter: true},
		{Key: "p50", Unit: "µs"},
		{Key: "p99", Unit: "µs"},
		{Key: "cpu", Unit: "cpu-µs/trans"},
	},
	WorkloadTCPCRR: {
		{Key: "rate", Unit: "conn/s", HigherBetter: true},
		{Key: "cpu", Unit: "cpu-µs/conn"},
		{Key: "resets", Unit: "retried", MayBeZero: true},
	},
	WorkloadTCPStream: {
		{Key: "throughput", Unit: "Gbit/s", HigherBetter: true},
		{Key: "cpu", Unit: "cpu-ms/GB"},
	},
	WorkloadUDPRate: {
		{Key: "rate", Unit: "pkt/s rx", HigherBetter: true},
		{Key: "loss", Unit: "%", MayBeZero: true},
		{Key: "cpu", Unit: "cpu-ns/pkt"},
	},
	WorkloadIperf3: {
		{Key: "throughput", Unit: "Gbit/s", HigherBetter: true},
	},
}

// Metrics returns the figures of workload w, headline first.
func Metrics(w string) []MetricDef { return benchMetrics[w] }

// Config is what a bench run measures and how.
type Config struct {
	Variants  []string      `json:"variants"`
	Workloads []string      `json:"workloads"`
	Rounds    int           `json:"rounds"`
	Duration  time.Duration `json:"duration"` // measured time per cell
	Warmup    time.Duration `json:"warmup"`   // unmeasured time before it
	NetnsOnly bool          `json:"netnsOnly"`
	Bridge    string        `json:"bridge"`
	// Network is the Docker network the bench runs on (--network): its
	// bridge is Bridge, and the docker variant's containers join it.
	Network string `json:"network,omitempty"`
	// Family is the IP version every workload runs over: 4 or 6 (--ipv6).
	// Result files from before it existed have none: they are IPv4.
	Family int    `json:"family"`
	Image  string `json:"image,omitempty"`
	Iperf3 bool   `json:"iperf3,omitempty"`
	NoPin  bool   `json:"noPin,omitempty"`
	// Slices splits each cell into this many slices, run interleaved with
	// the other variants' slices (A B C D E A B C D E … within a round), so
	// that the machine's slow drift hits every variant alike. A round's
	// value is the mean over its slices.
	Slices int `json:"slices"`
}

// Bench defaults.
const (
	DefaultRounds   = 5
	DefaultDuration = 3 * time.Second
	DefaultWarmup   = 500 * time.Millisecond
	DefaultSlices   = 5
	DefaultImage    = "nswire-busybox:latest"
)

// Defaults fills empty fields.
func (c *Config) Defaults() {
	if len(c.Variants) == 0 {
		c.Variants = slices.Clone(Variants)
	}
	if len(c.Workloads) == 0 {
		c.Workloads = slices.Clone(Workloads)
	}
	if c.Iperf3 && !slices.Contains(c.Workloads, WorkloadIperf3) {
		c.Workloads = append(c.Workloads, WorkloadIperf3)
	}
	if c.Rounds == 0 {
		c.Rounds = DefaultRounds
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Slices == 0 {
		c.Slices = DefaultSlices
	}
	if c.Bridge == "" && c.Network == "" {
		c.Bridge = "docker0"
	}
	if c.Family == 0 {
		c.Family = 4
	}
	if c.Image == "" {
		c.Image = DefaultImage
	}
}

// Validate checks the configuration without touching the machine.
func (c *Config) Validate() error {
	if err := checkNames("variant", c.Variants, Variants); err != nil {
		return err
	}
	all := append(slices.Clone(Workloads), WorkloadIperf3)
	if err := checkNames("workload", c.Workloads, all); err != nil {
		return err
	}
	switch {
	case c.Rounds < 1 || c.Rounds > 1000:
		return fmt.Errorf("--rounds %d is out of range: give 1 to 1000", c.Rounds)
	case c.Duration < MinDuration:
		return fmt.Errorf("--duration %s is too short to measure: give at least %s (default %s)", c.Duration, MinDuration, DefaultDuration)
	case c.Duration > time.Hour:
		return fmt.Errorf("--duration %s is over an hour per cell: give less", c.Duration)
	case c.Slices < 1 || c.Slices > 100:
		return fmt.Errorf("--slices %d is out of range: give 1 to 100", c.Slices)
	case c.Warmup < 0 || c.Warmup > time.Minute:
		return fmt.Errorf("--warmup %s is out of range: give 0 to 1m", c.Warmup)
	}
	if c.Family != 4 && c.Family != 6 {
		return fmt.Errorf("IP family %d is unknown: give 4 or 6 (--ipv6)", c.Family)
	}
	if c.Network != "" {
		if err := control.ValidateContainerRef(c.Network); err != nil { // Docker names networks as it names containers
			return fmt.Errorf("--network: %s", strings.Replace(err.Error(), "container", "network", 1))
		}
		if c.NetnsOnly {
			return fmt.Errorf("--network %s needs Docker, --netns-only does without it: give --bridge with --netns-only", c.Network)
		}
	}
	if c.Network == "" || c.Bridge != "" {
		if err := netops.ValidateIfName(c.Bridge); err != nil {
			return fmt.Errorf("--bridge: %w", err)
		}
	}
	return nil
}

// FamilyName is "IPv4" or "IPv6" for Family (0, in older result files, is
// IPv4).
func (c *Config) FamilyName() string {
	if c.Family == 6 {
		return "IPv6"
	}
	return "IPv4"
}

func checkNames(what string, got, known []string) error {
	if len(got) == 0 {
		return fmt.Errorf("no %s given: pick from %s", what, strings.Join(known, ","))
	}
	seen := map[string]bool{}
	for _, g := range got {
		if !slices.Contains(known, g) {
			return fmt.Errorf("unknown %s %q: pick from %s", what, g, strings.Join(known, ","))
		}
		if seen[g] {
			return fmt.Errorf("%s %q is given twice", what, g)
		}
		seen[g] = true
	}
	return nil
}

// SliceCount is the number of slices a cell is really cut into: Slices, but
// never so many that a slice is shorter than MinDuration.
func (c *Config) SliceCount() int {
	n := min(c.Slices, int(c.Duration/MinDuration))
	return max(n, 1)
}

// SliceWarmup is the unmeasured time before each slice: the cell's warm-up
// spread over its slices, at least 100 ms.
func (c *Config) SliceWarmup() time.Duration {
	return max(c.Warmup/time.Duration(c.SliceCount()), 100*time.Millisecond)
}

// RoundOrder returns the order of the variants in round r (0-based): the
// list rotated left by r, so that A B C D E is followed by B C D E A and
// machine noise is spread over every variant.
func RoundOrder(variants []string, r int) []string {
	n := len(variants)
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for i := range n {
		out = append(out, variants[(i+r)%n])
	}
	return out
}

// CPUUsage is the CPU time spent during one measured cell.
type CPUUsage struct {
	UserNs    int64 `json:"userNs"`    // this process, user mode
	SysNs     int64 `json:"sysNs"`     // this process, kernel mode
	SoftirqNs int64 `json:"softirqNs"` // every CPU's softirq time (/proc/stat)
	CgroupNs  int64 `json:"cgroupNs"`  // this process's cgroup (cpu.stat usage_usec), -1 when unreadable
}

// TotalNs is the CPU time charged to the work: the process's own time plus
// the softirq time, where the kernel's receive path runs.
func (c CPUUsage) TotalNs() int64 { return c.UserNs + c.SysNs + c.SoftirqNs }

// Sample is one measured cell: one variant running one workload in one
// round.
type Sample struct {
	Round    int                `json:"round"` // 1-based
	Slice    int                `json:"slice"` // 1-based, within the round's cell
	Seq      int                `json:"seq"`   // position in the whole run, 1-based
	Variant  string             `json:"variant"`
	Workload string             `json:"workload"`
	Start    time.Time          `json:"start"`
	Seconds  float64            `json:"seconds"` // measured time
	Metrics  map[string]float64 `json:"metrics"`
	CPU      CPUUsage           `json:"cpu"`
}

// Figure is the summary of one figure of one variant over all rounds.
// The ratios are Median divided by the median of the same figure of `off`
// and of `loopback`; they are absent when that variant was not run, when
// that median is zero, and for counts of trouble (loss, resets).
type Figure struct {
	Workload     string   `json:"workload"`
	Metric       string   `json:"metric"`
	Unit         string   `json:"unit"`
	HigherBetter bool     `json:"higherIsBetter"`
	Variant      string   `json:"variant"`
	N            int      `json:"n"`
	Median       float64  `json:"median"`
	Min          float64  `json:"min"`
	Max          float64  `json:"max"`
	VsOff        *float64 `json:"vsOff,omitempty"`
	VsLoopback   *float64 `json:"vsLoopback,omitempty"`
	// PairedVsOff is the median over rounds of this variant's value divided
	// by off's value in the same round (measured seconds apart): drift of
	// the machine between rounds cancels out of it.
	PairedVsOff *float64 `json:"pairedVsOff,omitempty"`
}

// SpreadPct is the spread (max−min) as a percentage of the median.
func (f Figure) SpreadPct() float64 {
	if f.Median == 0 {
		return 0
	}
	return 100 * (f.Max - f.Min) / math.Abs(f.Median)
}

// Env describes the machine, because it changes the result.
type Env struct {
	Kernel          string `json:"kernel"`
	CPUs            int    `json:"cpus"`
	CPUModel        string `json:"cpuModel,omitempty"`
	GoVersion       string `json:"goVersion"`
	Subjects        string `json:"subjects"` // "containers" or "netns"
	Bridge          string `json:"bridge"`
	MTU             int    `json:"mtu"`
	Offloads        string `json:"offloads"`
	AttachMode      string `json:"attachMode"`      // tcx or tc, for observe and fastpath
	BridgeNetfilter string `json:"bridgeNetfilter"` // br_netfilter state
	Pinning         string `json:"pinning"`
}

// Traffic is, for one variant, the addresses its workloads ran between and
// what the kernel counted of the run (from the end of the setup to the end
// of the last cell): evidence of the IP family the traffic really used.
type Traffic struct {
	Variant string `json:"variant"`
	Client  string `json:"client"` // the client's address
	Server  string `json:"server"` // the address the server listened on
	// IP packets the server's network namespace received (/proc/net/snmp
	// Ip InReceives, /proc/net/snmp6 Ip6InReceives); for loopback, both
	// ends'. Anything else in that namespace counts too.
	ServerRxIPv4 uint64 `json:"serverRxIPv4"`
	ServerRxIPv6 uint64 `json:"serverRxIPv6"`
	// Packets nswire's programs counted on the server's endpoint, both
	// ways, by protocol ("ipv6/tcp", "ipv4/udp", …; observe and fastpath
	// only): since the attach.
	ServerCounted map[string]uint64 `json:"serverCounted,omitempty"`
	// Packets the server sent past the bridge to the client's eth0
	// (fastpath only): 0 means the fast path did not take them.
	ServerFastpathed uint64 `json:"serverFastpathed,omitempty"`
}

// ResultVersion is the version of the result file format.
const ResultVersion = 1

// Result is a whole run: its configuration, the machine, every raw
// sample and the summary.
type Result struct {
	Version  int       `json:"version"`
	Tool     string    `json:"tool"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Config   Config    `json:"config"`
	Env      Env       `json:"env"`
	Notes    []string  `json:"notes,omitempty"`
	Variants []string  `json:"variantsRun"` // the variants measured (skipped ones left out)
	Traffic  []Traffic `json:"traffic,omitempty"`
	Samples  []Sample  `json:"samples"`
	Summary  []Figure  `json:"summary"`
}

// Median returns the median of xs (the mean of the middle two for an even
// count); 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Summarize computes the summary of r from its samples: for each workload,
// figure and variant in the order of the configuration, the median, min and
// max over the rounds, and the ratios of the median to the medians of `off`
// and `loopback`.
func (r *Result) Summarize() {
	r.Summary = nil
	// A round's value is the mean of its slices (equal durations).
	type cellKey struct {
		workload, metric, variant string
		round                     int
	}
	sum, n := map[cellKey]float64{}, map[cellKey]int{}
	var order []cellKey
	for _, s := range r.Samples {
		for k, v := range s.Metrics {
			ck := cellKey{s.Workload, k, s.Variant, s.Round}
			if n[ck] == 0 {
				order = append(order, ck)
			}
			sum[ck] += v
			n[ck]++
		}
	}
	vals := map[[3]string][]float64{}
	byRound := map[[3]string]map[int]float64{}
	for _, ck := range order {
		key := [3]string{ck.workload, ck.metric, ck.variant}
		v := sum[ck] / float64(n[ck])
		vals[key] = append(vals[key], v)
		if byRound[key] == nil {
			byRound[key] = map[int]float64{}
		}
		byRound[key][ck.round] = v
	}
	for _, w := range r.Config.Workloads {
		for _, md := range benchMetrics[w] {
			med := map[string]float64{}
			for _, v := range r.Variants {
				if xs := vals[[3]string{w, md.Key, v}]; len(xs) > 0 {
					med[v] = Median(xs)
				}
			}
			for _, v := range r.Variants {
				xs := vals[[3]string{w, md.Key, v}]
				if len(xs) == 0 {
					continue
				}
				f := Figure{Workload: w, Metric: md.Key, Unit: md.Unit, HigherBetter: md.HigherBetter,
					Variant: v, N: len(xs), Median: med[v], Min: slices.Min(xs), Max: slices.Max(xs)}
				if !md.MayBeZero { // counts of trouble (loss, resets) have no meaningful ratio
					f.VsOff = ratio(med[v], med, VariantOff)
					f.VsLoopback = ratio(med[v], med, VariantLoopback)
					f.PairedVsOff = pairedRatio(byRound[[3]string{w, md.Key, v}], byRound[[3]string{w, md.Key, VariantOff}])
				}
				r.Summary = append(r.Summary, f)
			}
		}
	}
}

// pairedRatio is the median over the rounds both have of x[round] /
// base[round]; nil when they share no round with a non-zero base.
func pairedRatio(x, base map[int]float64) *float64 {
	var qs []float64
	for round, v := range x {
		if b, ok := base[round]; ok && b != 0 {
			qs = append(qs, v/b)
		}
	}
	if len(qs) == 0 {
		return nil
	}
	q := Median(qs)
	return &q
}

func ratio(x float64, med map[string]float64, base string) *float64 {
	b, ok := med[base]
	if !ok || b == 0 {
		return nil
	}
	q := x / b
	return &q
}

// Figure returns the summary figure of (workload, metric, variant).
func (r *Result) Figure(workload, metric, variant string) (Figure, bool) {
	for _, f := range r.Summary {
		if f.Workload == workload && f.Metric == metric && f.Variant == variant {
			return f, true
		}
	}
	return Figure{}, false
}

// ReadResult reads a result file written by `nswire bench -o json` or
// `--out`.
func ReadResult(path string) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read bench result: %w", err)
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read bench result %s: not a bench result file: %w", path, err)
	}
	if r.Version != ResultVersion {
		return nil, fmt.Errorf("read bench result %s: format version %d, this nswire reads version %d", path, r.Version, ResultVersion)
	}
	if len(r.Summary) == 0 {
		return nil, fmt.Errorf("read bench result %s: it has no summary", path)
	}
	if r.Config.Family == 0 { // from before --ipv6
		r.Config.Family = 4
	}
	return &r, nil
}

// Change is the change of one median (or ratio) between two runs.
type Change struct {
	Workload string  `json:"workload"`
	Metric   string  `json:"metric"`
	Unit     string  `json:"unit"`
	Variant  string  `json:"variant"`
	A        float64 `json:"a"`
	B        float64 `json:"b"`
	// ChangePct is (B−A)/A in percent.
	ChangePct float64 `json:"changePct"`
	// Better says whether the change is an improvement for this figure
	// (nil when there is no change).
	Better *bool `json:"better,omitempty"`
}

// Compare lists the change of every median present in both a and b,
// followed by the change of every ratio to `off` (Unit "×off").
func Compare(a, b *Result) ([]Change, error) {
	var out, ratios []Change
	for _, fa := range a.Summary {
		fb, ok := b.Figure(fa.Workload, fa.Metric, fa.Variant)
		if !ok {
			continue
		}
		out = append(out, change(fa.Workload, fa.Metric, fa.Unit, fa.Variant, fa.Median, fb.Median, fa.HigherBetter))
		if fa.VsOff != nil && fb.VsOff != nil && fa.Variant != VariantOff {
			ratios = append(ratios, change(fa.Workload, fa.Metric, "×off", fa.Variant, *fa.VsOff, *fb.VsOff, fa.HigherBetter))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the two results have no figure in common: compare runs of the same variants and workloads")
	}
	return append(out, ratios...), nil
}

func change(w, m, unit, v string, a, b float64, higherBetter bool) Change {
	c := Change{Workload: w, Metric: m, Unit: unit, Variant: v, A: a, B: b}
	if a != 0 {
		c.ChangePct = 100 * (b - a) / math.Abs(a)
	}
	if b != a {
		better := (b > a) == higherBetter
		c.Better = &better
	}
	return c
}

// FormatNumber prints a figure with about four significant digits and no
// exponent.
func FormatNumber(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
