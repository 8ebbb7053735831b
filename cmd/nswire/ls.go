package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/serve"
	"github.com/nswire/nswire/control/state"
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
				list, err := m.List(cmd.Context(), all)
				if err != nil {
					return err
				}
				rows, err := withStatus(m, g.stateDir, list)
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
				fmt.Fprintln(tw, "NAME\tID\tSTATE\tPID\tHOST-IF\tIFINDEX\tIF\tADDRESS\tMAC\tBRIDGE\tMODE\tSTATUS")
				for _, r := range rows {
					status := orDash(r.Status)
					switch {
					case r.State == control.StateDamaged:
						fmt.Fprintf(tw, "%s\t%s\tdamaged\t-\t-\t-\t-\t-\t-\t-\t-\t%s\n", r.Name, short(r.ID), status)
						continue
					case r.Record == nil:
						pid := "-"
						if r.PID != 0 {
							pid = fmt.Sprint(r.PID)
						}
						fmt.Fprintf(tw, "%s\t%s\tnot wired\t%s\t-\t-\t-\t-\t-\t-\t-\t%s\n", r.Name, short(r.ID), pid, status)
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
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, short(r.ID), r.State, pid, x.HostIf, ifindex, x.IfName, addresses(x), x.MAC, x.Bridge, mode, status)
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
		case r.Record == nil || r.State == control.StateDamaged:
		case r.Record.Observed:
			x.Status = "observed"
		case r.State == control.StateLive:
			x.Status = serve.StateWired
		default: // the STATE column says what happened to it
			if ds := m.Desired(); ds != nil {
				if d, _ := ds.Get(r.ID); d != nil {
					x.Status = serve.StateWaiting // serve wires it again when it starts
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

// addresses is a record's IPv4 address, and its IPv6 address after a comma
// when it has one.
func addresses(r *state.Record) string {
	s := addrOrNone(r.Address)
	if r.Address6.IsValid() {
		s += "," + r.Address6.String()
	}
	return s
}
