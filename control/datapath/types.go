// Package datapath owns nswire's eBPF datapath on host veths: the typed
// vocabulary (Mode: off, observe, fastpath; Hook: auto, tcx, tc), installing,
// switching and removing the programs on a host veth (tcx links, legacy tc
// filters as a fallback, never both), the endpoint map entries, counter reads
// and the kernel probes (tcx, netkit).
//
// "Attach" in nswire means wiring a container; putting programs on a device is
// "install" here. It may import bpf and netops, never control.
package datapath

import (
	"fmt"
	"os"
	"strings"
)

// Mode is a container's datapath mode.
type Mode string

const (
	Off      Mode = "off"      // plain bridging, no program: the baseline
	Observe  Mode = "observe"  // count only
	Fastpath Mode = "fastpath" // count, spoof guard and redirect to local endpoints
)

// Modes lists the valid modes, for help texts and completion.
var Modes = []Mode{Off, Observe, Fastpath}

// ParseMode parses a mode name; the error names the value and the valid ones.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("mode %q is not one of %s", s, joinNames(Modes))
}

// Programs reports whether the mode runs programs on the host veth.
func (m Mode) Programs() bool { return m == Observe || m == Fastpath }

// Hook says how the programs are hooked into a host veth.
type Hook string

const (
	HookAuto Hook = "auto" // see AutoHook; legacy tc where tcx is unsupported
	HookTCX  Hook = "tcx"  // tcx links, pinned under <pinDir>/links/<ifname>/
	HookTC   Hook = "tc"   // clsact qdisc + cls_bpf direct-action filters
	// HookNone is what Install reports for mode off: nothing installed.
	HookNone Hook = ""
)

// Hooks lists the hooks a user may ask for.
var Hooks = []Hook{HookAuto, HookTCX, HookTC}

// ParseHook parses a hook name; "" is auto.
func ParseHook(s string) (Hook, error) {
	if s == "" {
		return HookAuto, nil
	}
	for _, h := range Hooks {
		if string(h) == s {
			return h, nil
		}
	}
	return "", fmt.Errorf("hook %q is not one of %s", s, joinNames(Hooks))
}

// Installed reports whether h names an installed hook (tcx or tc).
func (h Hook) Installed() bool { return h == HookTCX || h == HookTC }

func joinNames[T ~string](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = string(x)
	}
	return strings.Join(s, ", ")
}

// RCU sysfs knobs: rcu_expedited=1 makes synchronize_rcu() expedited (well
// under a millisecond); rcu_normal=1 overrides it. Most distributions boot
// with 0 and 0.
var (
	rcuExpeditedPath = "/sys/kernel/rcu_expedited"
	rcuNormalPath    = "/sys/kernel/rcu_normal"
)

// AutoHook is the hook "auto" gives a device that has none, and why.
//
// tcx where the kernel expedites RCU grace periods, legacy tc elsewhere:
// attaching or detaching a tcx link waits for one RCU grace period per
// direction while holding RTNL. Expedited, that is well under a millisecond;
// on a kernel booted with the usual rcu_expedited=0 it measured +22-32 ms per
// attach and +32-34 ms per detach here, and 16 attaches at once queued to
// 475-685 ms against 79-197 ms with tc, holding up every other netlink user
// of the host (Docker, kubelet, CNI plugins) meanwhile. Legacy tc costs no
// grace period at either setting. An explicit tcx is always honoured.
func AutoHook() (Hook, string) {
	expedited, err1 := readSysBool(rcuExpeditedPath)
	normal, err2 := readSysBool(rcuNormalPath)
	switch {
	case err1 != nil || err2 != nil:
		return HookTCX, "RCU settings unreadable: tcx"
	case expedited && !normal:
		return HookTCX, "rcu_expedited=1: a tcx link costs no RCU grace period, so auto uses tcx"
	case normal:
		return HookTC, "rcu_normal=1: each tcx link would cost an RCU grace period (~10-30 ms) under RTNL, so auto uses legacy tc (--hook tcx forces tcx)"
	default:
		return HookTC, "rcu_expedited=0: each tcx link would cost an RCU grace period (~10-30 ms) under RTNL, so auto uses legacy tc (--hook tcx forces tcx)"
	}
}

func readSysBool(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) == "1", nil
}
