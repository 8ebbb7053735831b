package state

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ServeDir is where `nswire serve` keeps its run files under a state dir:
// its one-instance lock, its status and its action log.
func ServeDir(stateDir string) string { return filepath.Join(stateDir, "serve") }

// ServeLockPath is serve's one-instance lock: an flock held for serve's
// life on a file that holds its PID.
func ServeLockPath(stateDir string) string { return filepath.Join(ServeDir(stateDir), "serve.pid") }

// ServeRunningPID returns the PID of the serve running on stateDir, or 0
// when none is (nobody holds the lock).
func ServeRunningPID(stateDir string) int {
	f, err := os.Open(ServeLockPath(stateDir))
	if err != nil {
		return 0
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return 0
	}
	data, _ := os.ReadFile(ServeLockPath(stateDir))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}
