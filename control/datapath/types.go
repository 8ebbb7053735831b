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
	HookAuto Hook = "auto" // tcx, or legacy tc where tcx is unsupported
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
