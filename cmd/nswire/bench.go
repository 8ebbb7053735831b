package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/bench"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func newBenchCmd(g *globalFlags) *cobra.Command {
	var (
		cfg      bench.Config
		out      outputFlag
		plotFile string
		outDir   string
		ipv6     bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure what the eBPF fast path buys over plain bridging on this machine",
		Long: `Set up pairs of subjects on the bridge, run a matrix of workloads over each
variant of wiring, print the figures, and remove everything it created (also
on Ctrl-C; a second Ctrl-C exits at once).

Subjects are pairs of --network=none containers of the tiny local image when a
Docker engine is reachable, else (or with --netns-only) throwaway network
namespaces /run/netns/nswb-*. Variants:
  docker    a pair wired by Docker's own bridge driver (needs the engine)
  off       nswire wiring, no program: plain bridging
  observe   nswire wiring with the counting programs
  fastpath  nswire wiring, counting and bpf_redirect_peer to the peer's eth0
  loopback  both ends in one namespace over lo: the limit
Workloads (the load generator is nswire itself, its sockets opened inside
each subject's namespace, client and server pinned to different CPUs):
  tcp_rr      1-byte ping-pong on one connection: transactions/s, p50/p99
  tcp_crr     connect, 1-byte request/response, close: connections/s
  tcp_stream  one connection, 128 KiB writes: Gbit/s at the receiver
  udp_rate    64-byte datagrams as fast as possible: received packets/s, loss
  iperf3      (--iperf3) iperf3's TCP throughput, a cross-check

Each round runs every workload over every variant, the variants in a rotated
order (A B C D E, then B C D E A, …) so that machine noise hits all of them.
The table shows the median over the rounds, the spread (min–max), and each
median as a ratio to off and to loopback. CPU figures are the process's CPU
time plus the machine's softirq time per unit of work.

With --ipv6 every workload runs over IPv6: the nswire variants get IPv6
addresses from the bridge's global IPv6 prefix, the docker variant runs on the
Docker network of the bridge (which must have IPv6), loopback uses ::1. The
easiest bridge for it is a Docker network made with IPv6, given by name:
  docker network create --ipv6 --subnet fd00:db8:1::/64 v6bench
  nswire bench --ipv6 --network v6bench
The header shows, for each variant, the addresses and the IP packets of each
family the kernel counted in the server's namespace over the run.`,
		Example: `  sudo nswire bench
  sudo nswire bench --variants off,fastpath,loopback --workloads tcp_rr --rounds 3
  sudo nswire bench --out results/ --plot bench.png
  sudo nswire bench --ipv6 --network v6bench
  nswire bench compare results/bench-A.json results/bench-B.json`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Network != "" {
				if cmd.Flags().Changed("bridge") {
					return fmt.Errorf("--network %s and --bridge %s both name the bridge: give one of them", cfg.Network, cfg.Bridge)
				}
				cfg.Bridge = "" // the network's bridge
			}
			cfg.Family = 4
			if ipv6 {
				cfg.Family = 6
			}
			// The flags hold the defaults: validate what was given as is, so
			// that --rounds 0 or --duration 0 is an error, not a default.
			if err := cfg.Validate(); err != nil {
				return err
			}
			cfg.Defaults()
			if plotFile != "" {
				switch strings.ToLower(filepath.Ext(plotFile)) {
				case ".png", ".svg", ".pdf":
				default:
					return fmt.Errorf("--plot %s: give a file name ending in .png, .svg or .pdf", plotFile)
				}
			}
			if outDir != "" {
				if err := os.MkdirAll(outDir, 0o755); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
			}
			return out.validate()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			errw := cmd.ErrOrStderr()
			finished := make(chan struct{})
			defer close(finished) // runs before stop()
			go func() {
				select {
				case <-finished:
				case <-ctx.Done():
					stop() // a second Ctrl-C now ends the process at once
					fmt.Fprintln(errw, "\ninterrupted: removing what the bench created (Ctrl-C again to exit at once)")
				}
			}()
			return g.withManager(cmd, func(m *control.Manager) error {
				prog := newProgress(errw)
				res, err := bench.Run(ctx, m, cfg, prog.update)
				prog.done()
				if res == nil {
					return err
				}
				res.Tool = "nswire " + version
				if err != nil {
					if ctx.Err() != nil && len(res.Samples) > 0 {
						fmt.Fprintf(errw, "interrupted after %d cells: the figures below are partial\n", len(res.Samples))
					} else {
						return err
					}
				}
				if outDir != "" {
					name := filepath.Join(outDir, "bench-"+res.Started.Format("20060102-150405")+".json")
					if werr := writeJSONFile(name, res); werr != nil {
						return werr
					}
					fmt.Fprintln(errw, "saved", name)
					if plotFile != "" {
						png := strings.TrimSuffix(name, ".json") + filepath.Ext(plotFile)
						if perr := bench.Plot(res, png); perr != nil {
							return perr
						}
					}
				}
				if plotFile != "" {
					if perr := bench.Plot(res, plotFile); perr != nil {
						return perr
					}
					fmt.Fprintln(errw, "plotted", plotFile)
				}
				w := cmd.OutOrStdout()
				if out.format == "json" {
					if jerr := writeJSON(w, res); jerr != nil {
						return jerr
					}
				} else {
					printBench(w, res)
				}
				if err != nil {
					return fmt.Errorf("bench interrupted: %w", err)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&cfg.Variants, "variants", bench.Variants, "variants to run, comma-separated: "+strings.Join(bench.Variants, ","))
	f.StringSliceVar(&cfg.Workloads, "workloads", bench.Workloads, "workloads to run, comma-separated: "+strings.Join(append(bench.Workloads, bench.WorkloadIperf3), ","))
	f.IntVar(&cfg.Rounds, "rounds", bench.DefaultRounds, "rounds of the whole matrix")
	f.DurationVar(&cfg.Duration, "duration", bench.DefaultDuration, "measured time of each variant × workload cell (at least 200ms)")
	f.DurationVar(&cfg.Warmup, "warmup", bench.DefaultWarmup, "unmeasured warm-up of each cell, spread over its slices (at least 100ms each)")
	f.IntVar(&cfg.Slices, "slices", bench.DefaultSlices, "cut each cell into this many slices, interleaved with the other variants' slices")
	f.BoolVar(&cfg.NetnsOnly, "netns-only", false, "use throwaway network namespaces, not containers (no Docker needed; skips the docker variant)")
	f.StringVar(&cfg.Bridge, "bridge", "docker0", "bridge to wire the subjects into")
	f.StringVar(&cfg.Network, "network", "", "Docker network to run on, instead of --bridge: its bridge, and its containers for the docker variant")
	f.BoolVar(&ipv6, "ipv6", false, "run every workload over IPv6 (the bridge needs a global IPv6 address; see --network)")
	f.StringVar(&cfg.Image, "image", bench.DefaultImage, "image of the subject containers (must have sleep)")
	f.BoolVar(&cfg.Iperf3, "iperf3", false, "cross-check tcp_stream with iperf3 (must be installed)")
	f.BoolVar(&cfg.NoPin, "no-pin", false, "do not pin the client and the server to different CPUs")
	f.StringVar(&plotFile, "plot", "", "draw the headline figures to this file (.png, .svg or .pdf)")
	f.StringVar(&outDir, "out", "", "save the result as DIR/bench-<time>.json (and the plot beside it)")
	out.register(cmd)
	cmd.RegisterFlagCompletionFunc("variants", oneOf(bench.Variants...))
	cmd.RegisterFlagCompletionFunc("workloads", oneOf(append(bench.Workloads, bench.WorkloadIperf3)...))
	cmd.AddCommand(newBenchCompareCmd())
	return cmd
}

func newBenchCompareCmd() *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "compare A.json B.json",
		Short: "Print the change of each median (and of each ratio to off) from run A to run B",
		Args:  cobra.ExactArgs(2),
		PreRunE: func(*cobra.Command, []string) error {
			return out.validate()
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := bench.ReadResult(args[0])
			if err != nil {
				return err
			}
			b, err := bench.ReadResult(args[1])
			if err != nil {
				return err
			}
			rows, err := bench.Compare(a, b)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if out.format == "json" {
				return writeJSON(w, rows)
			}
			fmt.Fprintf(w, "A: %s  %s  %s\nB: %s  %s  %s\n\n", args[0], a.Started.Format(time.RFC3339), a.Config.FamilyName(),
				args[1], b.Started.Format(time.RFC3339), b.Config.FamilyName())
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "WORKLOAD\tFIGURE\tVARIANT\tA\tB\tCHANGE\t\t")
			for _, r := range rows {
				verdict := ""
				if r.Better != nil {
					verdict = "worse"
					if *r.Better {
						verdict = "better"
					}
				}
				fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\t%+.1f%%\t%s\t\n", r.Workload, r.Metric, r.Unit, r.Variant,
					bench.FormatNumber(r.A), bench.FormatNumber(r.B), r.ChangePct, verdict)
			}
			return tw.Flush()
		},
	}
	out.register(cmd)
	return cmd
}

func writeJSONFile(name string, v any) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("save result: %w", err)
	}
	if err := writeJSON(f, v); err != nil {
		f.Close()
		return fmt.Errorf("save result: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save result: %w", err)
	}
	return nil
}

// printBench prints the header and the table of a result.
func printBench(w io.Writer, r *bench.Result) {
	e := r.Env
	fmt.Fprintf(w, "nswire bench: %d round(s) × %s per cell in %d interleaved slice(s) (warm-up %s each), variants rotated; subjects: %s\n",
		r.Config.Rounds, r.Config.Duration, r.Config.SliceCount(), r.Config.SliceWarmup(), e.Subjects)
	fmt.Fprintf(w, "kernel %s, %d CPUs (%s), %s\n", e.Kernel, e.CPUs, e.CPUModel, e.GoVersion)
	network := ""
	if r.Config.Network != "" {
		network = " (Docker network " + r.Config.Network + ")"
	}
	fmt.Fprintf(w, "%s over bridge %s%s, MTU %d, bridge netfilter: %s\n", r.Config.FamilyName(), e.Bridge, network, e.MTU, e.BridgeNetfilter)
	fmt.Fprintf(w, "offloads: %s\n", e.Offloads)
	fmt.Fprintf(w, "attach mode: %s; pinning: %s\n", e.AttachMode, e.Pinning)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(r.Traffic) > 0 {
		fmt.Fprintln(w, "traffic (the server's namespace, IP packets received over the run; nswire's counters of the server):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range r.Traffic {
			counted := ""
			if len(t.ServerCounted) > 0 {
				keys := slices.Sorted(maps.Keys(t.ServerCounted))
				parts := make([]string, len(keys))
				for i, k := range keys {
					parts[i] = fmt.Sprintf("%s %d", k, t.ServerCounted[k])
				}
				counted = "nswire: " + strings.Join(parts, ", ")
			}
			if t.ServerFastpathed > 0 {
				counted += fmt.Sprintf("; fast-pathed %d", t.ServerFastpathed)
			}
			fmt.Fprintf(tw, "  %s\t%s → %s\tipv4 %d\tipv6 %d\t%s\n", t.Variant, t.Client, t.Server, t.ServerRxIPv4, t.ServerRxIPv6, counted)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WORKLOAD\tFIGURE\tVARIANT\tMEDIAN\tMIN–MAX\tSPREAD\t×OFF\t×LOOPBACK\tPAIRED ×OFF\t")
	prev := ""
	for _, f := range r.Summary {
		key := f.Workload + "/" + f.Metric
		if prev != "" && prev != key {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t")
		}
		prev = key
		dir := "↓"
		if f.HigherBetter {
			dir = "↑"
		}
		fmt.Fprintf(tw, "%s\t%s %s %s\t%s\t%s\t%s–%s\t%.1f%%\t%s\t%s\t%s\t\n", f.Workload, f.Metric, f.Unit, dir, f.Variant,
			bench.FormatNumber(f.Median), bench.FormatNumber(f.Min), bench.FormatNumber(f.Max), f.SpreadPct(),
			fmtRatio(f.VsOff), fmtRatio(f.VsLoopback), fmtRatio(f.PairedVsOff))
	}
	tw.Flush()
}

func fmtRatio(r *float64) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f", *r)
}

// progress prints one status line on a terminal (rewritten in place) or one
// line per round elsewhere.
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	round int
	shown bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.tty = err == nil
	}
	return p
}

func (p *progress) update(b bench.Progress) {
	el := time.Since(p.start).Round(time.Second)
	var line string
	switch {
	case b.Setup != "":
		line = fmt.Sprintf("[%s] %s", el, b.Setup)
	default:
		line = fmt.Sprintf("[%s] round %d/%d  cell %d/%d  %-8s %s", el, b.Round, b.Rounds, b.Cell, b.Cells, b.Variant, b.Workload)
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.shown = true
		return
	}
	if b.Setup != "" || b.Round != p.round {
		p.round = b.Round
		fmt.Fprintln(p.w, line)
	}
}

func (p *progress) done() {
	if p.tty && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
