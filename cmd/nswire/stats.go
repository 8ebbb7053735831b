package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/nswire/nswire/control"
)

// statsOptions are the flags shared by stats and attach --watch.
type statsOptions struct {
	format   string
	watch    bool
	interval time.Duration
	proto    bool
}

func (o *statsOptions) validate() error {
	switch o.format {
	case "table", "json", "prometheus":
	default:
		return fmt.Errorf("-o %q is not a known output format: use table, json or prometheus", o.format)
	}
	if o.interval < 100*time.Millisecond {
		return fmt.Errorf("--interval %s is too short: give at least 100ms", o.interval)
	}
	if o.watch && o.format == "prometheus" {
		return fmt.Errorf("-o prometheus prints one scrape; for a live endpoint use `nswire metrics --listen :9464`")
	}
	return nil
}

func newStatsCmd(g *globalFlags) *cobra.Command {
	o := &statsOptions{}
	cmd := &cobra.Command{
		Use:   "stats [TARGET...]",
		Short: "Show the traffic counters of attached containers (exact, from eBPF)",
		Long: `Show the traffic counted by nswire's eBPF programs for each attached target
(all of them without arguments): packets and bytes each way, by protocol,
spoof-guard drops and fast-pathed packets. rx is traffic to the container,
tx traffic from it; bytes include the Ethernet header, as the kernel's
interface counters count them. With --watch, refresh every --interval with
per-second rates beside the totals, until Ctrl-C.`,
		Example:           "  nswire stats\n  nswire stats web -w\n  nswire stats -o json\n  nswire stats -o prometheus",
		ValidArgsFunction: completeAttached(g),
		PreRunE:           func(*cobra.Command, []string) error { return o.validate() },
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withManager(cmd, func(m *control.Manager) error {
				return runStats(cmd.Context(), cmd.OutOrStdout(), m, args, o)
			})
		},
	}
	o.register(cmd, true)
	return cmd
}

func (o *statsOptions) register(cmd *cobra.Command, withWatch bool) {
	f := cmd.Flags()
	if withWatch {
		f.StringVarP(&o.format, "output", "o", "table", "output format: table, json or prometheus")
		f.BoolVarP(&o.watch, "watch", "w", false, "refresh every --interval with per-second rates, until Ctrl-C")
		cmd.RegisterFlagCompletionFunc("output", oneOf("table", "json", "prometheus"))
	} else {
		o.format = "table"
	}
	f.DurationVar(&o.interval, "interval", time.Second, "refresh interval of --watch")
	f.BoolVar(&o.proto, "proto", false, "break the counters down by protocol")
}

// runStats prints one snapshot, or with o.watch refreshes until ctx ends.
func runStats(ctx context.Context, w io.Writer, m *control.Manager, refs []string, o *statsOptions) error {
	if o.format == "prometheus" {
		return writePrometheus(w, m)
	}
	cur, err := m.Stats(ctx, refs)
	if err != nil {
		return err
	}
	if !o.watch {
		if o.format == "json" {
			return writeJSON(w, cur)
		}
		return writeStatsTable(w, cur, o.proto, false)
	}
	return watchEvery(ctx, w, o.interval, o.format == "table", "nswire stats", func() error {
		next, err := m.Stats(ctx, refs)
		if err != nil {
			return err
		}
		cur = control.WithRates(cur, next)
		if o.format == "json" {
			return writeJSONCompact(w, cur) // one JSON document per line per interval (NDJSON)
		}
		return writeStatsTable(w, cur, o.proto, true)
	})
}

// watchEvery calls draw every interval until ctx ends. For a table it first
// clears a terminal (or, into a file or pipe, separates the tables with a
// blank line) and prints a title line naming the time and the interval.
func watchEvery(ctx context.Context, w io.Writer, interval time.Duration, table bool, what string, draw func() error) error {
	clear := table && isTerminal(w)
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if table {
			switch {
			case clear:
				fmt.Fprint(w, "\033[H\033[2J")
			case n > 0:
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "%s — %s — every %s, Ctrl-C to stop\n", what, time.Now().Format("15:04:05"), interval)
		}
		if err := draw(); err != nil {
			return err
		}
	}
}

func writeStatsTable(w io.Writer, stats []control.EndpointStats, byProto, rates bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "NAME\tMODE\tRX PKTS\tRX BYTES\tTX PKTS\tTX BYTES"
	if rates {
		head += "\tRX RATE\tTX RATE"
	}
	head += "\tFASTPATHED\tDROPS"
	fmt.Fprintln(tw, head)
	for _, s := range stats {
		if !s.Counted {
			line := fmt.Sprintf("%s\t%s\t-\t-\t-\t-", s.Name, orDash(s.Mode))
			if rates {
				line += "\t-\t-"
			}
			fmt.Fprintln(tw, line+"\t-\t"+notCounted(s))
			if s.State != "" && s.State != control.StateLive {
				fmt.Fprintf(tw, "  %s\n", s.Reason)
			}
			continue
		}
		line := fmt.Sprintf("%s\t%s\t%d\t%s\t%d\t%s", s.Name, s.Mode, s.RX.Packets, humanBytes(float64(s.RX.Bytes)), s.TX.Packets, humanBytes(float64(s.TX.Bytes)))
		if rates {
			line += "\t" + humanRate(s.RXRate) + "\t" + humanRate(s.TXRate)
		}
		line += fmt.Sprintf("\t%d\t%s", s.Fastpathed.Packets, dropsString(s.Drops))
		fmt.Fprintln(tw, line)
		if byProto {
			for _, dir := range []struct {
				name string
				by   map[string]control.Flow
			}{{"rx", s.RXByProto}, {"tx", s.TXByProto}} {
				keys := make([]string, 0, len(dir.by))
				for k := range dir.by {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					fmt.Fprintf(tw, "  %s %s\t\t%d pkts\t%s\n", dir.name, k, dir.by[k].Packets, humanBytes(float64(dir.by[k].Bytes)))
				}
			}
		}
	}
	return tw.Flush()
}

func dropsString(d map[string]uint64) string {
	if len(d) == 0 {
		return "0"
	}
	var parts []string
	for _, r := range control.DropReasons {
		if d[r] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", r, d[r]))
		}
	}
	return strings.Join(parts, ",")
}

// humanBytes formats a byte count with IEC units.
func humanBytes(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

func humanRate(r *control.Rate) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%s/s %.0f pps", humanBytes(r.BytesPerSec), r.PacketsPerSec)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// notCounted says why a row has no counters: its mode, or its state when
// the record is not live (its old counters are never shown as current).
func notCounted(s control.EndpointStats) string {
	if s.State != "" && s.State != control.StateLive {
		return "not counted (" + string(s.State) + ")"
	}
	return "not counted (mode off)"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
