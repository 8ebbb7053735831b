package serve

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/nswire/nswire/control"
)

// The labels serve reads. They mean what the attach flags of the same name
// mean and are validated the same way.
const (
	LabelPrefix  = "nswire."
	LabelEnable  = "nswire.enable"
	LabelIP      = "nswire.ip"
	LabelIP6     = "nswire.ip6"
	LabelGateway = "nswire.gateway"
	LabelMAC     = "nswire.mac"
	LabelMode    = "nswire.mode"
	LabelBridge  = "nswire.bridge"
	LabelNetwork = "nswire.network"
	LabelIfName  = "nswire.ifname"
	LabelMTU     = "nswire.mtu"
)

// knownLabels maps each label to the attach flag it stands for.
var knownLabels = map[string]string{
	LabelEnable: "", LabelIP: "ip", LabelIP6: "ip6", LabelGateway: "gateway", LabelMAC: "mac",
	LabelMode: "mode", LabelBridge: "bridge", LabelNetwork: "network", LabelIfName: "ifname", LabelMTU: "mtu",
}

// labelSetters sets the attach flag each label stands for.
var labelSetters = map[string]func(f *control.AttachFlags, v string) error{
	LabelIP:      func(f *control.AttachFlags, v string) error { f.IP = v; return nil },
	LabelIP6:     func(f *control.AttachFlags, v string) error { f.IP6 = v; return nil },
	LabelGateway: func(f *control.AttachFlags, v string) error { f.Gateway = v; return nil },
	LabelMAC:     func(f *control.AttachFlags, v string) error { f.MAC = v; return nil },
	LabelMode:    func(f *control.AttachFlags, v string) error { f.Mode = v; return nil },
	LabelBridge:  func(f *control.AttachFlags, v string) error { f.Bridge = v; return nil },
	LabelNetwork: func(f *control.AttachFlags, v string) error { f.Network = v; return nil },
	LabelIfName:  func(f *control.AttachFlags, v string) error { f.IfName = v; return nil },
	LabelMTU: func(f *control.AttachFlags, v string) (err error) {
		if f.MTU, err = strconv.Atoi(v); err != nil {
			return fmt.Errorf("not a number: give 68 to 65535")
		}
		return nil
	},
}

// LabelError is a label with a bad value: it names the label and the value.
type LabelError struct {
	Label, Value string
	Err          error
}

func (e *LabelError) Error() string {
	return fmt.Sprintf("label %s=%q: %v", e.Label, e.Value, e.Err)
}

func (e *LabelError) Unwrap() error { return e.Err }

// ParseLabels reads the nswire.* labels of a container. enabled is true when
// nswire.enable=true; req then holds the attach request they describe, for
// container id, validated exactly as `nswire attach` validates its flags
// (control.AttachFlags.Parse). A bad or unknown nswire.* label is a
// *LabelError. Without nswire.enable=true the other labels are ignored.
func ParseLabels(id string, labels map[string]string) (req control.AttachRequest, enabled bool, err error) {
	switch v, ok := labels[LabelEnable]; {
	case !ok || v == "false":
		return req, false, nil
	case v != "true":
		return req, false, &LabelError{LabelEnable, v, fmt.Errorf("give true or false")}
	}
	var flags control.AttachFlags
	flags.Target.Container = id
	// Unknown nswire.* labels, in a stable order: a typo must not pass.
	var keys []string
	for k := range labels {
		if strings.HasPrefix(k, LabelPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := knownLabels[k]; !ok {
			return req, true, &LabelError{k, labels[k], fmt.Errorf("unknown label: nswire reads %s", strings.Join(labelNames(), ", "))}
		}
	}
	// Each label alone first, so the error names the one that is bad.
	for _, k := range keys {
		set := labelSetters[k]
		if set == nil {
			continue // nswire.enable
		}
		v := labels[k]
		if v == "" {
			return req, true, &LabelError{k, "", fmt.Errorf("empty: leave the label out for the default")}
		}
		one := control.AttachFlags{Target: flags.Target}
		if err := set(&one, v); err != nil {
			return req, true, &LabelError{k, v, err}
		}
		if _, err := one.Parse(); err != nil {
			return req, true, &LabelError{k, v, err}
		}
		set(&flags, v)
	}
	if req, err = flags.Parse(); err != nil { // what no single label shows
		return req, true, fmt.Errorf("labels: %w", err)
	}
	return req, true, nil
}

func labelNames() []string {
	var n []string
	for k := range knownLabels {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// blame names the labels an attach error is about: those whose attach flag
// (--ip …) or value the message mentions; else all given labels; else
// nswire.enable (the error is about wiring the container at all).
func blame(labels map[string]string, err error) string {
	msg := err.Error()
	var hit, all []string
	for _, k := range labelNames() {
		v, ok := labels[k]
		if !ok || k == LabelEnable {
			continue
		}
		s := fmt.Sprintf("%s=%q", k, v)
		all = append(all, s)
		flag := knownLabels[k]
		if strings.Contains(msg, "--"+flag+" ") || strings.Contains(msg, "--"+flag+":") || (k != LabelMode && strings.Contains(msg, v)) || (k == LabelBridge && strings.Contains(msg, "bridge "+v)) {
			hit = append(hit, s)
		}
	}
	if len(hit) == 0 {
		hit = all
	}
	if len(hit) == 0 { // not about a value: about wiring it at all
		return fmt.Sprintf("label %s=%q", LabelEnable, labels[LabelEnable])
	}
	if len(hit) == 1 {
		return "label " + hit[0]
	}
	return "labels " + strings.Join(hit, " ")
}
