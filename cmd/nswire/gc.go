package main

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/nswire/nswire/control"
	"github.com/spf13/cobra"
)

func newGcCmd(g *globalFlags) *cobra.Command {
	var (
		out    outputFlag
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove what no live container owns: stale records, orphan veths, pins and map entries",
		Long: `Find and remove what nswire created that no live target owns any more:

  record     a record whose container or namespace is gone (or whose host veth
             is gone): its programs, map entries, veth and address reservation
  tombstone  a detach that was interrupted (killed): gc finishes it
  veth       an nsw… host veth without a record (an attach that was killed)
  link-pins  tcx link pins under the pin dir of an interface without a record
  map-entry  endpoint and address entries in the pinned maps of no record

gc touches nothing nswire did not create: only veths named nsw + 8 hex digits
whose peer is in another namespace, files in the state dir and pins under the
pin dir. A corrupt record is reported and kept, with its veth. Exit status 1
when anything could not be removed.`,
		Example: `  nswire gc --dry-run
  nswire gc -o json`,
		Args:    cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return out.validate() },
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withManager(cmd, func(m *control.Manager) error {
				rep, err := m.GC(cmd.Context(), dryRun)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if out.format == "json" {
					if err := writeJSON(w, rep); err != nil {
						return err
					}
				} else {
					if len(rep.Items) == 0 {
						fmt.Fprintf(w, "nothing to collect (%d live attachments)\n", rep.Live)
					} else {
						tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
						fmt.Fprintln(tw, "ACTION\tKIND\tNAME\tWHY")
						for _, it := range rep.Items {
							action := "removed"
							switch {
							case it.Kind == "corrupt-record":
								action = "kept"
							case rep.DryRun:
								action = "would remove"
							case it.Error != "":
								action = "FAILED"
							}
							why := it.Reason
							if it.Error != "" {
								why += ": " + it.Error
							}
							fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", action, it.Kind, it.Name, why)
						}
						tw.Flush()
					}
				}
				if rep.Failed() {
					return errors.New("gc could not remove everything (see FAILED above): fix the cause and run `nswire gc` again")
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be removed and remove nothing")
	out.register(cmd)
	return cmd
}
