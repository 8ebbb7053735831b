//go:build linux

package test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/dockerengine"
	"github.com/nswire/nswire/test/testenv"
)

// BenchmarkAttachConcurrent attaches n network namespaces at once, each
// through its own Manager (own state dir and lock, own pin dir, explicit
// address), so that nothing of nswire's serialises them: only the kernel's
// RTNL lock does. It reports the wall time of the n attaches and of the n
// detaches per hook (off, tcx, tc) at both rcu_expedited settings, rounds
// interleaved, setting restored at the end. With rcu_expedited=0 a tcx
// attach or detach waits for RCU grace periods while holding RTNL, so the
// others queue behind it.
func BenchmarkAttachConcurrent(b *testing.B) {
	const n, rounds = 16, 4
	rcu := testenv.UseRCUExpedited(b)
	tag := fmt.Sprintf("%04x", os.Getpid()%0x10000)
	br := "nswcc" + tag
	testBridgeFor(b, br, "10.220.0.1/24")
	ctx := context.Background()
	type target struct {
		m  *control.Manager
		ns string
		ip string
	}
	targets := make([]target, n)
	for i := range targets {
		name := fmt.Sprintf("nswcc%s-%d", tag, i)
		testenv.NewNamedNetNS(b, name)
		pinDir := "/sys/fs/bpf/nswire-test-" + strings.ToLower(testenv.ContainerName("cc"))
		m, err := control.NewManager(control.Config{StateDir: b.TempDir(), PinDir: pinDir, NewEngine: dockerengine.New})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Close(); os.RemoveAll(pinDir) })
		targets[i] = target{m, "/run/netns/" + name, fmt.Sprintf("10.220.0.%d", 10+i)}
		b.Cleanup(func() { m.Detach(context.Background(), targets[i].ns) })
	}
	hooks := []struct{ name, mode, attach string }{{"off", "off", "auto"}, {"tcx", "observe", "tcx"}, {"tc", "observe", "tc"}}
	// all runs fn for every target at once and returns the wall time.
	all := func(fn func(t target) error) time.Duration {
		var wg sync.WaitGroup
		errs := make([]error, n)
		t0 := time.Now()
		for i, t := range targets {
			wg.Go(func() { errs[i] = fn(t) })
		}
		wg.Wait()
		d := time.Since(t0)
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		return d
	}
	attachAll := func(mode, am string) time.Duration {
		return all(func(t target) error {
			req, err := control.AttachFlags{Target: control.TargetSpec{NetnsPath: t.ns}, Bridge: br, IP: t.ip, Mode: mode, Hook: am}.Parse()
			if err == nil {
				_, err = t.m.Attach(ctx, req, false)
			}
			return err
		})
	}
	detachAll := func() time.Duration {
		return all(func(t target) error { _, err := t.m.Detach(ctx, t.ns); return err })
	}
	for _, h := range hooks { // warm up: every manager loads and pins its programs
		attachAll(h.mode, h.attach)
		detachAll()
	}
	type cell struct {
		rcu  bool
		hook string
	}
	att, det := map[cell][]time.Duration{}, map[cell][]time.Duration{}
	settings := []bool{rcu.Original(), !rcu.Original()}
	for r := range rounds {
		for i := range settings {
			on := settings[(i+r)%2]
			rcu.Set(on)
			for _, h := range hooks {
				c := cell{on, h.name}
				att[c] = append(att[c], attachAll(h.mode, h.attach))
				det[c] = append(det[c], detachAll())
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "%d attaches at once (own managers, no nswire lock shared), median wall time over %d interleaved rounds\n", n, rounds)
	fmt.Fprintf(&tbl, "%-14s %-5s %13s %13s %13s %13s\n", "rcu_expedited", "hook", "attach-all", "per-attach", "detach-all", "per-detach")
	for _, on := range []bool{true, false} {
		for _, h := range hooks {
			c := cell{on, h.name}
			a, d := median(att[c]), median(det[c])
			fmt.Fprintf(&tbl, "%-14d %-5s %11.1fms %11.1fms %11.1fms %11.1fms\n", boolInt(on), h.name, ms(a), ms(a)/n, ms(d), ms(d)/n)
			unit := fmt.Sprintf("-%s-rcu%d", h.name, boolInt(on))
			b.ReportMetric(ms(a), "ms/attach-all"+unit)
			b.ReportMetric(ms(d), "ms/detach-all"+unit)
		}
	}
	b.Log("\n" + tbl.String())
}
