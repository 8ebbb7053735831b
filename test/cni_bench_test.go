//go:build linux

package test

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/nswire/nswire/test/testenv"
)

// BenchmarkCNIAddDel times ADD and DEL through cnitool for the reference
// bridge plugin v1.10.0 and for nswire in modes off and observe, each with
// host-local IPAM on a bridge of its own, in interleaved rounds (the
// variants' order shuffled each round) after one warm-up round, and reports
// the medians and nswire's ratios to the bridge plugin. Rounds:
// $NSWIRE_CNI_BENCH_ROUNDS (default 30).
//
//	CI=true go test -run '^$' -bench BenchmarkCNIAddDel -benchtime 1x ./test/
func BenchmarkCNIAddDel(b *testing.B) {
	rounds := 30
	if v, err := strconv.Atoi(os.Getenv("NSWIRE_CNI_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	// nswire's default state dir /run/nswire is on tmpfs on a usual system
	// (where the record's fsync costs nothing); this VM's /run is not.
	// NSWIRE_CNI_BENCH_TMPFS=1 puts the state dirs on a tmpfs of their own.
	tmpfs := os.Getenv("NSWIRE_CNI_BENCH_TMPFS") == "1"
	type variant struct {
		name     string
		net      *testenv.CNINet
		add, del []time.Duration
	}
	var vs []*variant
	mk := func(name string, conf func(n *testenv.CNINet) map[string]any) {
		n := testenv.NewCNINet(b, cniPlugin(b))
		n.WriteConflist(b, conf(n))
		if tmpfs && name != "bridge" {
			os.MkdirAll(n.StateDir, 0o700)
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", n.StateDir).CombinedOutput(); err != nil {
				b.Fatalf("mount tmpfs: %v: %s", err, out)
			}
			b.Cleanup(func() { exec.Command("umount", n.StateDir).Run() })
		}
		vs = append(vs, &variant{name: name, net: n})
	}
	mk("bridge", func(n *testenv.CNINet) map[string]any {
		return map[string]any{"type": "bridge", "bridge": n.Bridge, "isGateway": true, "ipMasq": false, "ipam": n.IPAM()}
	})
	mk("nswire-off", func(n *testenv.CNINet) map[string]any { return n.NswireConf(map[string]any{"mode": "off"}) })
	mk("nswire-observe", func(n *testenv.CNINet) map[string]any { return n.NswireConf(map[string]any{"mode": "observe"}) })
	path, _ := newCNINetns(b)

	for i := 0; i < b.N; i++ {
		for r := 0; r <= rounds; r++ {
			order := rand.Perm(len(vs))
			for _, k := range order {
				v := vs[k]
				start := time.Now()
				if _, err := v.net.Cnitool(nil, "add", v.net.Name, path); err != nil {
					b.Fatalf("%s ADD: %v", v.name, err)
				}
				add := time.Since(start)
				start = time.Now()
				if _, err := v.net.Cnitool(nil, "del", v.net.Name, path); err != nil {
					b.Fatalf("%s DEL: %v", v.name, err)
				}
				del := time.Since(start)
				if r > 0 { // round 0 warms up (first load of the eBPF objects, page cache)
					v.add, v.del = append(v.add, add), append(v.del, del)
				}
			}
		}
	}
	med := func(d []time.Duration) time.Duration {
		s := append([]time.Duration(nil), d...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	ref := vs[0]
	for _, v := range vs {
		ma, md := med(v.add), med(v.del)
		b.ReportMetric(float64(ma.Microseconds())/1000, v.name+"-add-ms")
		b.ReportMetric(float64(md.Microseconds())/1000, v.name+"-del-ms")
		line := fmt.Sprintf("%-15s median ADD %8s  DEL %8s  (%d rounds)", v.name, ma.Round(10*time.Microsecond), md.Round(10*time.Microsecond), len(v.add))
		if v != ref {
			ra := float64(ma) / float64(med(ref.add))
			b.ReportMetric(ra, v.name+"-add-ratio")
			line += fmt.Sprintf("  ADD %.2fx, DEL %.2fx the bridge plugin's", ra, float64(md)/float64(med(ref.del)))
		}
		if tmpfs && v != ref {
			line += " (state dir on tmpfs)"
		}
		b.Log(line)
	}
}
