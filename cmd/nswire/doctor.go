package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/dockerengine"
)

func newDoctorCmd(g *globalFlags) *cobra.Command {
	var (
		out    outputFlag
		bridge string
	)
	cmd := &cobra.Command{
		Use:   "doctor [TARGET]",
		Short: "Check the machine (or one attached target) and explain each problem with its fix",
		Long: `Without TARGET, check the machine before anything is changed: root or the
capabilities nswire needs, bpffs, tcx support (else legacy tc), kernel BTF,
the bridge (present, up, with an address), the Docker engine and its API
version, br_netfilter, the free addresses left in the bridge's subnet, and
nswire's own state (corrupt records, interrupted detaches, stale records).

With TARGET (a container name or ID, or a record ID), check that attached
target end to end: its namespace, both ends of the veth up, the host end on
the bridge, address and default route inside, the gateway answering ARP,
the programs attached as recorded and the counters moving.

doctor changes nothing. Exit status 1 when any check fails; warnings do not
fail.`,
		Example: `  nswire doctor
  nswire doctor --bridge br0 -o json
  nswire doctor web`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeAttached(g),
		PreRunE:           func(*cobra.Command, []string) error { return out.validate() },
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := control.OpenForDoctor(control.Config{StateDir: g.stateDir, PinDir: g.pinDir, NewEngine: dockerengine.New})
			if err != nil {
				return err
			}
			defer m.Close()
			var rep *control.DoctorReport
			if len(args) == 1 {
				rep = m.DoctorTarget(cmd.Context(), args[0])
			} else {
				rep = m.DoctorHost(cmd.Context(), bridge)
			}
			w := cmd.OutOrStdout()
			if out.format == "json" {
				if err := writeJSON(w, rep); err != nil {
					return err
				}
			} else {
				for _, c := range rep.Checks {
					fmt.Fprintf(w, "%-4s  %-13s %s\n", strings.ToUpper(c.Status), c.Name, c.Detail)
					if c.Fix != "" && c.Status != control.CheckOK {
						fmt.Fprintf(w, "      %-13s fix: %s\n", "", c.Fix)
					}
				}
			}
			if !rep.OK {
				var failed []string
				for _, c := range rep.Checks {
					if c.Status == control.CheckFail {
						failed = append(failed, c.Name)
					}
				}
				return errors.New("doctor found problems: " + strings.Join(failed, ", ") + " (each FAIL line says how to fix it)")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&bridge, "bridge", "docker0", "bridge to check")
	out.register(cmd)
	return cmd
}
