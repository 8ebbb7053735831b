package serve

import (
	"errors"
	"strings"
	"testing"

	"github.com/nswire/nswire/control"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseLabels(t *testing.T) {
	for _, c := range []struct {
		name    string
		labels  map[string]string
		enabled bool
		label   string // the label a *LabelError must name; "" for no error
		msg     string // what the error must say besides, if anything
		check   func(t *testing.T, ip, mode, bridge string, mtu int)
	}{
		{name: "absent", labels: map[string]string{"other": "x", "nswire.ip": "bad"}},
		{name: "false", labels: map[string]string{"nswire.enable": "false"}},
		{name: "bad enable", labels: map[string]string{"nswire.enable": "yes"}, label: "nswire.enable"},
		{name: "defaults", labels: map[string]string{"nswire.enable": "true"}, enabled: true,
			check: func(t *testing.T, ip, mode, bridge string, mtu int) {
				if ip != "" || mode != "observe" || bridge != "docker0" || mtu != 0 {
					t.Errorf("defaults: ip %q mode %q bridge %q mtu %d", ip, mode, bridge, mtu)
				}
			}},
		{name: "all", enabled: true, labels: map[string]string{"nswire.enable": "true", "nswire.ip": "172.17.0.10/16", "nswire.gateway": "172.17.0.1",
			"nswire.mac": "02:42:ac:11:00:0a", "nswire.mode": "off", "nswire.bridge": "br0", "nswire.ifname": "net0", "nswire.mtu": "1400"},
			check: func(t *testing.T, ip, mode, bridge string, mtu int) {
				if ip != "172.17.0.10/16" || mode != "off" || bridge != "br0" || mtu != 1400 {
					t.Errorf("all: ip %q mode %q bridge %q mtu %d", ip, mode, bridge, mtu)
				}
			}},
		{name: "bad ip", enabled: true, labels: map[string]string{"nswire.enable": "true", "nswire.ip": "172.17.0.300/16"}, label: "nswire.ip"},
		{name: "ipv6 as ip", enabled: true, labels: map[string]string{"nswire.enable": "true", "nswire.ip": "fd00::5"}, label: "nswire.ip", msg: "give IPv6 addresses with --ip6"},
		{name: "ipv4 as ip6", enabled: true, labels: map[string]string{"nswire.enable": "true", "nswire.ip6": "10.0.0.5"}, label: "nswire.ip6", msg: "give IPv4 addresses with --ip"},
		{name: "two ip6", enabled: true, labels: map[string]string{"nswire.enable": "true", "nswire.ip6": "fd00::5,fd00::6"}, label: "nswire.ip6", msg: "names 2 addresses: a container gets one address per family"},
		{name: "dual stack", enabled: true, labels: map[string]string{"nswire.enable": "true", "nswire.ip": "172.17.0.10/16", "nswire.ip6": "fd00::5/64"}},
		{name: "bad mode", enabled: true, labels: map[string]string{"nswire.enable": "true", "nswire.mode": "turbo"}, label: "nswire.mode"},
		{name: "bad mac", enabled: true, labels: map[string]string{"nswire.enable": "true", "nswire.mac": "01:00:5e:00:00:01"}, label: "nswire.mac"},
		{name: "bad mtu", enabled: true, labels: map[string]string{"nswire.enable": "true", "nswire.mtu": "big"}, label: "nswire.mtu"},
		{name: "mtu range", enabled: true, labels: map[string]string{"nswire.enable": "true", "nswire.mtu": "9"}, label: "nswire.mtu"},
		{name: "bad gateway", enabled: true, labels: map[string]string{"nswire.enable": "true", "nswire.gateway": "x"}, label: "nswire.gateway"},
		{name: "long ifname", enabled: true, labels: map[string]string{"nswire.enable": "true", "nswire.ifname": "averyveryverylongname"}, label: "nswire.ifname"},
		{name: "empty bridge", enabled: true, labels: map[string]string{"nswire.enable": "true", "nswire.bridge": ""}, label: "nswire.bridge"},
		{name: "typo", enabled: true, labels: map[string]string{"nswire.enable": "true", "nswire.adress": "172.17.0.2"}, label: "nswire.adress"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, enabled, err := ParseLabels(testID, c.labels)
			if enabled != c.enabled {
				t.Errorf("enabled = %v, want %v", enabled, c.enabled)
			}
			if c.label == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if c.check != nil {
					c.check(t, ipString(req.IP), string(req.Mode), req.Bridge, req.MTU)
				}
				return
			}
			var le *LabelError
			if !errors.As(err, &le) || le.Label != c.label || le.Value != c.labels[c.label] {
				t.Fatalf("error = %v, want a LabelError naming %s=%q", err, c.label, c.labels[c.label])
			}
			if !strings.Contains(err.Error(), c.label) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("message %q does not name %s or lacks %q", err, c.label, c.msg)
			}
		})
	}
}

func TestBlame(t *testing.T) {
	labels := map[string]string{"nswire.enable": "true", "nswire.ip": "172.17.0.1/16", "nswire.mode": "observe"}
	got := blame(labels, errors.New("--ip 172.17.0.1/16 is the gateway's address: pick another address in 172.17.0.0/16"))
	if got != `label nswire.ip="172.17.0.1/16"` {
		t.Errorf("blame = %s", got)
	}
	got = blame(map[string]string{"nswire.enable": "true", "nswire.bridge": "nosuchbr"}, errors.New("find bridge nosuchbr: Link not found"))
	if got != `label nswire.bridge="nosuchbr"` {
		t.Errorf("blame = %s", got)
	}
	if got := blame(map[string]string{"nswire.enable": "true"}, errors.New("x")); got != `label nswire.enable="true"` {
		t.Errorf("blame = %s", got)
	}
}

func ipString(s control.IPSpec) string {
	if !s.IsSet() {
		return ""
	}
	return s.String()
}

// TestNetworkLabel: nswire.network names the Docker network (resolved to
// its bridge at attach time); with nswire.bridge as well it is an error
// that names both.
func TestNetworkLabel(t *testing.T) {
	req, enabled, err := ParseLabels(testID, map[string]string{"nswire.enable": "true", "nswire.network": "backend"})
	if err != nil || !enabled || req.Network != "backend" || req.Bridge != "" {
		t.Fatalf("ParseLabels = network %q bridge %q, %v, %v", req.Network, req.Bridge, enabled, err)
	}
	_, _, err = ParseLabels(testID, map[string]string{"nswire.enable": "true", "nswire.network": "backend", "nswire.bridge": "br0"})
	if err == nil || !strings.Contains(err.Error(), "--network backend and --bridge br0") {
		t.Fatalf("network and bridge labels: %v", err)
	}
	_, _, err = ParseLabels(testID, map[string]string{"nswire.enable": "true", "nswire.network": "bad net"})
	var le *LabelError
	if !errors.As(err, &le) || le.Label != "nswire.network" {
		t.Fatalf("bad network label: %v", err)
	}
}
