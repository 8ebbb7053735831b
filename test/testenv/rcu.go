//go:build linux

package testenv

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// RCUExpeditedPath is the kernel's switch between normal and expedited RCU
// grace periods for synchronize_rcu() (1 = expedited: microseconds instead
// of milliseconds). Distributions boot with 0; this project's VMs with 1.
const RCUExpeditedPath = "/sys/kernel/rcu_expedited"

// RCUExpedited sets /sys/kernel/rcu_expedited for a benchmark and puts the
// value it found back: at t.Cleanup, and also when the test process gets
// SIGINT, SIGTERM or SIGHUP before that (then it restores and exits 1). Only
// SIGKILL can leave the setting changed; Original says what to restore by
// hand (echo N > /sys/kernel/rcu_expedited).
type RCUExpedited struct {
	tb   testing.TB
	orig string
	mu   sync.Mutex
}

// UseRCUExpedited reads the current setting and arranges its restoration.
// It skips (or, in CI, fails) t when not root or when the file cannot be
// read or written.
func UseRCUExpedited(t testing.TB) *RCUExpedited {
	t.Helper()
	RequireRoot(t)
	b, err := os.ReadFile(RCUExpeditedPath)
	if err != nil {
		Unavailable(t, "%s: %v", RCUExpeditedPath, err)
	}
	r := &RCUExpedited{tb: t, orig: strings.TrimSpace(string(b))}
	if err := os.WriteFile(RCUExpeditedPath, []byte(r.orig), 0); err != nil {
		Unavailable(t, "write %s: %v", RCUExpeditedPath, err)
	}
	sigs := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		select {
		case s := <-sigs:
			err := r.restore()
			fmt.Fprintf(os.Stderr, "testenv: %v: restored %s to %s (%v)\n", s, RCUExpeditedPath, r.orig, err)
			os.Exit(1)
		case <-done:
		}
	}()
	t.Cleanup(func() {
		signal.Stop(sigs)
		close(done)
		if err := r.restore(); err != nil {
			t.Errorf("testenv: restore %s to %s: %v (do it by hand)", RCUExpeditedPath, r.orig, err)
		}
	})
	return r
}

// Original reports the setting found at UseRCUExpedited.
func (r *RCUExpedited) Original() bool { return r.orig != "0" }

// Set switches expedited grace periods on or off.
func (r *RCUExpedited) Set(on bool) {
	r.tb.Helper()
	v := "0"
	if on {
		v = "1"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := os.WriteFile(RCUExpeditedPath, []byte(v), 0); err != nil {
		r.tb.Fatalf("testenv: set %s to %s: %v", RCUExpeditedPath, v, err)
	}
}

func (r *RCUExpedited) restore() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return os.WriteFile(RCUExpeditedPath, []byte(r.orig), 0)
}
