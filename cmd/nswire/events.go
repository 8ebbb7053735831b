package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control/serve"
)

func newEventsCmd(g *globalFlags) *cobra.Command {
	var (
		out    outputFlag
		follow bool
		tail   int
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show what nswire serve did and why, one line per action",
		Long: `Show the action log of nswire serve: every container it wired, wired again
after a restart, adopted, left waiting while stopped, detached after its
removal, or left unwired, with the reason (a bad label names the container,
the label and its value). -f follows the log.`,
		Args:    cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return out.validate() },
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			evs, err := serve.ReadEvents(g.stateDir)
			if err != nil {
				return err
			}
			if tail > 0 && len(evs) > tail {
				evs = evs[len(evs)-tail:]
			}
			for _, e := range evs {
				if err := printEvent(w, out.format, e); err != nil {
					return err
				}
			}
			if !follow {
				return nil
			}
			return serve.FollowEvents(g.stateDir, 200*time.Millisecond, cmd.Context().Done(), func(e serve.Event) {
				printEvent(w, out.format, e)
			})
		},
	}
	out.register(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new actions as serve takes them (Ctrl-C to stop)")
	cmd.Flags().IntVarP(&tail, "tail", "n", 0, "show only the last N actions (0: all)")
	return cmd
}

func printEvent(w io.Writer, format string, e serve.Event) error {
	if format == "json" {
		return writeJSONCompact(w, e)
	}
	line := e.Time.Local().Format("2006-01-02 15:04:05.000") + "  " + fmt.Sprintf("%-9s", e.Action)
	if e.Container != "" {
		line += " " + e.Container
	}
	if e.Address != "" {
		line += " " + e.Address
	}
	if e.MAC != "" {
		line += " mac " + e.MAC
	}
	if e.Mode != "" {
		line += " mode " + e.Mode
	}
	if e.Took != "" {
		line += " in " + e.Took
	}
	switch {
	case e.Reason != "" && e.Container != "":
		line += ": " + e.Reason
	case e.Reason != "":
		line += " " + e.Reason
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
