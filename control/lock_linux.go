package control

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is an exclusive flock on a file in the state directory. The kernel
// drops it when its holder dies, so a killed nswire never blocks the next.
type Lock struct{ f *os.File }

// ErrLockTimeout is returned when another nswire holds the lock too long.
var ErrLockTimeout = errors.New("another nswire process holds the state lock")

// AcquireLock takes the exclusive lock dir/name, waiting at most timeout.
func AcquireLock(dir, name string, timeout time.Duration) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w (%s) for over %s", ErrLockTimeout, f.Name(), timeout)
		}
		time.Sleep(2 * time.Millisecond)
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
