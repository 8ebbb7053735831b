package main

import (
	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
)

func newUnobserveCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "unobserve TARGET...",
		Short:             "Remove the counters that observe attached",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeAttached(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			return forEachTarget(g, cmd, args, (*control.Manager).Unobserve)
		},
	}
}
