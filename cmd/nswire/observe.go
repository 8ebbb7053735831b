package main

import (
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
)

func newObserveCmd(g *globalFlags) *cobra.Command {
	var (
		target control.TargetSpec
		ifName string
		hook   string
		req    control.ObserveRequest
		out    outputFlag
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
				target.Container = args[0]
			}
			target.PIDGiven = cmd.Flags().Changed("pid")
			target.NetnsGiven = cmd.Flags().Changed("netns")
			var err error
			if req, err = control.ParseObserve(target, ifName, hook); err != nil {
				return err
			}
			return out.validate()
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withManager(cmd, func(m *control.Manager) error {
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
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s (%s) via host %s (ifindex %d), attached with %s\n", verb, rec.DisplayName(), rec.IfName, addrOrNone(rec.Address), rec.HostIf, rec.HostIfindex, rec.Hook)
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&target.PID, "pid", 0, "observe the network namespace of this process")
	cmd.Flags().StringVar(&target.NetnsPath, "netns", "", "observe the network namespace at this path")
	cmd.Flags().StringVar(&ifName, "ifname", "eth0", "interface inside the container whose traffic to count")
	registerHookFlag(cmd, &hook)
	out.register(cmd)
	return cmd
}

// addrOrNone is an address in CIDR form, or "no address".
func addrOrNone(p netip.Prefix) string {
	if !p.IsValid() {
		return "no address"
	}
	return p.String()
}
