package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
)

func newDetachCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "detach TARGET...",
		Short: "Remove what attach created: programs, veth pair, address, route, record",
		Long: `Remove everything attach created for each TARGET (a container name or ID,
"pid N" record ID, or netns path). A target that is unknown, already detached
or whose container has exited is not an error: detach exits 0.`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeAttached(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			return forEachTarget(g, cmd, args, (*control.Manager).Detach)
		},
	}
}

// forEachTarget runs op on every target in order with one Manager, printing
// each result's message; it stops at the first error.
func forEachTarget(g *globalFlags, cmd *cobra.Command, refs []string, op func(*control.Manager, context.Context, string) (*control.DetachResult, error)) error {
	return g.withManager(cmd, func(m *control.Manager) error {
		for _, ref := range refs {
			res, err := op(m, cmd.Context(), ref)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Message)
		}
		return nil
	})
}

// completeAttached completes the names of attached containers.
func completeAttached(g *globalFlags) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		var names []string
		g.withManager(cmd, func(m *control.Manager) error {
			recs, _, err := m.Store().List()
			for _, r := range recs {
				names = append(names, r.DisplayName())
			}
			return err
		})
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
