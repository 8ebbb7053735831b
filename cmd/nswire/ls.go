package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/serve"
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
			m, err := g.manager(cmd)
			if err != nil {
				return err
			}
			defer m.Close()
			rows, err := m.List(cmd.Context(), all)
			if err != nil {
				return err
			}
			out2, err := withStatus(m, g.stateDir, rows)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if out.format == "json" {
				if out2 == nil {
					return writeJSON(w, []any{})
				}
				return writeJSON(w, out2)
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tPID\tHOST-IF\tIFINDEX\tIF\tADDRESS\tMAC\tBRIDGE\tMODE\tSTATUS")
			for _, r := range out2 {
				if r.Record == nil {
					pid := "-"
					if r.PID != 0 {
						pid = fmt.Sprint(r.PID)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\t-\tnot wired\t%s\n", r.Name, short(r.ID), pid, r.Status)
					continue
				}
				x := r.Record
				mode := x.Mode
				if x.AttachMode == "tc" {
					mode += " (tc)"
				}
				pid := fmt.Sprint(x.PID)
				if r.Status == serve.StateWaiting {
					pid = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, short(r.ID), pid, x.HostIf, x.HostIfindex, x.IfName, x.Address, x.MAC, x.Bridge, mode, r.Status)
			}
			return tw.Flush()
		},
	}
	out.register(cmd)
	cmd.Flags().BoolVarP(&all, "all", "a", false, "also list running --network=none containers that are not wired")
	return cmd
}

// lsRow is a row of ls with its status: "wired", "stopped, waiting" (its
// container stopped; serve, or the desired state, wires it again when it
// starts), "stale: WHY" (a record nothing will wire again), or, for a
// container serve manages but could not wire, "unwired: REASON".
type lsRow struct {
	control.ListRow
	Status string `json:"status"`
}

// withStatus adds each row's status, and a row for every container serve
// left unwired with its reason.
func withStatus(m *control.Manager, stateDir string, rows []control.ListRow) ([]lsRow, error) {
	st, err := serve.ReadStatus(stateDir)
	if err != nil {
		return nil, err
	}
	var out []lsRow
	seen := map[string]bool{}
	for _, r := range rows {
		x := lsRow{ListRow: r}
		seen[r.ID] = true
		switch {
		case r.Record == nil:
		case r.Record.Observed:
			x.Status = "observed"
		default:
			x.Status = serve.StateWired
			if why := m.Staleness(r.Record); why != "" {
				x.Status = "stale: " + why
				if ds := m.Desired(); ds != nil {
					if d, _ := ds.Get(r.ID); d != nil {
						x.Status = serve.StateWaiting
					}
				}
			}
		}
		if st != nil {
			if cs := st.Containers[r.ID]; cs != nil && cs.State == serve.StateUnwired {
				x.Status = unwiredStatus(cs)
			}
		}
		out = append(out, x)
	}
	if st != nil {
		var extra []lsRow
		for id, cs := range st.Containers {
			if !seen[id] && cs.State == serve.StateUnwired {
				extra = append(extra, lsRow{ListRow: control.ListRow{Name: cs.Name, ID: id}, Status: unwiredStatus(cs)})
			}
		}
		sort.Slice(extra, func(i, j int) bool { return extra[i].Name < extra[j].Name })
		out = append(out, extra...)
	}
	return out, nil
}

// unwiredStatus is serve's reason without what the row already says.
func unwiredStatus(cs *serve.ContainerStatus) string {
	r := strings.TrimPrefix(cs.Reason, "container "+cs.Name+": ")
	return "unwired: " + strings.TrimSuffix(r, ": left unwired")
}

func short(id string) string {
	if len(id) > 12 && id[0] != 'n' {
		return id[:12]
	}
	return id
}
