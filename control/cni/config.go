// Package cni is nswire's CNI plugin: the spec's commands (ADD, DEL, CHECK,
// STATUS, GC, VERSION) on github.com/containernetworking/cni's skel, its
// network configuration, IPAM delegation through
// github.com/containernetworking/plugins/pkg/ipam, chaining on prevResult,
// and the result. The wiring and counting are the manager's (package
// control): standalone, the CLI's attach plan; chained, its observe path.
package cni

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/netops"
)

// SupportedVersions are the CNI spec versions the plugin speaks.
var SupportedVersions = []string{"1.0.0", "1.1.0"}

// DefaultBridge is the bridge of a standalone configuration without "bridge".
const DefaultBridge = "cni0"

// NetConf is the plugin's network configuration: the spec's keys and
// nswire's own.
type NetConf struct {
	types.PluginConf

	// Standalone only (a configuration with "ipam").
	Bridge    string `json:"bridge,omitempty"`    // default cni0; created when missing
	IsGateway bool   `json:"isGateway,omitempty"` // give the bridge the IPAM gateway address
	MTU       int    `json:"mtu,omitempty"`       // veth MTU (and of a bridge nswire creates); 0: the bridge's

	// Both ways.
	ModeName string `json:"mode,omitempty"`       // off, observe (default), fastpath; chained: observe
	HookName string `json:"attachMode,omitempty"` // auto (default), tcx, tc
	StateDir string `json:"stateDir,omitempty"`   // default /run/nswire
	PinDir   string `json:"pinDir,omitempty"`     // default /sys/fs/bpf/nswire

	// Mode and Hook are "mode" and "attachMode" parsed.
	Mode datapath.Mode `json:"-"`
	Hook datapath.Hook `json:"-"`
	// Chained is true for a configuration without "ipam": nswire then counts
	// the interface a previous plugin made (prevResult) and wires nothing.
	Chained bool `json:"-"`
	// Prev is prevResult converted to the current result version, or nil.
	Prev *current.Result `json:"-"`
}

// ParseConfig decodes and validates the configuration of a call of command
// (ADD, DEL, CHECK, GC, STATUS). Errors are *types.Error with the spec's
// codes: 6 (decoding failure) for JSON that does not decode, 7 (invalid
// network configuration) for values nswire refuses.
func ParseConfig(data []byte, command string) (*NetConf, error) {
	c := &NetConf{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "decode network configuration", err.Error())
	}
	if c.RawPrevResult != nil {
		if err := version.ParsePrevResult(&c.PluginConf); err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "decode prevResult", err.Error())
		}
		prev, err := current.NewResultFromResult(c.PrevResult)
		if err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "convert prevResult", err.Error())
		}
		c.Prev = prev
	}
	if err := c.validate(command); err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid nswire network configuration", err.Error())
	}
	return c, nil
}

func (c *NetConf) validate(command string) error {
	if c.Type == "" {
		return fmt.Errorf(`"type" is missing`)
	}
	c.Chained = c.IPAM.Type == ""
	if c.ModeName == "" {
		c.ModeName = string(datapath.Observe)
	}
	var err error
	if c.Mode, err = datapath.ParseMode(c.ModeName); err != nil {
		return fmt.Errorf(`"mode": %w`, err)
	}
	if c.Hook, err = datapath.ParseHook(c.HookName); err != nil {
		return fmt.Errorf(`"attachMode": %w`, err)
	}
	for key, dir := range map[string]string{"stateDir": c.StateDir, "pinDir": c.PinDir} {
		if dir != "" && !filepath.IsAbs(dir) {
			return fmt.Errorf("%q %q is not an absolute path", key, dir)
		}
	}
	if c.Chained {
		switch {
		case c.Mode != datapath.Observe:
			return fmt.Errorf(`"mode" %q: chained (without "ipam") nswire only observes the interface another plugin made: use "observe", or give "ipam" to let nswire wire the container itself`, c.Mode)
		case c.Bridge != "" || c.IsGateway || c.MTU != 0:
			return fmt.Errorf(`"bridge", "isGateway" and "mtu" need "ipam": without it nswire is chained and wires nothing`)
		case command == "ADD" && c.Prev == nil:
			return fmt.Errorf(`no "ipam" and no prevResult: chained nswire must follow the plugin that made the interface in the conflist (or give "ipam" to run standalone)`)
		}
		return nil
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if err := netops.ValidateIfName(c.Bridge); err != nil {
		return fmt.Errorf(`"bridge": %w`, err)
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		return fmt.Errorf(`"mtu" %d is out of range: give 68 to 65535, or leave it out for the bridge's`, c.MTU)
	}
	if command == "ADD" && c.Prev != nil {
		return fmt.Errorf(`nswire with "ipam" makes the interface itself and takes no prevResult: put it first in the conflist, or drop "ipam" to chain it after the plugin that makes the interface`)
	}
	return nil
}

// PodArgs are the CNI_ARGS keys nswire shows: the Kubernetes pod.
type PodArgs struct {
	Namespace string // K8S_POD_NAMESPACE
	Name      string // K8S_POD_NAME
}

// ParseArgs reads K8S_POD_NAMESPACE and K8S_POD_NAME from CNI_ARGS
// ("K1=V1;K2=V2"); other keys are ignored, as the spec's IgnoreUnknown asks
// of plugins that do not know them, and so are malformed pairs.
func ParseArgs(s string) PodArgs {
	var p PodArgs
	for _, kv := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "K8S_POD_NAMESPACE":
			p.Namespace = v
		case "K8S_POD_NAME":
			p.Name = v
		}
	}
	return p
}
