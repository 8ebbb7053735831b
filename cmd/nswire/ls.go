package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/datapath"

	"github.com/spf13/cobra"
)

func newLsCmd(g *globalFlags) *cobra.Command {
	var (
		out outputFlag
		all bool
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List wired containers: host veth, ifindex, address, MAC, bridge, mode",
		Args:    cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return out.validate() },
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withManager(cmd, func(m *control.Manager) error {
				rows, err := m.List(cmd.Context(), all)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if out.format == "json" {
					if rows == nil {
						return writeJSON(w, []any{})
					}
					return writeJSON(w, rows)
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tID\tPID\tHOST-IF\tIFINDEX\tIF\tADDRESS\tMAC\tBRIDGE\tMODE")
				for _, r := range rows {
					if r.Record == nil {
						fmt.Fprintf(tw, "%s\t%s\t%d\t-\t-\t-\t-\t-\t-\tnot wired\n", r.Name, short(r.ID), r.PID)
						continue
					}
					x := r.Record
					mode := string(x.Mode)
					if x.Hook == datapath.HookTC {
						mode += " (tc)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Name, short(r.ID), x.PID, x.HostIf, x.HostIfindex, x.IfName, addrOrNone(x.Address), x.MAC, x.Bridge, mode)
				}
				return tw.Flush()
			})
		},
	}
	out.register(cmd)
	cmd.Flags().BoolVarP(&all, "all", "a", false, "also list running --network=none containers that are not wired")
	return cmd
}

func short(id string) string {
	if c, ok := strings.CutPrefix(id, "cni:"); ok { // a CNI attachment: the runtime's container ID
		c, _, _ = strings.Cut(c, "/")
		if len(c) > 12 {
			c = c[:12]
		}
		return c
	}
	if len(id) > 12 && id[0] != 'n' {
		return id[:12]
	}
	return id
}
