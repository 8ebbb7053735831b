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
				for _, r := range rows {
					if r.State == control.StateDamaged {
						fmt.Fprintf(cmd.ErrOrStderr(), "nswire: warning: damaged record %s (%s): %s\n", r.File, r.Error, r.Reason)
					}
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tID\tSTATE\tPID\tHOST-IF\tIFINDEX\tIF\tADDRESS\tMAC\tBRIDGE\tMODE")
				for _, r := range rows {
					switch {
					case r.State == control.StateDamaged:
						fmt.Fprintf(tw, "%s\t%s\tdamaged\t-\t-\t-\t-\t-\t-\t-\t-\n", r.Name, short(r.ID))
						continue
					case r.Record == nil:
						fmt.Fprintf(tw, "%s\t%s\tnot wired\t%d\t-\t-\t-\t-\t-\t-\t-\n", r.Name, short(r.ID), r.PID)
						continue
					}
					x := r.Record
					mode := string(x.Mode)
					if x.Hook == datapath.HookTC {
						mode += " (tc)"
					}
					// What a record that is not live claims (its PID, its
					// ifindex) is not shown as if it were current.
					pid, ifindex := "-", "-"
					if r.State == control.StateLive {
						pid, ifindex = fmt.Sprint(x.PID), fmt.Sprint(x.HostIfindex)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, short(r.ID), r.State, pid, x.HostIf, ifindex, x.IfName, addrOrNone(x.Address), x.MAC, x.Bridge, mode)
				}
				for _, r := range rows {
					if r.Reason != "" && r.State != control.StateLive && r.State != control.StateDamaged {
						fmt.Fprintf(cmd.ErrOrStderr(), "nswire: %s is %s: %s\n", r.Name, r.State, r.Reason)
					}
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
