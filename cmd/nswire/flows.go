package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
)

type flowsOptions struct {
	out      outputFlag
	watch    bool
	interval time.Duration
	sort     string
	limit    int
}

func newFlowsCmd(g *globalFlags) *cobra.Command {
	o := &flowsOptions{}
	cmd := &cobra.Command{
		Use:   "flows [TARGET...]",
		Short: "Show who each attached container talks to: its flows, counted exactly in eBPF",
		Long: `Show the flows of each attached target (all of them without arguments), as
the eBPF programs on its host veth counted them, in every mode that counts,
fast-pathed packets included: direction (tx: sent by the container, rx:
towards it), protocol, the container's address and port, the peer's address,
port and name (another nswire target or a Docker container), packets, bytes
(Ethernet header included), TCP flags seen, first and last seen. ICMP flows
show type/code instead of ports. When the flow maps are full the kernel drops
the least recently used flows; "evicted" says how many (their packets stay in
the counters). With --watch, refresh every --interval with per-second rates.`,
		Example:           "  nswire flows\n  nswire flows web --sort packets --limit 10\n  nswire flows web -w --sort rate\n  nswire flows -o json",
		ValidArgsFunction: completeAttached(g),
		PreRunE: func(*cobra.Command, []string) error {
			if err := control.SortFlows(nil, o.sort); err != nil {
				return err
			}
			if o.limit < 0 {
				return fmt.Errorf("--limit %d is negative: give a number of flows, or 0 for all", o.limit)
			}
			if o.watch && o.interval < 100*time.Millisecond {
				return fmt.Errorf("--interval %s is too short: give at least 100ms", o.interval)
			}
			return o.out.validate()
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withManager(cmd, func(m *control.Manager) error {
				return runFlows(cmd.Context(), cmd.OutOrStdout(), m, args, o)
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.watch, "watch", "w", false, "refresh every --interval with per-second rates, until Ctrl-C")
	f.DurationVar(&o.interval, "interval", time.Second, "refresh interval of --watch")
	f.StringVar(&o.sort, "sort", "bytes", "order: "+joinOr(control.FlowSortKeys)+" (largest or latest first)")
	f.IntVar(&o.limit, "limit", 20, "show at most this many flows (0: all)")
	cmd.RegisterFlagCompletionFunc("sort", oneOf(control.FlowSortKeys...))
	o.out.register(cmd)
	return cmd
}

func runFlows(ctx context.Context, w io.Writer, m *control.Manager, refs []string, o *flowsOptions) error {
	cur, err := m.Flows(ctx, refs)
	if err != nil {
		return err
	}
	show := func(rep *control.FlowReport, rates bool) error {
		control.SortFlows(rep.Flows, o.sort)
		total := len(rep.Flows)
		if o.limit > 0 && len(rep.Flows) > o.limit {
			rep.Flows = rep.Flows[:o.limit]
		}
		if o.out.format == "json" {
			if o.watch {
				return writeJSONCompact(w, rep)
			}
			return writeJSON(w, rep)
		}
		return writeFlowsTable(w, rep, total, rates)
	}
	if !o.watch {
		return show(cur, false)
	}
	return watchEvery(ctx, w, o.interval, o.out.format == "table", "nswire flows", func() error {
		next, err := m.Flows(ctx, refs)
		if err != nil {
			return err
		}
		control.WithFlowRates(cur, next)
		cur = next
		shown := *next // show sorts and cuts: keep cur whole for the next rates
		shown.Flows = append([]control.FlowRow(nil), next.Flows...)
		return show(&shown, true)
	})
}

func writeFlowsTable(w io.Writer, rep *control.FlowReport, total int, rates bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "NAME\tDIR\tPROTO\tLOCAL\tPEER\tPEER NAME\tPKTS\tBYTES"
	if rates {
		head += "\tRATE"
	}
	head += "\tFLAGS\tLAST SEEN"
	fmt.Fprintln(tw, head)
	now := time.Now()
	for _, f := range rep.Flows {
		local, peer := endpoint(f.Local, f.LocalPort), endpoint(f.Peer, f.PeerPort)
		if f.ICMPType != nil {
			peer += fmt.Sprintf(" type %d/%d", *f.ICMPType, *f.ICMPCode)
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s", f.Name, f.Direction, f.Proto, local, peer, orDash(f.PeerName), f.Packets, humanBytes(float64(f.Bytes)))
		if rates {
			line += "\t" + humanRate(f.Rate)
		}
		line += fmt.Sprintf("\t%s\t%s ago", orDash(f.TCPFlags), now.Sub(f.LastSeen).Round(time.Second))
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d of %d flows shown; evicted %d (flow maps hold %d per family); flow errors %d\n", len(rep.Flows), total, rep.Evicted, rep.Capacity, rep.Errors)
	return nil
}

func endpoint(a netip.Addr, port uint16) string {
	if port == 0 || !a.IsValid() {
		return a.String()
	}
	return netip.AddrPortFrom(a, port).String() // [IPv6]:port
}
