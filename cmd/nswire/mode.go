package main

import (
	"fmt"

	"github.com/nswire/nswire/control/datapath"

	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
)

func newModeCmd(g *globalFlags) *cobra.Command {
	var (
		hook  string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "mode TARGET off|observe|fastpath",
		Short: "Switch an attached container's datapath at run time",
		Long: `Switch an attached container's datapath without moving its addresses:
  off       plain bridging, no program (the baseline)
  observe   count its traffic exactly, spoof guard on
  fastpath  count, spoof guard, and send packets for other fast-path
            containers straight into their eth0 (bpf_redirect_peer),
            past the bridge and the host's netfilter
Between observe and fastpath only the endpoint record changes, so open
connections are not disturbed. fastpath is refused on a Docker network with
enable_icc=false unless --force.`,
		Example: "  nswire mode web fastpath\n  nswire mode web off",
		Args:    cobra.ExactArgs(2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, tc string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return oneOf(datapath.Modes...)(cmd, args, tc)
			}
			return completeAttached(g)(cmd, args, tc)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			mode, err := datapath.ParseMode(args[1])
			if err != nil {
				return err
			}
			h, err := datapath.ParseHook(hook)
			if err != nil {
				return fmt.Errorf("--hook: %w", err)
			}
			return g.withManager(cmd, func(m *control.Manager) error {
				rec, err := m.SetMode(cmd.Context(), args[0], mode, h, force)
				if err != nil {
					return err
				}
				how := ""
				if rec.Hook != datapath.HookNone {
					how = " (" + string(rec.Hook) + ")"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: mode %s%s\n", rec.DisplayName(), rec.Mode, how)
				return nil
			})
		},
	}
	registerHookFlag(cmd, &hook)
	cmd.Flags().BoolVar(&force, "force", false, "allow fastpath on a bridge with enable_icc=false")
	return cmd
}
