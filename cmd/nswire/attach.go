package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/state"

	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
)

func newAttachCmd(g *globalFlags) *cobra.Command {
	var (
		flags   control.AttachFlags
		flowsOn bool
		ips     addrValues
		ip6s    addrValues
		req     control.AttachRequest
		dryRun  bool
		out     outputFlag
		watch   bool
		so      = &statsOptions{}
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
				flags.Target.Container = args[0]
			}
			flags.NoFlows = !flowsOn
			flags.Target.PIDGiven = cmd.Flags().Changed("pid")
			flags.Target.NetnsGiven = cmd.Flags().Changed("netns")
			var err error
			if flags.IP, err = control.OneAddress("ip", ips); err != nil {
				return err
			}
			if flags.IP6, err = control.OneAddress("ip6", ip6s); err != nil {
				return err
			}
			if req, err = flags.Parse(); err != nil {
				return err
			}
			if watch && (dryRun || !req.Mode.Programs()) {
				return fmt.Errorf("--watch shows live counters: it needs a mode that counts (observe or fastpath) and no --dry-run")
			}
			if err := so.validate(); err != nil {
				return err
			}
			return out.validate()
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withManager(cmd, func(m *control.Manager) error {
				start := time.Now()
				res, err := m.Attach(cmd.Context(), req, dryRun)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if dryRun {
					if out.format == "json" {
						return writeJSON(w, dryRunPlan{Target: res.Record.DisplayName(), Record: res.Record, Steps: res.Plan, Repair: res.Repaired, Unchanged: res.Unchanged})
					}
					for _, s := range res.Repaired {
						fmt.Fprintf(w, "# would repair: %s\n", s)
					}
					if res.Unchanged {
						fmt.Fprintf(w, "# %s is already attached and complete: nothing would change\n", res.Record.DisplayName())
					}
					for _, s := range res.Plan {
						fmt.Fprintln(w, s.Command)
					}
					return nil
				}
				if len(res.Repaired) > 0 {
					// On stderr with -o json, whose stdout is the record.
					rw := w
					if out.format == "json" {
						rw = cmd.ErrOrStderr()
					}
					fmt.Fprintf(rw, "%s was attached but incomplete; repaired: %s\n", res.Record.DisplayName(), strings.Join(res.Repaired, "; "))
				}
				if out.format == "json" {
					return writeJSON(w, res.Record)
				}
				r := res.Record
				if len(res.Repaired) > 0 {
					return nil
				}
				if res.Unchanged {
					fmt.Fprintf(w, "%s is already attached: %s %s on %s via %s, mode %s (nothing changed)\n", r.DisplayName(), r.IfName, addresses(r), r.Bridge, r.HostIf, r.Mode)
					return nil
				}
				fmt.Fprintf(w, "attached %s: %s %s (mac %s) on %s via %s, gateway %s, mode %s, in %s\n",
					r.DisplayName(), r.IfName, addresses(r), r.MAC, r.Bridge, r.HostIf, gateways(r), r.Mode, time.Since(start).Round(100*time.Microsecond))
				if watch {
					// Ctrl-C ends the watch; the container stays attached.
					so.watch = true
					return runStats(cmd.Context(), w, m, []string{r.ID}, so)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&flags.Target.PID, "pid", 0, "wire the network namespace of this process instead of a container")
	f.StringVar(&flags.Target.NetnsPath, "netns", "", "wire the network namespace at this path (e.g. /run/netns/x)")
	f.StringVar(&flags.Bridge, "bridge", "", "bridge to enslave the host veth to (default docker0)")
	f.StringVar(&flags.Network, "network", "", "a Docker bridge network (name or ID) whose bridge to use, instead of --bridge")
	f.StringVar(&flags.IfName, "ifname", "eth0", "name of the interface inside the container")
	f.Var(&ips, "ip", "address in CIDR form (default: the highest free address of the bridge's subnet)")
	f.Var(&ip6s, "ip6", "IPv6 address in CIDR form, on a bridge with a global IPv6 address (default: the highest free address of its prefix)")
	f.StringVar(&flags.Gateway, "gateway", "", "default gateway (default: the bridge's address)")
	f.StringVar(&flags.MAC, "mac", "", "MAC of the container interface (default: derived from the container ID)")
	f.IntVar(&flags.MTU, "mtu", 0, "MTU of the veth pair: the bridge's (default); another value is refused, as it would change the shared bridge")
	f.StringVar(&flags.Mode, "mode", string(datapath.Observe), "datapath mode: "+joinOr(datapath.Modes))
	registerHookFlag(cmd, &flags.Hook)
	f.BoolVar(&flags.Force, "force", false, "allow --mode fastpath on a bridge with enable_icc=false")
	f.BoolVar(&flowsOn, "flows", true, "keep per-flow entries (nswire flows); --flows=false counts the traffic without them")
	f.BoolVar(&dryRun, "dry-run", false, "print the plan as the equivalent ip commands and change nothing")
	f.BoolVarP(&watch, "watch", "w", false, "after wiring, stay in the live stats of the container (Ctrl-C leaves it attached)")
	so.register(cmd, false)
	out.register(cmd)
	cmd.RegisterFlagCompletionFunc("mode", oneOf(datapath.Modes...))
	return cmd
}

// gateways is a record's IPv4 gateway, and its IPv6 one after a comma when
// it has one (as addresses).
func gateways(r *state.Record) string {
	if r.Gateway6.IsValid() {
		return r.Gateway.String() + "," + r.Gateway6.String()
	}
	return r.Gateway.String()
}

// addrValues is an address flag (--ip, --ip6) that keeps every value it is
// given, so that giving it twice is an error naming both
// (control.OneAddress) instead of the last one winning silently.
type addrValues []string

func (v *addrValues) String() string     { return strings.Join(*v, ",") }
func (v *addrValues) Set(s string) error { *v = append(*v, s); return nil }
func (v *addrValues) Type() string       { return "string" }

// dryRunPlan is `attach --dry-run -o json`: what would be recorded and the
// steps, each with its equivalent command.
type dryRunPlan struct {
	Target string             `json:"target"`
	Record *state.Record      `json:"record"`
	Steps  []control.PlanStep `json:"steps"`
	// Repair lists what of an existing attachment would be repaired;
	// Unchanged says it is complete and nothing would change.
	Repair    []string `json:"repair,omitempty"`
	Unchanged bool     `json:"unchanged,omitempty"`
}

// completeNoneContainers completes the names of running --network=none
// containers.
func completeNoneContainers(g *globalFlags) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		g.withManager(cmd, func(m *control.Manager) error {
			rows, err := m.List(cmd.Context(), true)
			for _, r := range rows {
				if !r.Wired {
					names = append(names, r.Name)
				}
			}
			return err
		})
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
