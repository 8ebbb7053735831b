//go:build linux

package test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/nswire/nswire/control/serve"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/test/testenv"
)

// engineProxy stands between serve and the Docker engine: stopping it is,
// for serve, the engine going away (restarting the real engine would stop
// every other test's containers on this shared machine).
type engineProxy struct {
	path  string
	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newEngineProxy(t *testing.T) *engineProxy {
	p := &engineProxy{path: filepath.Join(t.TempDir(), "docker.sock"), conns: map[net.Conn]bool{}}
	p.start(t)
	t.Cleanup(p.stop)
	return p
}

func (p *engineProxy) start(t *testing.T) {
	t.Helper()
	os.Remove(p.path)
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", "/var/run/docker.sock")
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
}

// stop closes the listener and every connection through it.
func (p *engineProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// TestServeEngineRestart: the engine goes away while serve runs (its
// connection is cut and refused), a wired container restarts meanwhile and a
// new labelled one starts; when the engine is back, serve reconnects,
// resyncs, and both are wired.
func TestServeEngineRestart(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	proxy := newEngineProxy(t)
	testenv.Image(t)
	token := newToken()
	// Only serve's manager talks through the proxy: it reads DOCKER_HOST
	// when serve starts; the test's own client keeps the real socket.
	old, had := os.LookupEnv("DOCKER_HOST")
	os.Setenv("DOCKER_HOST", "unix://"+proxy.path)
	startServe(t, e, token, 30*time.Second)
	if had {
		os.Setenv("DOCKER_HOST", old)
	} else {
		os.Unsetenv("DOCKER_HOST")
	}
	id, name := runLabelled(t, cli, token, "srv-engine", enable(), "sleep", "300")
	before, _ := waitWired(t, e, cli, id)

	proxy.stop()
	waitEventReason(t, e, serve.ActEngine, "lost the Docker engine")
	if err := cli.ContainerRestart(context.Background(), id, container.StopOptions{Timeout: new(int)}); err != nil {
		t.Fatal(err)
	}
	id2, name2 := runLabelled(t, cli, token, "srv-engine2", enable(), "sleep", "300")
	time.Sleep(300 * time.Millisecond) // a few failed reconnection attempts
	proxy.start(t)

	after, _ := waitWired(t, e, cli, id)
	if after.Address.String() != before.Address.String() || after.MAC.String() != before.MAC.String() || after.Slot != before.Slot {
		t.Fatalf("after the engine came back %s is %+v, was %+v", name, after, before)
	}
	waitWired(t, e, cli, id2)
	waitEvent(t, e, name2, serve.ActWired)
	waitEventReason(t, e, serve.ActEngine, "connected to the Docker engine")
}

// waitEventReason polls the action log for an event with action whose
// reason contains want, after the last one seen so far.
func waitEventReason(t *testing.T, e *env, action, want string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		evs := eventsOf(t, e)
		for i := len(evs) - 1; i >= 0; i-- {
			if evs[i].Action == action && strings.Contains(evs[i].Reason, want) {
				return
			}
		}
	}
	t.Fatalf("no %q event with %q after 60s: %+v", action, want, eventsOf(t, e))
}

// TestServeRestartLoop: a labelled container with --restart=always whose
// process exits after 100 ms, for 30 s: serve wires and collects it over
// and over; afterwards nothing leaks (no veth, slot, record, pin or endpoint
// beyond the last wiring, and none after it is removed) and serve's
// goroutines are back to where they were.
func TestServeRestartLoop(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	token := newToken()
	image := testenv.Image(t)
	startServe(t, e, token, 30*time.Second)
	time.Sleep(200 * time.Millisecond)
	goroutines := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapInuse

	ctx := context.Background()
	name := testenv.ContainerName("srv-loop")
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: image, Cmd: []string{"sh", "-c", "sleep 0.1"},
		Labels: map[string]string{testenv.ContainerLabel: t.Name(), serveLabel: token, "nswire.enable": "true"}},
		&container.HostConfig{NetworkMode: "none", RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyAlways}},
		&network.NetworkingConfig{}, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}) })
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Second) // the loop under test runs this long
	ci, _ := cli.ContainerInspect(ctx, c.ID)
	restarts := ci.RestartCount
	evs := eventsOf(t, e)
	wired := len(eventsOfAction(evs, name, serve.ActWired)) + len(eventsOfAction(evs, name, serve.ActRewired))
	t.Logf("%d restarts by Docker, %d wirings by serve, %d actions logged", restarts, wired, len(evs))
	if restarts < 3 || wired < 2 {
		t.Fatalf("the loop did not loop: %d restarts, %d wirings", restarts, wired)
	}
	// At most one wiring at any time, whatever the moment.
	if recs, _, _ := (state.Store{Dir: e.stateDir}).List(); len(recs) > 1 {
		t.Fatalf("%d records for one container", len(recs))
	}
	if v := ourVeths(e); len(v) > 1 {
		t.Fatalf("veths during the loop: %v", v)
	}
	if eps := endpointsIn(t, e.pinDir); len(eps) > 1 {
		t.Fatalf("endpoints during the loop: %v", eps)
	}
	if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	var left string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		recs, _, _ := state.Store{Dir: e.stateDir}.List()
		pins, _ := os.ReadDir(filepath.Join(e.pinDir, "links"))
		eps := endpointsIn(t, e.pinDir)
		v := ourVeths(e)
		if len(recs) == 0 && len(pins) == 0 && len(eps) == 0 && len(v) == 0 {
			left = ""
			break
		}
		left = "records, pins, endpoints or veths left"
	}
	if left != "" {
		t.Fatal(left)
	}
	var g int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if g = runtime.NumGoroutine(); g <= goroutines+2 {
			break
		}
	}
	if g > goroutines+2 {
		t.Fatalf("goroutines: %d before the loop, %d after it", goroutines, g)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("heap in use: %d KiB before the loop, %d KiB after it; goroutines %d and %d", heap0>>10, ms.HeapInuse>>10, goroutines, g)
}
