package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nswire/nswire/control/state"
)

// Container states in the status file.
const (
	StateWired   = "wired"
	StateWaiting = "stopped, waiting"
	StateUnwired = "unwired"
)

// ContainerStatus is what serve knows of one managed container.
type ContainerStatus struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// Status is serve's status file: who runs, when it last reconciled
// everything, and every container it manages.
type Status struct {
	PID               int                         `json:"pid"`
	Started           time.Time                   `json:"started"`
	LastFullReconcile time.Time                   `json:"lastFullReconcile"`
	Containers        map[string]*ContainerStatus `json:"containers"`
}

func statusPath(stateDir string) string { return filepath.Join(Dir(stateDir), "status.json") }

func writeStatus(stateDir string, st *Status) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(Dir(stateDir), ".status-*")
	if err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), statusPath(stateDir))
	}
	if err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// ReadStatus returns the status of the serve running on stateDir, or
// (nil, nil) when no serve runs there (no status file, or its process is
// gone).
func ReadStatus(stateDir string) (*Status, error) {
	data, err := os.ReadFile(statusPath(stateDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read serve status: %w", err)
	}
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read serve status: %w", err)
	}
	if RunningPID(stateDir) != st.PID {
		return nil, nil
	}
	return &st, nil
}

func lockPath(stateDir string) string { return state.ServeLockPath(stateDir) }

// instanceLock is the one-instance lock of serve: an flock on serve.pid,
// which holds the holder's PID. The kernel drops it when serve dies.
type instanceLock struct{ f *os.File }

// acquireInstance takes the lock or names the PID of the serve that holds it.
func acquireInstance(stateDir string) (*instanceLock, error) {
	if err := os.MkdirAll(Dir(stateDir), 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", Dir(stateDir), err)
	}
	f, err := os.OpenFile(lockPath(stateDir), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open serve lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := "another process"
			if pid := RunningPID(stateDir); pid > 0 {
				who = "pid " + strconv.Itoa(pid)
			}
			return nil, fmt.Errorf("another nswire serve is already running on %s (%s): stop it first (`systemctl stop nswire`, or kill that process)", stateDir, who)
		}
		return nil, fmt.Errorf("lock %s: %w", lockPath(stateDir), err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &instanceLock{f: f}, nil
}

func (l *instanceLock) release() {
	l.f.Truncate(0)
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
}

// RunningPID returns the PID of the serve running on stateDir, or 0 when
// none is (the lock is free).
func RunningPID(stateDir string) int { return state.ServeRunningPID(stateDir) }
