package netops

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Do runs fn on a fresh OS thread that is locked and switched into ns, and
// waits for it. It is the one place where nswire switches a thread's network
// namespace (`ip netns exec NS …` / `nsenter --net=NS …`); prefer
// netlink.NewHandleAt(ns), which needs no switch at all. fn must not start
// goroutines: they would run in an unknown namespace. If the thread cannot be
// switched back it stays locked, so the runtime ends it instead of reusing a
// thread in the wrong namespace.
func Do(ns netns.NsHandle, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter netns: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			done <- fmt.Errorf("restore netns: %w", err) // thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// Go runs fn on a new OS thread that is locked, pinned to cpu (when ≥ 0) and
// switched into ns, and never switched back: the thread is discarded when fn
// returns. It is for long-running work such as a load generator's loop
// (`taskset -c CPU ip netns exec NS …`). The channel receives fn's error.
func Go(ns netns.NsHandle, cpu int, fn func() error) <-chan error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread ends with this goroutine.
		if cpu >= 0 {
			var set unix.CPUSet
			set.Set(cpu)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				done <- fmt.Errorf("pin thread to CPU %d: %w", cpu, err)
				return
			}
		}
		if err := netns.Set(ns); err != nil {
			done <- fmt.Errorf("enter netns: %w", err)
			return
		}
		done <- fn()
	}()
	return done
}

// HandleAt opens a netlink handle whose requests run inside ns, without
// switching any thread (what `ip -n NS …` does). The caller closes it.
func HandleAt(ns netns.NsHandle) (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("open netlink in netns: %w", err)
	}
	return h, nil
}

// HostNetns opens this process's own network namespace and a netlink handle
// in it (the calling thread's namespace: no switch needed).
func HostNetns() (netns.NsHandle, *netlink.Handle, error) {
	ns, err := netns.GetFromPath("/proc/self/ns/net")
	if err != nil {
		return netns.None(), nil, fmt.Errorf("open host netns: %w", err)
	}
	h, err := netlink.NewHandle()
	if err != nil {
		ns.Close()
		return netns.None(), nil, fmt.Errorf("open netlink: %w", err)
	}
	return ns, h, nil
}

// NewNamedNetns creates the network namespace /run/netns/NAME with lo up
// (`ip netns add NAME; ip -n NAME link set lo up`) and returns a handle to
// it. The creating thread is switched back before it is unlocked; if that
// fails it stays locked and the runtime discards it.
func NewNamedNetns(name string) (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{netns.None(), fmt.Errorf("get current netns: %w", err)}
			return
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name)
		if serr := netns.Set(orig); serr != nil {
			if err == nil {
				ns.Close()
				netns.DeleteNamed(name)
			}
			done <- result{netns.None(), fmt.Errorf("restore netns: %w", serr)} // thread stays locked
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = fmt.Errorf("create netns %s: %w", name, err)
		}
		done <- result{ns, err}
	}()
	r := <-done
	if r.err != nil {
		return r.ns, r.err
	}
	h, err := HandleAt(r.ns)
	if err == nil {
		var lo netlink.Link
		if lo, err = LinkByName(h, "lo"); err == nil {
			err = SetUp(h, lo)
		}
		h.Close()
	}
	if err != nil {
		return r.ns, fmt.Errorf("set lo up in %s: %w", name, err)
	}
	return r.ns, nil
}
