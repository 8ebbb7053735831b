package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/dockerengine"
	"github.com/nswire/nswire/control/state"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type globalFlags struct {
	stateDir   string
	pinDir     string
	desiredDir string
	verbose    bool
	// dockerTimeout bounds each call to the Docker engine.
	dockerTimeout time.Duration
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "nswire",
		Short: "Wire --network=none containers into a bridge and count their traffic with eBPF",
		Long: `nswire gives a container started with --network=none a network on a Linux
bridge such as docker0 (veth pair, address, default route) through netlink,
with rollback, and attaches eBPF programs to the host-side veth that count
the container's traffic exactly and can fast-path container-to-container
packets past the bridge.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", state.DefaultStateDir, "directory of nswire's state records")
	root.PersistentFlags().StringVar(&g.pinDir, "pin-dir", "", "bpffs directory of nswire's pinned programs, maps and links (default /sys/fs/bpf/nswire)")
	root.PersistentFlags().StringVar(&g.desiredDir, "desired-dir", "", "directory of the desired state that survives a reboot (default "+state.DefaultDesiredDir+", or STATE-DIR.desired with --state-dir)")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "print each step as it runs, with its duration")
	root.PersistentFlags().DurationVar(&g.dockerTimeout, "docker-timeout", control.DefaultDockerTimeout, "give up on a Docker engine that does not answer a call within this time")
	root.PersistentFlags().MarkHidden("state-dir")
	root.PersistentFlags().MarkHidden("pin-dir")
	root.PersistentFlags().MarkHidden("desired-dir")
	root.AddCommand(
		newAttachCmd(g),
		newDetachCmd(g),
		newLsCmd(g),
		newBenchCmd(g),
		newDoctorCmd(g),
		newGcCmd(g),
		newStatsCmd(g),
		newTopCmd(g),
		newModeCmd(g),
		newObserveCmd(g),
		newUnobserveCmd(g),
		newMetricsCmd(g),
		newFlowsCmd(g),
		newDropsCmd(g),
		newServeCmd(g),
		newEventsCmd(g),
		newVersionCmd(),
	)
	return root
}

// manager builds a control.Manager from the global flags. The hidden
// NSWIRE_FAIL_AFTER_STEP / NSWIRE_CRASH_AFTER_STEP variables are the test
// suite's fault-injection hooks.
func (g *globalFlags) manager(cmd *cobra.Command) (*control.Manager, error) {
	if g.dockerTimeout <= 0 {
		return nil, fmt.Errorf("--docker-timeout %s is not a duration nswire can wait: give a positive one, e.g. 10s", g.dockerTimeout)
	}
	cfg := control.Config{StateDir: g.stateDir, PinDir: g.pinDir, NewEngine: dockerengine.New, DockerTimeout: g.dockerTimeout, DesiredDir: g.desired()}
	if g.verbose {
		cfg.Verbose = cmd.ErrOrStderr()
	}
	fmt.Sscan(os.Getenv("NSWIRE_FAIL_AFTER_STEP"), &cfg.FailAfterStep)
	fmt.Sscan(os.Getenv("NSWIRE_CRASH_AFTER_STEP"), &cfg.CrashAfterStep)
	return control.NewManager(cfg)
}

// withManager opens the manager, runs fn with it and closes it: the one
// place commands get a manager.
func (g *globalFlags) withManager(cmd *cobra.Command, fn func(*control.Manager) error) error {
	m, err := g.manager(cmd)
	if err != nil {
		return err
	}
	defer m.Close()
	return fn(m)
}

// registerHookFlag adds --hook (how programs are hooked into the host veth)
// and its old name --attach-mode, hidden, to the same value.
func registerHookFlag(cmd *cobra.Command, hook *string) {
	f := cmd.Flags()
	f.StringVar(hook, "hook", string(datapath.HookAuto), "how to install the programs: "+joinOr(datapath.Hooks)+" (auto: tcx where RCU grace periods are expedited, else legacy tc; see nswire doctor)")
	f.StringVar(hook, "attach-mode", string(datapath.HookAuto), "old name of --hook")
	f.MarkHidden("attach-mode")
	cmd.RegisterFlagCompletionFunc("hook", oneOf(datapath.Hooks...))
}

// desired is the desired-state directory: --desired-dir; else, with a
// --state-dir of its own (tests), STATE-DIR.desired; else the default.
func (g *globalFlags) desired() string {
	switch {
	case g.desiredDir != "":
		return g.desiredDir
	case g.stateDir != state.DefaultStateDir:
		// Beside the state dir, not in it: its listing stays records only.
		return filepath.Clean(g.stateDir) + ".desired"
	}
	return state.DefaultDesiredDir
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print nswire's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "nswire", version)
			return nil
		},
	}
}

// outputFlag is a validated -o table|json flag.
type outputFlag struct{ format string }

func (o *outputFlag) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "table", "output format: table or json")
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
}

func (o *outputFlag) validate() error {
	switch o.format {
	case "table", "json":
		return nil
	}
	return fmt.Errorf("-o %q is not a known output format: use table or json", o.format)
}

func writeJSONCompact(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// oneOf returns a flag completion of fixed words.
func oneOf[T ~string](words ...T) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	s := make([]string, len(words))
	for i, w := range words {
		s[i] = string(w)
	}
	return cobra.FixedCompletions(s, cobra.ShellCompDirectiveNoFileComp)
}

func joinOr[T ~string](words []T) string {
	s := make([]string, len(words))
	for i, w := range words {
		s[i] = string(w)
	}
	return strings.Join(s, "|")
}
