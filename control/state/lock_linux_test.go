package state

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestLockQueueDoesNotTimeOut: waiters behind a queue of holders that each
// keep the lock for less than the timeout all get it, however long the
// queue, because the timeout counts from the last change of hands.
func TestLockQueueDoesNotTimeOut(t *testing.T) {
	dir := t.TempDir()
	const timeout = 150 * time.Millisecond
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 { // 8 × 60 ms = 480 ms of queue, > 3 × timeout
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := AcquireLock(dir, "lock", timeout)
			if err != nil {
				errs <- err
				return
			}
			time.Sleep(60 * time.Millisecond)
			l.Release()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestLockHungHolderTimesOut: a holder that keeps the lock makes the next
// one fail after the timeout with an error naming its PID and command.
func TestLockHungHolderTimesOut(t *testing.T) {
	dir := t.TempDir()
	l, err := AcquireLock(dir, "lock", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	start := time.Now()
	_, err = AcquireLock(dir, "lock", 100*time.Millisecond)
	if !errors.Is(err, ErrLockTimeout) || !strings.Contains(err.Error(), "held by pid "+itoa(os.Getpid())) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
		t.Fatalf("timed out after %s", d)
	}
}

// TestLockKilledHolderReleases: a process killed with SIGKILL while holding
// the lock does not block the next.
func TestLockKilledHolderReleases(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "lock")
	os.WriteFile(path, nil, 0o600)
	holder := exec.Command("flock", "-o", path, "sleep", "60")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Wait()
	for deadline := time.Now().Add(5 * time.Second); exec.Command("flock", "-n", path, "true").Run() == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("flock never took the lock")
		}
	}
	got := make(chan error, 1)
	go func() {
		l, err := AcquireLock(dir, "lock", 10*time.Second)
		l.Release()
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	holder.Process.Signal(syscall.SIGKILL)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("lock still blocked 2 s after its holder was killed")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
