//go:build linux

package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NewNetNS creates a throwaway, unnamed network namespace with its loopback
// up and returns a handle to it; the handle is closed in t.Cleanup, which
// destroys the namespace once nothing else holds it. The calling goroutine's
// thread is switched into the new namespace only for the moment of creation
// and switched back before NewNetNS returns.
//
// Do in-namespace netlink work with netlink.NewHandleAt(ns), or run code
// inside with InNetNS.
func NewNetNS(t testing.TB) netns.NsHandle {
	t.Helper()
	RequireRoot(t)
	ns, err := createNS(netns.New)
	if err != nil {
		t.Fatalf("testenv: new netns: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	if err := loopbackUp(ns); err != nil {
		t.Fatalf("testenv: new netns: %v", err)
	}
	return ns
}

// NewNamedNetNS is NewNetNS for a namespace bind-mounted at /run/netns/<name>,
// so that `ip netns exec <name> …` and --netns /run/netns/<name> reach it. A
// leftover namespace of that name from an earlier, crashed run is deleted
// first. Cleanup closes the handle and deletes the name.
func NewNamedNetNS(t testing.TB, name string) netns.NsHandle {
	t.Helper()
	RequireRoot(t)
	path := filepath.Join("/run/netns", name)
	if _, err := os.Stat(path); err == nil {
		t.Logf("testenv: deleting leftover netns %s", path)
		if err := netns.DeleteNamed(name); err != nil {
			t.Fatalf("testenv: delete leftover netns %s: %v", path, err)
		}
	}
	ns, err := createNS(func() (netns.NsHandle, error) { return netns.NewNamed(name) })
	if err != nil {
		t.Fatalf("testenv: new netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("testenv: delete netns %s: %v", name, err)
		}
	})
	if err := loopbackUp(ns); err != nil {
		t.Fatalf("testenv: new netns %s: %v", name, err)
	}
	return ns
}

// createNS runs create (which unshares a new network namespace on the current
// thread and returns a handle to it) on a locked thread and switches the
// thread back to its original namespace. If switching back fails the thread
// is left locked, so the Go runtime discards it instead of reusing a thread
// in the wrong namespace.
func createNS(create func() (netns.NsHandle, error)) (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return netns.None(), fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	ns, err := create()
	if serr := netns.Set(orig); serr != nil {
		// Thread is in an unknown namespace: keep it locked (never reused).
		if err == nil {
			ns.Close()
		}
		return netns.None(), fmt.Errorf("restore netns: %w", serr)
	}
	runtime.UnlockOSThread()
	if err != nil {
		return netns.None(), err
	}
	return ns, nil
}

func loopbackUp(ns netns.NsHandle) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

// InNetNS runs fn on the calling goroutine with its OS thread locked and
// switched into ns, then switches the thread back and unlocks it.
//
// fn must not start goroutines (they run on other threads, in the host
// namespace) and must not call runtime.UnlockOSThread. It may call t.Fatal:
// the thread is restored on the way out. If the original namespace cannot be
// restored, the thread stays locked so the runtime discards it when the
// goroutine exits, and an error is returned.
func InNetNS(ns netns.NsHandle, fn func() error) (err error) {
	runtime.LockOSThread()
	orig, gerr := netns.Get()
	if gerr != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", gerr)
	}
	defer orig.Close()
	if serr := netns.Set(ns); serr != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns: %w", serr)
	}
	defer func() {
		if serr := netns.Set(orig); serr != nil {
			err = errors.Join(err, fmt.Errorf("restore netns (thread discarded): %w", serr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}
