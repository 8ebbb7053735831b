//go:build linux

package test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/serve"
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
			m, err := control.NewManager(control.Config{StateDir: stateDir, PinDir: pinDir, DesiredDir: stateDir + ".desired"})
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
				store := control.Store{Dir: stateDir}
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
