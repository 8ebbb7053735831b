package control

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/nswire/nswire/bpf"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/netops"
)

// Config is where nswire keeps its state and how it reports progress.
type Config struct {
	StateDir string    // default state.DefaultStateDir
	PinDir   string    // default bpf pin dir
	Verbose  io.Writer // per-step progress when non-nil
	// DesiredDir, when set, is where attach records the containers to keep
	// wired and detach removes them (state.DesiredStore); "" records nothing.
	DesiredDir string
	// NewEngine creates the container engine (control/dockerengine.New for
	// Docker) on first use. Without it (the CNI plugin) nswire never asks
	// an engine: container targets cannot be resolved, and what would be
	// learnt from the engine works as with one that is not reachable.
	NewEngine func() (Engine, error)
	// DockerTimeout bounds each call to the Docker engine (default
	// DefaultDockerTimeout): a hung engine is an error naming its address,
	// never a hang.
	DockerTimeout time.Duration
	// FailAfterStep, when > 0, makes an attach fail right after its step
	// number FailAfterStep succeeded: a fault-injection hook for the
	// rollback tests.
	FailAfterStep int
	// CrashAfterStep, when > 0, makes the process exit with status 86 right
	// after that step of an attach or detach: the crash-safety tests' hook.
	CrashAfterStep int
}

// Manager performs attaches and detaches. It is not safe for concurrent use;
// separate processes coordinate through the state lock.
type Manager struct {
	cfg       Config
	store     state.Store
	host      *netlink.Handle
	hostNS    netns.NsHandle
	hostInode uint64
	engine    Engine // created by Config.NewEngine on first use
	dockerOK  bool   // the engine answered this process already
	dp        datapathOps
	conflicts map[string]string // addresses an ARP probe found in use, and by whom
	afterStep func(k int)       // test hook: runs after step k of an attach succeeded
	// engineTimeout is the last Docker deadline error of the states of
	// records (see newTruth), and when it happened.
	engineTimeout   error
	engineTimeoutAt time.Time
}

// NewManager opens the host namespace's netlink handle. It checks the
// capabilities nswire needs and names the missing ones.
func NewManager(cfg Config) (*Manager, error) {
	if err := CheckCapabilities(); err != nil {
		return nil, err
	}
	return openManager(cfg)
}

// OpenForDoctor is NewManager without the capability check, so that doctor
// can explain a missing privilege instead of stopping at it.
func OpenForDoctor(cfg Config) (*Manager, error) { return openManager(cfg) }

func openManager(cfg Config) (*Manager, error) {
	if cfg.StateDir == "" {
		cfg.StateDir = state.DefaultStateDir
	}
	if cfg.PinDir == "" {
		cfg.PinDir = bpf.DefaultPinDir
	}
	hostNS, h, err := netops.HostNetns()
	if err != nil {
		return nil, err
	}
	ino, err := netops.Inode(hostNS)
	if err != nil {
		h.Close()
		hostNS.Close()
		return nil, err
	}
	m := &Manager{cfg: cfg, store: state.Store{Dir: cfg.StateDir}, host: h, hostNS: hostNS, hostInode: ino}
	m.dp = newDatapathOps(cfg.PinDir)
	return m, nil
}

// Close releases the handles.
func (m *Manager) Close() {
	if m.dp != nil {
		m.dp.close()
	}
	if m.engine != nil {
		m.engine.Close()
	}
	m.host.Close()
	m.hostNS.Close()
}

// Store returns the record store.
func (m *Manager) Store() state.Store { return m.store }

// capability names and numbers nswire needs, with why.
var neededCaps = []struct {
	cap  uint
	name string
	why  string
}{
	{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN", "create veths, set addresses and routes, attach tc programs"},
	{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN", "open other processes' network namespaces and mount bpffs"},
	{unix.CAP_SYS_PTRACE, "CAP_SYS_PTRACE", "open /proc/PID/ns/net of processes of other users"},
	{unix.CAP_BPF, "CAP_BPF", "load and pin eBPF programs and maps"},
}

// CheckCapabilities returns an error naming every capability nswire needs
// that the process does not have in its effective set.
func CheckCapabilities() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3, Pid: 0}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	var missing []string
	for _, c := range neededCaps {
		if data[c.cap/32].Effective&(1<<(c.cap%32)) == 0 {
			missing = append(missing, fmt.Sprintf("%s (to %s)", c.name, c.why))
		}
	}
	if len(missing) > 0 {
		hint := "run as root (sudo nswire …)"
		if os.Geteuid() == 0 {
			hint = "the process is root but lacks them: run it outside a restricted container"
		}
		return fmt.Errorf("missing capabilities: %v; %s", missing, hint)
	}
	return nil
}

// step is one named, undoable action of a plan.
type step struct {
	name string
	cmd  string // the equivalent shell command, for --dry-run
	do   func() error
	undo func() error
}

// errInjected is the fault injected by Config.FailAfterStep.
type errInjected struct{ step string }

func (e errInjected) Error() string { return "injected fault after step " + e.step }

// run performs steps in order; on the first failure it undoes the steps done
// so far in reverse order and returns the failure (with any undo failures).
func (m *Manager) run(steps []step) error {
	for i, s := range steps {
		start := time.Now()
		err := s.do()
		if m.cfg.Verbose != nil {
			status := "ok"
			if err != nil {
				status = "FAILED"
			}
			fmt.Fprintf(m.cfg.Verbose, "step %d/%d %-10s %-6s %8s  %s\n", i+1, len(steps), s.name, status, time.Since(start).Round(time.Microsecond), s.cmd)
		}
		if err == nil {
			m.crashPoint(i + 1)
			if m.afterStep != nil {
				m.afterStep(i + 1)
			}
		}
		if err == nil && m.cfg.FailAfterStep == i+1 {
			err = errInjected{s.name}
			i++ // this step succeeded: undo it too
		}
		if err != nil {
			return m.rollback(steps[:i], fmt.Errorf("%s: %w", s.name, err))
		}
	}
	return nil
}

func (m *Manager) rollback(done []step, cause error) error {
	for j := len(done) - 1; j >= 0; j-- {
		if done[j].undo == nil {
			continue
		}
		if err := done[j].undo(); err != nil {
			cause = fmt.Errorf("%w; and undo of %s failed: %v", cause, done[j].name, err)
		} else if m.cfg.Verbose != nil {
			fmt.Fprintf(m.cfg.Verbose, "undo %-10s ok\n", done[j].name)
		}
	}
	return cause
}

// CrashExitCode is the exit status of a process stopped by CrashAfterStep.
const CrashExitCode = 86

// crashPoint ends the process abruptly, as SIGKILL would, when the crash
// test hook asks for it at step k.
func (m *Manager) crashPoint(k int) {
	if m.cfg.CrashAfterStep == k {
		os.Exit(CrashExitCode)
	}
}

// Host is the netlink handle of the host's network namespace.
func (m *Manager) Host() *netlink.Handle { return m.host }
