package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is an exclusive flock on a file in the state directory. The kernel
// drops it when its holder dies, so a killed nswire never blocks the next.
type Lock struct{ f *os.File }

// ErrLockTimeout is returned when another nswire holds the lock too long.
var ErrLockTimeout = errors.New("another nswire process holds the state lock")

// AcquireLock takes the exclusive lock dir/name. It waits while the lock
// changes hands (many nswire processes queued behind each other all get
// their turn) and gives up when one holder has kept it for timeout: a hung
// holder is reported by PID and command line. A killed holder never blocks:
// the kernel drops its flock with its last descriptor.
func AcquireLock(dir, name string, timeout time.Duration) (*Lock, error) {
	if err := EnsureDir(dir); err != nil {
		return nil, err
	}
	// Never through a symlink: one planted at the lock's path would have
	// nswire truncate and write the file it points to.
	f, err := openNoFollow(filepath.Join(dir, name), unix.O_RDWR|unix.O_CREAT, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	// Wait in the kernel (a blocking flock on its own thread), not by
	// polling: 50 queued processes polling every few milliseconds starve
	// the holder on a small machine.
	got := make(chan error, 1)
	go func() {
		for {
			err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
			if !errors.Is(err, unix.EINTR) {
				got <- err
				return
			}
		}
	}()
	deadline := time.Now().Add(timeout)
	holder := lockHolder(f.Name())
	check := time.NewTicker(20 * time.Millisecond)
	defer check.Stop()
	for {
		select {
		case err := <-got:
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
			}
			// Say who holds it, for the message of a process that times out.
			if f.Truncate(0) == nil {
				f.WriteAt(fmt.Appendf(nil, "%d %d\n", os.Getpid(), time.Now().UnixNano()), 0)
			}
			return &Lock{f: f}, nil
		case <-check.C:
		}
		if h := lockHolder(f.Name()); h != holder { // the lock changed hands
			holder, deadline = h, time.Now().Add(timeout)
			continue
		}
		if time.Now().Before(deadline) {
			continue
		}
		// Give up; should the kernel grant the lock later, drop it at once.
		go func() {
			if <-got == nil {
				unix.Flock(int(f.Fd()), unix.LOCK_UN)
			}
			f.Close()
		}()
		who := ""
		if pid, _ := strconv.Atoi(strings.Fields(holder + " 0")[0]); pid > 0 {
			who = fmt.Sprintf(", held by pid %d", pid)
			if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
				who += " (" + strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " ")) + ")"
			}
		}
		return nil, fmt.Errorf("%w (%s%s) for over %s: wait for it to finish, or stop it; a killed holder releases the lock at once", ErrLockTimeout, f.Name(), who, timeout)
	}
}

// Release drops the lock. Safe on a nil Lock.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}

// lockHolder returns what the holder of the lock wrote into it: its PID
// and when it took the lock; a change means the lock changed hands.
func lockHolder(path string) string {
	b, _ := readNoFollow(path)
	return strings.TrimSpace(string(b))
}
