package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
)

func newAttachCmd(g *globalFlags) *cobra.Command {
	var (
		req    control.AttachRequest
		dryRun bool
		out    outputFlag
		watch  bool
		so     = &statsOptions{}
	)
	cmd := &cobra.Command{
		Use:   "attach [CONTAINER] [--pid N | --netns PATH]",
		Short: "Wire a --network=none container (or a namespace) into a bridge",
		Long: `Wire a container started with --network=none into a Linux bridge: a veth pair
whose host end is enslaved to the bridge and whose peer becomes the
container's eth0, with an address, a default route through the bridge's
gateway and, unless --mode off, the eBPF counters on the host end.

Every step is undone if a later one fails. Attaching an attached container
again with the same settings changes nothing.`,
		Example: `  nswire attach web
  nswire attach web --ip 172.17.0.10/16 --gateway 172.17.0.1
  nswire attach --pid 4242 --bridge br0
  nswire attach web --dry-run`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeNoneContainers(g),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				req.Target.Container = args[0]
			}
			req.Defaults()
			if err := req.Validate(); err != nil {
				return err
			}
			if watch && (dryRun || req.Mode == control.ModeOff) {
				return fmt.Errorf("--watch shows live counters: it needs a mode that counts (observe or fastpath) and no --dry-run")
			}
			if err := so.validate(); err != nil {
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
			start := time.Now()
			res, err := m.Attach(cmd.Context(), req, dryRun)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if dryRun {
				for _, c := range res.Plan {
					fmt.Fprintln(w, c)
				}
				return nil
			}
			if out.format == "json" {
				return writeJSON(w, res.Record)
			}
			r := res.Record
			if res.Unchanged {
				fmt.Fprintf(w, "%s is already attached: %s %s on %s via %s, mode %s (nothing changed)\n", r.DisplayName(), r.IfName, r.Address, r.Bridge, r.HostIf, r.Mode)
				return nil
			}
			fmt.Fprintf(w, "attached %s: %s %s (mac %s) on %s via %s, gateway %s, mode %s, in %s\n",
				r.DisplayName(), r.IfName, r.Address, r.MAC, r.Bridge, r.HostIf, r.Gateway, r.Mode, time.Since(start).Round(100*time.Microsecond))
			if watch {
				// Ctrl-C ends the watch; the container stays attached.
				so.watch = true
				return runStats(cmd.Context(), w, m, []string{r.ID}, so)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&req.Target.PID, "pid", 0, "wire the network namespace of this process instead of a container")
	f.StringVar(&req.Target.NetnsPath, "netns", "", "wire the network namespace at this path (e.g. /run/netns/x)")
	f.StringVar(&req.Bridge, "bridge", "docker0", "bridge to enslave the host veth to")
	f.StringVar(&req.IfName, "ifname", "eth0", "name of the interface inside the container")
	f.StringVar(&req.IP, "ip", "", "address in CIDR form (default: the highest free address of the bridge's subnet)")
	f.StringVar(&req.Gateway, "gateway", "", "default gateway (default: the bridge's address)")
	f.StringVar(&req.MAC, "mac", "", "MAC of the container interface (default: derived from the container ID)")
	f.IntVar(&req.MTU, "mtu", 0, "MTU of the veth pair (default: the bridge's)")
	f.StringVar(&req.Mode, "mode", control.ModeObserve, "datapath mode: "+joinOr(control.Modes))
	f.StringVar(&req.AttachMode, "attach-mode", "auto", "how to attach programs: "+joinOr(control.AttachModes)+" (auto: tcx, legacy tc only where tcx is unsupported)")
	f.BoolVar(&req.Force, "force", false, "allow --mode fastpath on a bridge with enable_icc=false")
	f.BoolVar(&dryRun, "dry-run", false, "print the plan as the equivalent ip commands and change nothing")
	f.BoolVarP(&watch, "watch", "w", false, "after wiring, stay in the live stats of the container (Ctrl-C leaves it attached)")
	so.register(cmd, false)
	out.register(cmd)
	cmd.RegisterFlagCompletionFunc("mode", oneOf(control.Modes...))
	cmd.RegisterFlagCompletionFunc("attach-mode", oneOf(control.AttachModes...))
	return cmd
}

// completeNoneContainers completes the names of running --network=none
// containers.
func completeNoneContainers(g *globalFlags) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		m, err := g.manager(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer m.Close()
		rows, err := m.List(cmd.Context(), true)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, r := range rows {
			if r.Record == nil {
				names = append(names, r.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
