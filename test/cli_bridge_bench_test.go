//go:build linux

package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nswire/nswire/test/testenv"
)

// cniBenchBin is where test/cni-tools.sh installs cnitool and the reference
// plugins: $CNI_BENCH_BIN, or $(go env GOPATH)/cni-bench/bin.
func cniBenchBin(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("CNI_BENCH_BIN")
	if dir == "" {
		out, err := exec.Command("go", "env", "GOPATH").Output()
		if err != nil {
			testenv.Unavailable(tb, "go env GOPATH: %v", err)
		}
		dir = filepath.Join(strings.TrimSpace(string(out)), "cni-bench", "bin")
	}
	for _, f := range []string{"cnitool", "bridge", "host-local"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			testenv.Unavailable(tb, "%s not installed in %s (run bash test/cni-tools.sh)", f, dir)
		}
	}
	return dir
}

// BenchmarkCLIvsCNIBridge compares what a user (or a runtime) waits to wire
// a network namespace into a bridge and to unwire it: `nswire attach` and
// `nswire detach` (the built CLI, default mode and mode off, and observe on
// legacy tc) against the reference CNI bridge plugin with host-local IPAM
// driven by cnitool ADD and DEL (v1.10.0 plugins, cnitool v1.3.1, installed
// by test/cni-tools.sh). Each side has its own bridge and named netns. Rounds
// interleave every variant (rotating the order) at both rcu_expedited
// settings, restored at the end. Bars (issue 14): default attach ≤ 0.8×
// bridge ADD, detach ≤ bridge DEL, at the host's own setting.
func BenchmarkCLIvsCNIBridge(b *testing.B) {
	const rounds = 25
	bin := cniBenchBin(b)
	rcu := testenv.UseRCUExpedited(b)
	tag := fmt.Sprintf("%04x", os.Getpid()%0x10000)

	// nswire's side: a bridge with the gateway address, a netns.
	nsBr := "nswcb" + tag
	testBridgeFor(b, nsBr, "10.218.16.1/24")
	nsNetns := "nswcn" + tag
	testenv.NewNamedNetNS(b, nsNetns)
	state := b.TempDir()
	pinDir := "/sys/fs/bpf/nswire-test-" + strings.ToLower(testenv.ContainerName("cni"))
	b.Cleanup(func() { os.RemoveAll(pinDir) })
	nswire := func(args ...string) time.Duration {
		t0 := time.Now()
		out, err := exec.Command(nswireBin, append([]string{"--state-dir", state, "--pin-dir", pinDir}, args...)...).CombinedOutput()
		d := time.Since(t0)
		if err != nil {
			b.Fatalf("nswire %v: %v\n%s", args, err, out)
		}
		return d
	}

	// The CNI side: the plugin creates its bridge; host-local keeps its
	// leases in a private dir; libcni caches results under /var/lib/cni.
	cniBr, cniNet := "nswcc"+tag, "nswire-bench-"+tag
	cniNetns := "nswcp" + tag
	testenv.NewNamedNetNS(b, cniNetns)
	confDir, ipamDir := b.TempDir(), b.TempDir()
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "cniVersions": ["1.0.0", "1.1.0"],
  "name": %q,
  "plugins": [
    { "type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
      "ipam": { "type": "host-local", "dataDir": %q,
                "ranges": [[{ "subnet": "10.218.17.0/24", "gateway": "10.218.17.1" }]] } }
  ]
}
`, cniNet, cniBr, ipamDir)
	if err := os.WriteFile(filepath.Join(confDir, "10-bench.conflist"), []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if l, err := netlink.LinkByName(cniBr); err == nil {
			netlink.LinkDel(l)
		}
		matches, _ := filepath.Glob("/var/lib/cni/results/" + cniNet + "-*")
		for _, f := range matches {
			os.Remove(f)
		}
	})
	cnitool := func(verb string) time.Duration {
		c := exec.Command(filepath.Join(bin, "cnitool"), verb, cniNet, "/run/netns/"+cniNetns)
		c.Env = append(os.Environ(), "NETCONFPATH="+confDir, "CNI_PATH="+bin)
		t0 := time.Now()
		out, err := c.CombinedOutput()
		d := time.Since(t0)
		if err != nil {
			b.Fatalf("cnitool %s: %v\n%s", verb, err, out)
		}
		return d
	}
	b.Cleanup(func() { // a failed round may leave an ADD behind
		c := exec.Command(filepath.Join(bin, "cnitool"), "del", cniNet, "/run/netns/"+cniNetns)
		c.Env = append(os.Environ(), "NETCONFPATH="+confDir, "CNI_PATH="+bin)
		c.Run()
	})
	b.Cleanup(func() {
		exec.Command(nswireBin, "--state-dir", state, "--pin-dir", pinDir, "detach", "/run/netns/"+nsNetns).Run()
	})

	type variant struct {
		name     string
		add, del func() time.Duration
	}
	nsVariant := func(name string, flags ...string) variant {
		return variant{name,
			func() time.Duration {
				return nswire(append([]string{"attach", "--netns", "/run/netns/" + nsNetns, "--bridge", nsBr}, flags...)...)
			},
			func() time.Duration { return nswire("detach", "/run/netns/"+nsNetns) }}
	}
	variants := []variant{
		nsVariant("nswire default"),
		nsVariant("nswire off", "--mode", "off"),
		nsVariant("nswire observe tc", "--attach-mode", "tc"),
		{"cni bridge", func() time.Duration { return cnitool("add") }, func() time.Duration { return cnitool("del") }},
	}
	for _, v := range variants { // warm up: programs loaded and pinned, bridge created
		v.add()
		v.del()
	}
	type cell struct {
		rcu  bool
		name string
	}
	add, del := map[cell][]time.Duration{}, map[cell][]time.Duration{}
	settings := []bool{rcu.Original(), !rcu.Original()}
	for r := range rounds {
		for i := range settings {
			on := settings[(i+r)%2]
			rcu.Set(on)
			for j := range variants {
				v := variants[(j+r)%len(variants)]
				c := cell{on, v.name}
				add[c] = append(add[c], v.add())
				del[c] = append(del[c], v.del())
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "CLI vs cnitool+bridge+host-local, medians over %d interleaved rounds\n", rounds)
	fmt.Fprintf(&tbl, "%-14s %-18s %9s %9s %9s %9s %8s %8s\n", "rcu_expedited", "variant", "add", "add-min", "del", "del-min", "add/ADD", "del/DEL")
	for _, on := range []bool{rcu.Original(), !rcu.Original()} {
		ref := cell{on, "cni bridge"}
		for _, v := range variants {
			c := cell{on, v.name}
			ra := float64(median(add[c])) / float64(median(add[ref]))
			rd := float64(median(del[c])) / float64(median(del[ref]))
			fmt.Fprintf(&tbl, "%-14d %-18s %8.1fms %8.1fms %8.1fms %8.1fms %8.2f %8.2f\n", boolInt(on), v.name,
				ms(median(add[c])), ms(slices.Min(add[c])), ms(median(del[c])), ms(slices.Min(del[c])), ra, rd)
			unit := fmt.Sprintf("-%s-rcu%d", strings.ReplaceAll(v.name, " ", "-"), boolInt(on))
			b.ReportMetric(ms(median(add[c])), "ms/add"+unit)
			b.ReportMetric(ms(median(del[c])), "ms/del"+unit)
		}
	}
	own := rcu.Original()
	ra := float64(median(add[cell{own, "nswire default"}])) / float64(median(add[cell{own, "cni bridge"}]))
	rd := float64(median(del[cell{own, "nswire default"}])) / float64(median(del[cell{own, "cni bridge"}]))
	fmt.Fprintf(&tbl, "at this host's setting (rcu_expedited=%d): default attach/ADD %.2f (bar ≤ 0.80), detach/DEL %.2f (bar ≤ 1.00)\n", boolInt(own), ra, rd)
	b.Log("\n" + tbl.String())
}
