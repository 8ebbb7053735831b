package main

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
)

func newDropsCmd(g *globalFlags) *cobra.Command {
	var (
		out    outputFlag
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "drops [TARGET...]",
		Short: "Show each packet the spoof guard dropped, and why",
		Long: `Show the packets the spoof guard dropped, one per line, from the datapath's
ring buffer: time, container, reason (src-mac, src-ipv4, src-ipv6, arp-spoof,
router-advert, redirect, ipv6-unparsed, nd-spoof), addresses, protocol, ports (ICMP:
type/code; ARP: the opcode) and source MAC. The kernel rate-limits the events
(1000 per second per CPU) so a flood cannot swamp the reader; drops over the
limit, or while the ring is full, are still counted by 'nswire stats' and are
shown here as lost. Without --watch, print the events waiting in the ring
and exit; with it, follow until Ctrl-C. Events are read once: two readers
share them.`,
		Example:           "  nswire drops\n  nswire drops web -w\n  nswire drops -o json",
		ValidArgsFunction: completeAttached(g),
		PreRunE:           func(*cobra.Command, []string) error { return out.validate() },
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			return g.withManager(cmd, func(m *control.Manager) error {
				var tw *tabwriter.Writer
				n := 0
				emit := func(d control.DropRow) error {
					n++
					if out.format == "json" {
						return writeJSONCompact(w, d)
					}
					if tw == nil {
						tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
						fmt.Fprintln(tw, "TIME\tNAME\tREASON\tPROTO\tSRC\tDST\tSRC MAC")
					}
					writeDrop(tw, d)
					if follow {
						return tw.Flush()
					}
					return nil
				}
				loss, err := m.Drops(cmd.Context(), args, follow, emit)
				if tw != nil {
					tw.Flush()
				}
				if err != nil {
					return err
				}
				if out.format == "json" {
					return writeJSONCompact(w, struct {
						Lost control.DropLoss `json:"lost"`
					}{loss})
				}
				return writeLoss(w, n, loss)
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "watch", "w", false, "follow new drops until Ctrl-C")
	out.register(cmd)
	return cmd
}

func writeDrop(w io.Writer, d control.DropRow) {
	src, dst := "-", "-"
	if d.Src.IsValid() {
		src = endpoint(d.Src, d.SrcPort)
	}
	if d.Dst.IsValid() {
		dst = endpoint(d.Dst, d.DstPort)
	}
	proto := d.Proto
	if proto == "" {
		proto = "ethertype " + d.EtherType
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Time.Format("15:04:05.000"), orDash(d.Name), d.Reason, proto, src, dst, d.SrcMAC)
}

func writeLoss(w io.Writer, n int, l control.DropLoss) error {
	_, err := fmt.Fprintf(w, "%s drop events shown; since the datapath was loaded: %d sent, %d not sent (%d over the rate limit, %d with the ring full)\n",
		strconv.Itoa(n), l.Sent, l.RateLimited+l.RingFull, l.RateLimited, l.RingFull)
	return err
}
