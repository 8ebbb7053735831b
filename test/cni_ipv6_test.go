//go:build linux

package test

import (
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nswire/nswire/test/testenv"
)

// TestCNIDualStack: with a dual-stack host-local configuration (an IPv4 and
// an IPv6 range), a standalone ADD gives eth0 both addresses (the IPv6 one
// usable at once) and a default route per family, gives the bridge both
// gateway addresses, reports both IPs in the result and records both; DEL
// releases both leases and leaves nothing.
func TestCNIDualStack(t *testing.T) {
	n := testenv.NewCNINet(t, cniPlugin(t))
	v6subnet := "fd00:6e73:" + n.Prefix[len(n.Prefix)-4:len(n.Prefix)-1] + "::/64"
	v6subnet = strings.ReplaceAll(v6subnet, ".", "")
	v6gw := strings.TrimSuffix(v6subnet, "/64") + "1"
	ipam := n.IPAM()
	ipam["ranges"] = []any{
		[]any{map[string]any{"subnet": n.Subnet, "gateway": n.Gateway}},
		[]any{map[string]any{"subnet": v6subnet, "gateway": v6gw}},
	}
	// An IPv6 route besides the default one goes into the container too.
	extra6 := strings.ReplaceAll("fd00:6e7f:"+n.Prefix[len(n.Prefix)-4:len(n.Prefix)-1]+"::/48", ".", "")
	ipam["routes"] = []any{map[string]any{"dst": "0.0.0.0/0"}, map[string]any{"dst": "::/0"}, map[string]any{"dst": extra6, "gw": v6gw}}
	n.WriteConflist(t, n.NswireConf(map[string]any{"ipam": ipam}))
	path, ns := newCNINetns(t)
	out, err := n.Cnitool(nil, "add", n.Name, path)
	if err != nil {
		t.Fatal(err)
	}
	res := parseResult(t, out)
	if len(res.IPs) != 2 || res.IPs[0].Address.String() != n.Prefix+"2/24" || res.IPs[1].Address.IP.To4() != nil ||
		res.IPs[1].Gateway.String() != v6gw || *res.IPs[1].Interface != 2 {
		t.Fatalf("result IPs: %s", out)
	}
	want6 := res.IPs[1].Address.String()
	var routes6 []string
	for _, r := range res.Routes {
		if r.Dst.IP.To4() == nil {
			routes6 = append(routes6, r.Dst.String()+" via "+r.GW.String())
		}
	}
	if strings.Join(routes6, ", ") != "::/0 via "+v6gw+", "+extra6+" via "+v6gw {
		t.Errorf("result's IPv6 routes %v, want the default and %s, both via %s", routes6, extra6, v6gw)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addrs, _ := h.AddrList(eth0, netlink.FAMILY_V6)
	found := false
	for _, a := range addrs {
		if a.IPNet.String() == want6 {
			found = a.Flags&0x40 == 0 // IFA_F_TENTATIVE
		}
	}
	if !found {
		t.Errorf("eth0 lacks %s, or it is tentative: %+v", want6, addrs)
	}
	routes, _ := h.RouteList(eth0, netlink.FAMILY_V6)
	gw6 := false
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.String() == "::/0") && r.Gw != nil && r.Gw.String() == v6gw {
			gw6 = true
		}
	}
	if !gw6 {
		t.Errorf("no IPv6 default route via %s: %+v", v6gw, routes)
	}
	hasExtra := false
	for _, r := range routes {
		hasExtra = hasExtra || (r.Dst != nil && r.Dst.String() == extra6 && r.Gw.String() == v6gw)
	}
	if !hasExtra {
		t.Errorf("no route to %s via %s in the container: %+v", extra6, v6gw, routes)
	}
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	braddrs, _ := netlink.AddrList(br, netlink.FAMILY_V6)
	hasGW := false
	for _, a := range braddrs {
		if a.IP.String() == v6gw {
			hasGW = true
		}
	}
	if !hasGW {
		t.Errorf("bridge %s lacks the IPv6 gateway %s: %+v", n.Bridge, v6gw, braddrs)
	}
	recs := cniRecords(t, n)
	if len(recs) != 1 || recs[0].Address6.String() != want6 {
		t.Fatalf("records %+v", recs)
	}
	if len(n.Leases(t)) != 2 {
		t.Errorf("leases %v, want one per family", n.Leases(t))
	}
	if out, err := n.Cnitool(nil, "del", n.Name, path); err != nil {
		t.Fatalf("DEL: %v %s", err, out)
	}
	if l := n.Leases(t); len(l) != 0 {
		t.Errorf("leases left after DEL: %v", l)
	}
	if len(cniRecords(t, n)) != 0 || len(n.HostVeths(t)) != 0 {
		t.Errorf("DEL left records or veths")
	}
}

// TestCNITwoAddressesOfAFamily: an IPAM configuration that gives two IPv6
// addresses (two IPv6 range sets) is refused with code 7 naming both; the
// leases are released and nothing is left.
func TestCNITwoAddressesOfAFamily(t *testing.T) {
	n := testenv.NewCNINet(t, cniPlugin(t))
	v6a := strings.ReplaceAll("fd00:6e74:"+n.Prefix[len(n.Prefix)-4:len(n.Prefix)-1]+"::/64", ".", "")
	v6b := strings.Replace(v6a, "fd00:6e74:", "fd00:6e75:", 1)
	ipam := n.IPAM()
	ipam["ranges"] = []any{
		[]any{map[string]any{"subnet": n.Subnet, "gateway": n.Gateway}},
		[]any{map[string]any{"subnet": v6a}},
		[]any{map[string]any{"subnet": v6b}},
	}
	n.WriteConflist(t, n.NswireConf(map[string]any{"ipam": ipam}))
	path, _ := newCNINetns(t)
	out, err := n.Cnitool(nil, "add", n.Name, path)
	if err == nil {
		t.Fatalf("ADD with two IPv6 ranges succeeded: %s", out)
	}
	msg := err.Error()
	for _, want := range []string{"2 IPv6 addresses (" + strings.TrimSuffix(v6a, "/64"), strings.TrimSuffix(v6b, "/64"), "one address per family"} {
		if !strings.Contains(msg, want) {
			t.Errorf("ADD error lacks %q:\n%s", want, msg)
		}
	}
	if l := n.Leases(t); len(l) != 0 {
		t.Errorf("leases left after the refused ADD: %v", l)
	}
	if len(cniRecords(t, n)) != 0 || len(n.HostVeths(t)) != 0 {
		t.Errorf("the refused ADD left records or veths")
	}
}
