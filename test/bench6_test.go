//go:build linux

package test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/vishvananda/netlink"

	"github.com/nswire/nswire/control/bench"
	"github.com/nswire/nswire/test/testenv"
)

// TestBenchIPv6: on a Docker network of its own made with --ipv6 (a unique
// local prefix), `nswire bench --ipv6 --network NAME` runs every variant and
// workload over IPv6, and the same bench without --ipv6 over IPv4. The
// result records the family; each variant's addresses are of that family;
// the kernel's IP counters in each server's namespace saw at least every
// measured tcp_rr request and udp_rate datagram in that family and next to
// nothing in the other; nswire's exact counters of the observe and fastpath
// servers saw TCP and UDP of that family only. Bad input is refused before
// anything is created.
func TestBenchIPv6(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	testenv.Image(t)
	ctx := context.Background()
	mknet := func(prefix string, ipv6 bool, subnets ...string) (string, string) {
		var cfg []network.IPAMConfig
		for _, s := range subnets {
			cfg = append(cfg, network.IPAMConfig{Subnet: s})
		}
		name := testenv.ContainerName(prefix)
		resp, err := cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", EnableIPv6: &ipv6, IPAM: &network.IPAM{Config: cfg}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.NetworkRemove(context.Background(), resp.ID) })
		return name, "br-" + resp.ID[:12]
	}
	net6, br6 := mknet("nswb6", true, "10.234.46.0/24", "fd00:4e53:b6::/64")
	net4, br4 := mknet("nswb4", false, "10.234.48.0/28")
	pfx6 := netip.MustParsePrefix("fd00:4e53:b6::/64")
	pfx4 := netip.MustParsePrefix("10.234.46.0/24")

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--ipv6", "--network", net4}, []string{"--ipv6: bridge " + br4 + " has no global IPv6 address", "docker network create --ipv6 --subnet fd00:db8:1::/64 NAME", "--network NAME"}},
		{[]string{"--ipv6", "--bridge", br4, "--variants", "off,loopback"}, []string{"--ipv6: bridge " + br4 + " has no global IPv6 address"}},
		{[]string{"--ipv6", "--network", net4, "--variants", "docker,loopback"}, []string{"variant docker runs on Docker network " + net4 + ", which has no IPv6", "--variants loopback"}},
		{[]string{"--ipv6", "--network", net6, "--bridge", "docker0"}, []string{"--network " + net6 + " and --bridge docker0 both name the bridge"}},
		{[]string{"--ipv6", "--network", "nswb-no-such-network"}, []string{"--network nswb-no-such-network: no such Docker network"}},
		{[]string{"--ipv6", "--network", net6, "--netns-only"}, []string{"--network " + net6 + " needs Docker"}},
	} {
		e.fails(append([]string{"bench"}, tc.args...), tc.want...)
		if left := benchLeftoversOn(t, e, cli, br6, br4); len(left) > 0 {
			t.Fatalf("bench %v left %v", tc.args, left)
		}
	}

	for _, fam := range []struct {
		family int
		args   []string
		subnet netip.Prefix
	}{
		{6, []string{"--ipv6", "--network", net6}, pfx6},
		{4, []string{"--network", net6}, pfx4},
	} {
		r := runBench(t, e, fam.args...)
		checkBenchResult(t, r, bench.Variants)
		if r.Config.Family != fam.family || r.Config.Network != net6 || r.Config.Bridge != br6 || r.Env.Bridge != br6 {
			t.Errorf("IPv%d: config family %d, network %q, bridge %q (env %q); want %d, %s, %s", fam.family, r.Config.Family, r.Config.Network, r.Config.Bridge, r.Env.Bridge, fam.family, net6, br6)
		}
		checkBenchFamily(t, r, fam.family, fam.subnet)
		if left := benchLeftoversOn(t, e, cli, br6); len(left) > 0 {
			t.Errorf("the IPv%d bench left %v", fam.family, left)
		}
	}
}

// benchLeftoversOn is benchLeftovers for a bench on bridges of the test's
// own: instead of every new nsw link of the host (other tests make them too),
// every link still enslaved to one of bridges.
func benchLeftoversOn(t *testing.T, e *env, cli *client.Client, bridges ...string) []string {
	t.Helper()
	var left []string
	for _, l := range benchLeftovers(t, e, cli, nil) {
		if !strings.HasPrefix(l, "link ") {
			left = append(left, l)
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, br := range bridges {
		bl, err := netlink.LinkByName(br)
		if err != nil {
			t.Fatalf("bridge %s: %v", br, err)
		}
		for _, l := range links {
			if l.Attrs().MasterIndex == bl.Attrs().Index {
				left = append(left, "link "+l.Attrs().Name+" on "+br)
			}
		}
	}
	return left
}

// checkBenchFamily checks that r's traffic went over IP version family:
// every variant's addresses are of the family (within subnet but for
// loopback's), its server's namespace received at least as many packets of
// the family as the measured tcp_rr requests and udp_rate datagrams and
// almost none of the other, and nswire's counters of the observe and
// fastpath servers show TCP and UDP of the family and none of the other.
func checkBenchFamily(t *testing.T, r *bench.Result, family int, subnet netip.Prefix) {
	t.Helper()
	if len(r.Traffic) != len(r.Variants) {
		t.Fatalf("IPv%d: traffic of %d variants, want %d: %+v", family, len(r.Traffic), len(r.Variants), r.Traffic)
	}
	// What the server must have received: one packet per tcp_rr
	// transaction and per udp_rate datagram counted (rate × seconds).
	// The server answered each tcp_rr request with one packet.
	least, answers := map[string]float64{}, map[string]float64{}
	for _, s := range r.Samples {
		if s.Workload == bench.WorkloadTCPRR || s.Workload == bench.WorkloadUDPRate {
			least[s.Variant] += s.Metrics["rate"] * s.Seconds
		}
		if s.Workload == bench.WorkloadTCPRR {
			answers[s.Variant] += s.Metrics["rate"] * s.Seconds
		}
	}
	mine, other := "ipv4", "ipv6"
	if family == 6 {
		mine, other = other, mine
	}
	for i, tr := range r.Traffic {
		v := r.Variants[i]
		if tr.Variant != v {
			t.Errorf("IPv%d: traffic %d is of %s, want %s", family, i, tr.Variant, v)
		}
		for _, a := range []string{tr.Client, tr.Server} {
			ip, err := netip.ParseAddr(a)
			switch {
			case err != nil:
				t.Errorf("IPv%d %s: address %q: %v", family, v, a, err)
			case family == 6 && (!ip.Is6() || ip.Is4In6()), family == 4 && !ip.Is4():
				t.Errorf("IPv%d %s: address %s is not IPv%d", family, v, a, family)
			case v == bench.VariantLoopback && !ip.IsLoopback():
				t.Errorf("IPv%d loopback: address %s", family, a)
			case v != bench.VariantLoopback && !subnet.Contains(ip):
				t.Errorf("IPv%d %s: address %s is outside %s", family, v, a, subnet)
			}
		}
		got, stray := tr.ServerRxIPv4, tr.ServerRxIPv6
		if family == 6 {
			got, stray = stray, got
		}
		if float64(got) < 0.999*least[v] || got == 0 || stray*100 > got {
			t.Errorf("IPv%d %s: the server's namespace received %d %s and %d %s packets; want at least %.0f %s (the measured requests and datagrams) and under 1%% of %s",
				family, v, got, mine, stray, other, least[v], mine, other)
		}
		switch v {
		case bench.VariantObserve, bench.VariantFastpath:
			c := tr.ServerCounted
			if c[mine+"/tcp"] == 0 || c[mine+"/udp"] == 0 || c[other+"/tcp"] != 0 || c[other+"/udp"] != 0 {
				t.Errorf("IPv%d %s: nswire counted %v at the server; want %s tcp and udp, no %s tcp or udp", family, v, c, mine, other)
			}
			// The server's answers to the tcp_rr requests took the fast
			// path.
			if v == bench.VariantFastpath && (tr.ServerFastpathed == 0 || float64(tr.ServerFastpathed) < 0.999*answers[v]) {
				t.Errorf("IPv%d fastpath: the server fast-pathed %d packets, fewer than the %.0f tcp_rr answers measured", family, tr.ServerFastpathed, answers[v])
			}
			if v == bench.VariantObserve && tr.ServerFastpathed != 0 {
				t.Errorf("IPv%d observe: the server fast-pathed %d packets", family, tr.ServerFastpathed)
			}
			if float64(c[mine+"/tcp"]+c[mine+"/udp"]) < 0.999*least[v] {
				t.Errorf("IPv%d %s: nswire counted %v at the server, fewer than the %.0f measured", family, v, c, least[v])
			}
		default:
			if tr.ServerCounted != nil {
				t.Errorf("IPv%d %s: nswire counters %v without an nswire program", family, v, tr.ServerCounted)
			}
		}
	}
}
