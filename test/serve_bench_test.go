//go:build linux

package test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/dockerengine"
	"github.com/nswire/nswire/control/serve"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/test/testenv"
)

// BenchmarkServeRewire measures, per datapath mode, the time from a
// container's start event (the engine's own timestamp) to serve having
// wired its new namespace again (eth0 up with its address and default
// route, programs attached, record written: serve's action-log entry),
// median over 30 restarts; and the rewire itself as serve timed it. Run:
//
//	CI=true go test -run '^$' -bench BenchmarkServeRewire -benchtime 1x -v ./test/
func BenchmarkServeRewire(b *testing.B) {
	testenv.RequireRoot(b)
	cli := testenv.Docker(b)
	image := testenv.Image(b)
	const restarts = 30
	for _, mode := range []string{"off", "observe"} {
		b.Run(mode, func(b *testing.B) {
			stateDir := b.TempDir()
			pinDir := "/sys/fs/bpf/nswire-test-" + testenv.ContainerName("bench")
			m, err := control.NewManager(control.Config{StateDir: stateDir, PinDir: pinDir, NewEngine: dockerengine.New, DesiredDir: stateDir + ".desired"})
			if err != nil {
				b.Fatal(err)
			}
			token := newToken()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			ready := make(chan struct{})
			go func() {
				done <- serve.Run(ctx, m, serve.Config{Labels: map[string]string{serveLabel: token},
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func() { close(ready) }})
			}()
			<-ready
			name := testenv.ContainerName("srv-bench-" + mode)
			c, err := cli.ContainerCreate(ctx, &container.Config{Image: image, Cmd: []string{"sleep", "600"},
				Labels: map[string]string{testenv.ContainerLabel: b.Name(), serveLabel: token, "nswire.enable": "true", "nswire.mode": mode}},
				&container.HostConfig{NetworkMode: "none"}, &network.NetworkingConfig{}, nil, name)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
				// serve detaches the removed container, then stops.
				store := state.Store{Dir: stateDir}
				for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
					if r, _ := store.Get(c.ID); r == nil {
						break
					}
				}
				cancel()
				<-done
				m.Close()
				os.RemoveAll(pinDir)
			})
			starts, errs := cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
				filters.Arg("container", c.ID), filters.Arg("type", "container"), filters.Arg("event", "start"))})
			if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
				b.Fatal(err)
			}
			// waitFor returns serve's next wired/rewired entry after n.
			seen := 0
			waitFor := func() serve.Event {
				for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
					evs, _ := serve.ReadEvents(stateDir)
					var hits []serve.Event
					for _, ev := range evs {
						if ev.Container == name && (ev.Action == serve.ActWired || ev.Action == serve.ActRewired) {
							hits = append(hits, ev)
						}
					}
					if len(hits) > seen {
						seen = len(hits)
						return hits[len(hits)-1]
					}
				}
				b.Fatal("serve did not wire the container within 60s")
				return serve.Event{}
			}
			startEvent := func() time.Time {
				select {
				case m := <-starts:
					return time.Unix(0, m.TimeNano)
				case err := <-errs:
					b.Fatal(err)
				case <-time.After(60 * time.Second):
					b.Fatal("no start event")
				}
				return time.Time{}
			}
			startEvent()
			waitFor()
			var total, took []time.Duration
			for range restarts {
				if err := cli.ContainerRestart(ctx, c.ID, container.StopOptions{Timeout: new(int)}); err != nil {
					b.Fatal(err)
				}
				t0 := startEvent()
				ev := waitFor()
				if ev.Action != serve.ActRewired {
					b.Fatalf("got %+v, want a rewire", ev)
				}
				d, _ := time.ParseDuration(ev.Took)
				total, took = append(total, ev.Time.Sub(t0)), append(took, d)
			}
			b.ReportMetric(float64(median(total).Microseconds())/1000, "ms/start-to-wired-median")
			b.ReportMetric(float64(median(took).Microseconds())/1000, "ms/rewire-median")
			b.Logf("mode %s, %d restarts: start event to wired median %v (min %v, max %v); the rewire itself median %v (min %v, max %v)",
				mode, restarts, median(total), slices.Min(total), slices.Max(total), median(took), slices.Min(took), slices.Max(took))
		})
	}
}

// BenchmarkServe200 starts 200 labelled containers, then `nswire serve` as
// a process (cold start), and measures the time until all are wired, serve's
// resident memory with 200 containers, and its CPU time over 10 s of idle.
// Run: CI=true go test -run '^$' -bench BenchmarkServe200 -benchtime 1x -v -timeout 30m ./test/
func BenchmarkServe200(b *testing.B) {
	testenv.RequireRoot(b)
	cli := testenv.Docker(b)
	image := testenv.Image(b)
	const count = 200
	token := newToken()
	stateDir := b.TempDir()
	pinDir := "/sys/fs/bpf/nswire-test-" + testenv.ContainerName("bench200")
	bin := filepath.Join(b.TempDir(), "nswire")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/nswire").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	ctx := context.Background()
	ids := make([]string, count)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := cli.ContainerCreate(ctx, &container.Config{Image: image, Cmd: []string{"sleep", "1200"},
				Labels: map[string]string{testenv.ContainerLabel: b.Name(), serveLabel: token, "nswire.enable": "true"}},
				&container.HostConfig{NetworkMode: "none"}, &network.NetworkingConfig{}, nil, testenv.ContainerName(fmt.Sprintf("srv-200-%03d", i)))
			if err == nil {
				ids[i] = c.ID
				err = cli.ContainerStart(ctx, c.ID, container.StartOptions{})
			}
			if err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	b.Cleanup(func() {
		var wg sync.WaitGroup
		for _, id := range ids {
			if id == "" {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				cli.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true})
			}()
		}
		wg.Wait()
	})
	if b.Failed() {
		b.FailNow()
	}
	cmd := exec.Command(bin, "--state-dir", stateDir, "--pin-dir", pinDir, "serve", "--listen", "", "--only-label", serveLabel+"="+token)
	var log syncBuffer
	cmd.Stderr = &log
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		// Detach everything this benchmark's serve wired, then stop it.
		exec.Command(bin, "--state-dir", stateDir, "--pin-dir", pinDir, "gc").Run()
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		recs, _, _ := state.Store{Dir: stateDir}.List()
		for _, r := range recs {
			exec.Command(bin, "--state-dir", stateDir, "--pin-dir", pinDir, "detach", r.ID).Run()
		}
		os.RemoveAll(pinDir)
	})
	store := state.Store{Dir: stateDir}
	for {
		recs, _, _ := store.List()
		if len(recs) == count {
			break
		}
		if time.Since(t0) > 10*time.Minute {
			b.Fatalf("%d of %d wired after 10 min\n%s", len(recs), count, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cold := time.Since(t0)
	time.Sleep(2 * time.Second)
	rss := procStatusKB(b, cmd.Process.Pid, "VmRSS")
	cpu0 := procCPU(b, cmd.Process.Pid)
	time.Sleep(10 * time.Second)
	idle := procCPU(b, cmd.Process.Pid) - cpu0
	b.ReportMetric(cold.Seconds(), "s/cold-start-200")
	b.ReportMetric(float64(rss)/1024, "MiB/rss")
	b.ReportMetric(idle.Seconds()*1000/10, "ms-cpu/s-idle")
	b.Logf("cold start until %d containers wired: %v (%.1f ms each); RSS %d KiB; CPU over 10 s idle: %v", count, cold, float64(cold.Milliseconds())/count, rss, idle)
}

func procStatusKB(b *testing.B, pid int, key string) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// procCPU is the user + system CPU time of pid.
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}
