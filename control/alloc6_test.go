package control

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseIP6Flag(t *testing.T) {
	for _, tc := range []struct{ in, want, errHas string }{
		{in: "fd00:1::10/64", want: "fd00:1::10/64"},
		{in: "fd00:1::10", want: "fd00:1::10"},
		{in: "2001:db8::5/48", want: "2001:db8::5/48"},
		{in: "172.17.0.10", errHas: "is not an IPv6 address: give IPv4 addresses with --ip"},
		{in: "::ffff:1.2.3.4", errHas: "is not an IPv6 address"},
		{in: "fe80::1/64", errHas: "is link-local"},
		{in: "ff02::1", errHas: "not a unicast address"},
		{in: "::", errHas: "not a unicast address"},
		{in: "fd00::1%eth0", errHas: "has a zone"},
		{in: "fd00::/129", errHas: "is not an IPv6 address or CIDR"},
		{in: "banana", errHas: "is not an IPv6 address or CIDR"},
	} {
		got, err := ParseIP6Flag(tc.in)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) || !strings.Contains(err.Error(), strings.Split(tc.in, "%")[0]) {
				t.Errorf("ParseIP6Flag(%q) error = %v, want one naming the value and containing %q", tc.in, err, tc.errHas)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ParseIP6Flag(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestResolveAddress6(t *testing.T) {
	pfx := netip.MustParsePrefix("fd00:77::/64")
	gw := netip.MustParseAddr("fd00:77::1")
	used := func(a netip.Addr) string {
		if a == netip.MustParseAddr("fd00:77::2") || a == netip.MustParseAddr("fd00:77::ffff:ffff:ffff:fffe") {
			return "container peer (Docker)"
		}
		return ""
	}
	spec := func(s string) IPSpec {
		sp, err := ParseIP6Flag(s)
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	// Automatic: the highest free address (the top one is skipped, as is
	// the used one below it).
	if got, err := ResolveAddress6(IPSpec{}, pfx, gw, used); err != nil || got.String() != "fd00:77::ffff:ffff:ffff:fffd/64" {
		t.Errorf("automatic = %v, %v", got, err)
	}
	for _, tc := range []struct{ in, want, errHas string }{
		{in: "fd00:77::10", want: "fd00:77::10/64"},
		{in: "fd00:77::10/64", want: "fd00:77::10/64"},
		{in: "fd00:77::10/80", errHas: "prefix /80 does not match the bridge's IPv6 prefix fd00:77::/64"},
		{in: "fd00:78::10", errHas: "outside the bridge's IPv6 prefix fd00:77::/64"},
		{in: "fd00:77::1", errHas: "the gateway's address"},
		{in: "fd00:77::", errHas: "subnet-router anycast"},
		{in: "fd00:77::2", errHas: "already in use by container peer (Docker)"},
	} {
		got, err := ResolveAddress6(spec(tc.in), pfx, gw, used)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("ResolveAddress6(%q) error = %v, want %q", tc.in, err, tc.errHas)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ResolveAddress6(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if got := lastAddr(netip.MustParsePrefix("fd00:77::/120")); got != netip.MustParseAddr("fd00:77::ff") {
		t.Errorf("lastAddr = %s", got)
	}
}
