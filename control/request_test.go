package control

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/state"
)

func mustSubnet(t *testing.T, cidr, gw string) Subnet {
	t.Helper()
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		t.Fatal(err)
	}
	return Subnet{Net: n, Gateway: net.ParseIP(gw).To4()}
}

func noneUsed(net.IP) string { return "" }

// resolve is ResolveAddress of a --ip value as the user writes it ("" asks
// for a free address): parse errors come first, as on the command line.
func resolve(in string, sn Subnet, used func(net.IP) string) (*net.IPNet, error) {
	var spec IPSpec
	if in != "" {
		var err error
		if spec, err = ParseIPFlag(in); err != nil {
			return nil, err
		}
	}
	return ResolveAddress(spec, sn, used)
}

func TestResolveAddressRequested(t *testing.T) {
	sn := mustSubnet(t, "172.17.0.0/16", "172.17.0.1")
	used := func(ip net.IP) string {
		if ip.Equal(net.ParseIP("172.17.0.2")) {
			return "container a (Docker)"
		}
		return ""
	}
	for _, tc := range []struct {
		in, want, errHas string
	}{
		{in: "172.17.0.10/16", want: "172.17.0.10/16"},
		{in: "172.17.0.10", want: "172.17.0.10/16"},
		{in: "172.17.0.10/24", errHas: "prefix /24 does not match the bridge subnet 172.17.0.0/16"},
		{in: "172.18.0.10/16", errHas: "outside the bridge subnet"},
		{in: "172.17.0.0/16", errHas: "network address"},
		{in: "172.17.255.255/16", errHas: "broadcast address"},
		{in: "172.17.0.1/16", errHas: "gateway"},
		{in: "172.17.0.2/16", errHas: "already in use by container a (Docker)"},
		{in: "172.17.0/16", errHas: "is not an IPv4 CIDR"},
		{in: "banana", errHas: "is not an IPv4 address or CIDR"},
		{in: "fd00::1/64", errHas: `--ip "fd00::1/64" is not an IPv4 address: give IPv6 addresses with --ip6`},
		{in: "fd00::1", errHas: `--ip "fd00::1" is not an IPv4 address: give IPv6 addresses with --ip6`},
		{in: "fe80::10/64", errHas: `--ip "fe80::10/64" is not an IPv4 address but an IPv6 link-local one (fe80::/10)`},
		{in: "172.17.0.10,172.17.0.11", errHas: `--ip "172.17.0.10,172.17.0.11" names 2 addresses: a container gets one address per family`},
		{in: "::ffff:172.17.0.9/120", errHas: "is not an IPv4 CIDR"},
	} {
		got, err := resolve(tc.in, sn, used)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("ResolveAddress(%q) error = %v, want it to contain %q", tc.in, err, tc.errHas)
			}
			if err != nil && !strings.Contains(err.Error(), tc.in) {
				t.Errorf("ResolveAddress(%q) error %q does not name the bad value", tc.in, err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ResolveAddress(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestAllocateFromTop(t *testing.T) {
	sn := mustSubnet(t, "10.99.0.0/29", "10.99.0.6")
	taken := map[string]bool{"10.99.0.5": true}
	used := func(ip net.IP) string {
		if taken[ip.String()] {
			return "x"
		}
		return ""
	}
	// .7 is broadcast, .6 the gateway, .5 used: .4, then .3, .2, .1.
	for _, want := range []string{"10.99.0.4/29", "10.99.0.3/29", "10.99.0.2/29", "10.99.0.1/29"} {
		got, err := resolve("", sn, used)
		if err != nil || got.String() != want {
			t.Fatalf("allocate = %v, %v; want %s", got, err, want)
		}
		taken[got.IP.String()] = true
	}
	if _, err := resolve("", sn, used); err == nil || !strings.Contains(err.Error(), "no free address left in 10.99.0.0/29") {
		t.Fatalf("full subnet: err = %v", err)
	}
}

func TestFreeAddresses(t *testing.T) {
	sn := mustSubnet(t, "10.99.0.0/29", "10.99.0.1")
	got := FreeAddresses(sn, func(ip net.IP) string {
		if ip.Equal(net.ParseIP("10.99.0.3")) {
			return "x"
		}
		return ""
	})
	if got.Int64() != 4 { // 8 - network - broadcast - gateway - .3
		t.Fatalf("FreeAddresses = %s, want 4", got)
	}
}

func TestCheckGateway(t *testing.T) {
	_, n, _ := net.ParseCIDR("172.17.0.0/16")
	if err := CheckGateway(net.ParseIP("172.17.0.1"), n); err != nil {
		t.Fatal(err)
	}
	if err := CheckGateway(net.ParseIP("10.0.0.1"), n); err == nil || !strings.Contains(err.Error(), "--gateway 10.0.0.1 is outside the bridge subnet 172.17.0.0/16") {
		t.Fatalf("err = %v", err)
	}
	if err := CheckGateway(net.ParseIP("172.17.255.255"), n); err == nil {
		t.Fatal("broadcast accepted as gateway")
	}
}

func TestAttachRequestValidate(t *testing.T) {
	base := func() AttachFlags { return AttachFlags{Target: TargetSpec{Container: "web"}} }
	for _, tc := range []struct {
		name   string
		mutate func(*AttachFlags)
		errHas string
	}{
		{"ok", func(*AttachFlags) {}, ""},
		{"no target", func(r *AttachFlags) { r.Target = TargetSpec{} }, "no target"},
		{"two targets", func(r *AttachFlags) { r.Target.PID = 5 }, "more than one target"},
		{"negative pid", func(r *AttachFlags) { r.Target = TargetSpec{PID: -3} }, "--pid -3 is not a process ID"},
		{"bad container", func(r *AttachFlags) { r.Target.Container = "we b" }, `container name "we b" has ' '`},
		{"long ifname", func(r *AttachFlags) { r.IfName = "abcdefghijklmnop" }, `"abcdefghijklmnop" is 16 bytes long: at most 15`},
		{"slash ifname", func(r *AttachFlags) { r.IfName = "eth/0" }, `contains '/'`},
		{"colon ifname", func(r *AttachFlags) { r.IfName = "eth:0" }, `contains ':'`},
		{"space ifname", func(r *AttachFlags) { r.IfName = "eth 0" }, `contains ' '`},
		{"bad gateway", func(r *AttachFlags) { r.Gateway = "1.2.3" }, `--gateway "1.2.3" is not an IPv4 address`},
		{"bad mac", func(r *AttachFlags) { r.MAC = "zz:00" }, `--mac "zz:00" is not an Ethernet MAC`},
		{"multicast mac", func(r *AttachFlags) { r.MAC = "01:00:5e:00:00:01" }, "multicast"},
		{"mtu", func(r *AttachFlags) { r.MTU = 20 }, "--mtu 20 is out of range"},
		{"mode", func(r *AttachFlags) { r.Mode = "turbo" }, `mode "turbo" is not one of off, observe, fastpath`},
		{"hook", func(r *AttachFlags) { r.Hook = "xdp" }, `hook "xdp" is not one of auto, tcx, tc`},
		{"network and bridge", func(r *AttachFlags) { r.Network, r.Bridge = "mynet", "br0" }, "--network mynet and --bridge br0 both name the bridge"},
		{"bad network", func(r *AttachFlags) { r.Network = "my net" }, `--network: network name "my net" has ' '`},
		{"network", func(r *AttachFlags) { r.Network = "my-net_1.x" }, ""},
		{"bad ip", func(r *AttachFlags) { r.IP = "300.1.1.1/16" }, `--ip "300.1.1.1/16"`},
		{"ipv6 as ip", func(r *AttachFlags) { r.IP = "fd00::5" }, `--ip "fd00::5" is not an IPv4 address: give IPv6 addresses with --ip6`},
		{"link-local as ip", func(r *AttachFlags) { r.IP = "fe80::5" }, `--ip "fe80::5" is not an IPv4 address but an IPv6 link-local one`},
		{"ipv4 as ip6", func(r *AttachFlags) { r.IP6 = "10.0.0.5/24" }, `--ip6 "10.0.0.5/24" is not an IPv6 address: give IPv4 addresses with --ip`},
		{"two ip6 in one", func(r *AttachFlags) { r.IP6 = "fd00::5,fd00::6" }, `--ip6 "fd00::5,fd00::6" names 2 addresses: a container gets one address per family`},
		{"dual stack", func(r *AttachFlags) { r.IP, r.IP6 = "172.17.0.10/16", "fd00::5/64" }, ""},
	} {
		r := base()
		tc.mutate(&r)
		_, err := r.Parse()
		if tc.errHas == "" {
			if err != nil {
				t.Errorf("%s: unexpected error %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%s: error = %v, want it to contain %q", tc.name, err, tc.errHas)
		}
	}
}

func TestDifferences(t *testing.T) {
	rec := &state.Record{Bridge: "docker0", IfName: "eth0", Address: netip.MustParsePrefix("172.17.0.10/16"), Gateway: netip.MustParseAddr("172.17.0.1"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, MTU: 1500, Mode: datapath.Observe}
	same, err := AttachFlags{Target: TargetSpec{Container: "web"}, IP: "172.17.0.10"}.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if d := differences(rec, same); d != "" {
		t.Fatalf("same settings differ: %s", d)
	}
	other, err := AttachFlags{Target: TargetSpec{Container: "web"}, IP: "172.17.0.11/16", Mode: "fastpath"}.Parse()
	if err != nil {
		t.Fatal(err)
	}
	d := differences(rec, other)
	if !strings.Contains(d, "ip 172.17.0.10/16, asked 172.17.0.11/16") || !strings.Contains(d, "mode observe, asked fastpath") {
		t.Fatalf("differences = %q", d)
	}
}

func TestFreeSlot(t *testing.T) {
	recs := []*state.Record{{ID: "a", Slot: 0}, {ID: "b", Slot: 2}}
	if s, _ := freeSlot(recs, "c"); s != 1 {
		t.Fatalf("freeSlot = %d, want 1", s)
	}
	if s, _ := freeSlot(recs, "a"); s != 0 {
		t.Fatalf("freeSlot for a's own re-attach = %d, want 0", s)
	}
}

func TestOneAddress(t *testing.T) {
	for _, tc := range []struct {
		flag   string
		in     []string
		want   string
		errHas string
	}{
		{"ip6", nil, "", ""},
		{"ip6", []string{"fd00::5"}, "fd00::5", ""},
		{"ip6", []string{"fd00::5", "fd00::6"}, "", "--ip6 given twice (fd00::5, fd00::6): a container gets one address per family"},
		{"ip", []string{"10.0.0.5", "10.0.0.5"}, "", "--ip given twice (10.0.0.5, 10.0.0.5)"},
		{"ip", []string{"10.0.0.5", "10.0.0.6", "10.0.0.7"}, "", "--ip given 3 times (10.0.0.5, 10.0.0.6, 10.0.0.7): a container gets one address per family, one IPv4 with --ip and one IPv6 with --ip6"},
	} {
		got, err := OneAddress(tc.flag, tc.in)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("OneAddress(%s, %q) error = %v, want it to contain %q", tc.flag, tc.in, err, tc.errHas)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("OneAddress(%s, %q) = %q, %v; want %q", tc.flag, tc.in, got, err, tc.want)
		}
	}
}
