package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
)

func newModeCmd(g *globalFlags) *cobra.Command {
	var (
		attachMode string
		force      bool
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
				return control.Modes, cobra.ShellCompDirectiveNoFileComp
			}
			return completeAttached(g)(cmd, args, tc)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := g.manager(cmd)
			if err != nil {
				return err
			}
			defer m.Close()
			rec, err := m.SetMode(cmd.Context(), args[0], args[1], attachMode, force)
			if err != nil {
				return err
			}
			how := ""
			if rec.AttachMode != "" {
				how = " (" + rec.AttachMode + ")"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: mode %s%s\n", rec.DisplayName(), rec.Mode, how)
			return nil
		},
	}
	cmd.Flags().StringVar(&attachMode, "attach-mode", "auto", "how to attach programs: "+joinOr(control.AttachModes))
	cmd.Flags().BoolVar(&force, "force", false, "allow fastpath on a bridge with enable_icc=false")
	cmd.RegisterFlagCompletionFunc("attach-mode", oneOf(control.AttachModes...))
	return cmd
}

func newObserveCmd(g *globalFlags) *cobra.Command {
	var (
		req control.ObserveRequest
		out outputFlag
	)
	cmd := &cobra.Command{
		Use:   "observe [CONTAINER] [--pid N | --netns PATH]",
		Short: "Count the traffic of a container nswire did not wire (Docker-wired or by hand)",
		Long: `Find the host-side peer of the container's interface (the peer_ifindex that
ethtool -S shows, read through netlink) and attach only the eBPF counters to
it. The container's wiring is not changed; nswire unobserve removes the
counters again.`,
		Args: cobra.MaximumNArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				req.Target.Container = args[0]
			}
			if err := req.Target.Validate(); err != nil {
				return err
			}
			return out.validate()
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := g.manager(cmd)
			if err != nil {
				return err
			}
			defer m.Close()
			rec, already, err := m.Observe(cmd.Context(), req)
			if err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(cmd.OutOrStdout(), rec)
			}
			verb := "observing"
			if already {
				verb = "already observing"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s (%s) via host %s (ifindex %d), attached with %s\n", verb, rec.DisplayName(), rec.IfName, rec.Address, rec.HostIf, rec.HostIfindex, rec.AttachMode)
			return nil
		},
	}
	cmd.Flags().IntVar(&req.Target.PID, "pid", 0, "observe the network namespace of this process")
	cmd.Flags().StringVar(&req.Target.NetnsPath, "netns", "", "observe the network namespace at this path")
	cmd.Flags().StringVar(&req.IfName, "ifname", "eth0", "interface inside the container whose traffic to count")
	cmd.Flags().StringVar(&req.AttachMode, "attach-mode", "auto", "how to attach programs: "+joinOr(control.AttachModes))
	out.register(cmd)
	return cmd
}

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
