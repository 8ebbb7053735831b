//go:build linux

package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/dockerengine"
	"github.com/nswire/nswire/control/serve"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/test/testenv"
)

// serveLabel limits a test's serve to the containers that test starts: other
// tests (and other people's containers) on the same engine stay untouched.
const serveLabel = "org.nswire.serve-test"

// syncBuffer is a log sink shared by serve's goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// served is a serve running in this process on a test's own state, pin and
// desired-state directories.
type served struct {
	t      *testing.T
	e      *env
	token  string // the value of serveLabel this serve manages
	addr   string // of /metrics and /healthz
	cancel context.CancelFunc
	done   chan error
	log    *syncBuffer
}

func desiredDir(e *env) string { return e.stateDir + ".desired" }

// startServe runs serve.Run with its own Manager until stop (or the end of
// the test), and waits for its first full reconcile.
func startServe(t *testing.T, e *env, token string, resync time.Duration) *served {
	t.Helper()
	m, err := control.NewManager(control.Config{StateDir: e.stateDir, PinDir: e.pinDir, NewEngine: dockerengine.New, DesiredDir: desiredDir(e)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{t: t, e: e, token: token, cancel: cancel, done: make(chan error, 1), log: &syncBuffer{}}
	ready := make(chan struct{})
	addr := make(chan string, 1)
	go func() {
		err := serve.Run(ctx, m, serve.Config{
			Listen:    "127.0.0.1:0",
			Resync:    resync,
			Labels:    map[string]string{serveLabel: token},
			Logger:    slog.New(slog.NewTextHandler(s.log, nil)),
			Ready:     func() { close(ready) },
			Listening: func(a string) { addr <- a },
		})
		m.Close()
		s.done <- err
	}()
	select {
	case <-ready:
		s.addr = <-addr
	case err := <-s.done:
		cancel()
		t.Fatalf("serve ended before it was ready: %v\n%s", err, s.log.String())
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("serve not ready after 60s\n%s", s.log.String())
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("serve log:\n%s", s.log.String())
		}
	})
	return s
}

// stop ends serve and waits for it; it is a no-op when already stopped.
func (s *served) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("serve returned %v", err)
		}
	case <-time.After(60 * time.Second):
		s.t.Errorf("serve did not stop within 60s")
	}
}

// running reports whether serve is still running.
func (s *served) running() bool {
	select {
	case err := <-s.done:
		s.done <- err
		return false
	default:
		return s.cancel != nil
	}
}

// runLabelled starts a --network=none container from the test image with
// labels (and serve's token), without waiting for anything. Cleanup
// force-removes it.
func runLabelled(t *testing.T, cli *client.Client, token, prefix string, labels map[string]string, cmd ...string) (id, name string) {
	t.Helper()
	image := testenv.Image(t)
	name = testenv.ContainerName(prefix)
	l := map[string]string{testenv.ContainerLabel: t.Name(), serveLabel: token}
	for k, v := range labels {
		l[k] = v
	}
	cfg := &container.Config{Image: image, Labels: l}
	if len(cmd) > 0 {
		cfg.Cmd = cmd
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cli.ContainerCreate(ctx, cfg, &container.HostConfig{NetworkMode: "none"}, &network.NetworkingConfig{}, nil, name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove %s: %v", name, err)
		}
	})
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return c.ID, name
}

func newToken() string { return strings.ToLower(testenv.ContainerName("s")) }

func enable(extra ...string) map[string]string {
	l := map[string]string{"nswire.enable": "true"}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

// currentPID is the container's init PID now (0 when not running).
func currentPID(t *testing.T, cli *client.Client, id string) int {
	t.Helper()
	ci, err := cli.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if ci.State == nil || !ci.State.Running {
		return 0
	}
	return ci.State.Pid
}

func nsInode(pid int) uint64 {
	var st unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil {
		return 0
	}
	return st.Ino
}

// waitWired polls (no sleep-and-hope: a deadline) until the record of id
// describes the container's current namespace, and returns it with the
// time it took.
func waitWired(t *testing.T, e *env, cli *client.Client, id string) (*state.Record, time.Duration) {
	t.Helper()
	start := time.Now()
	store := state.Store{Dir: e.stateDir}
	for deadline := start.Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		pid := currentPID(t, cli, id)
		if pid == 0 {
			continue
		}
		r, err := store.Get(id)
		if err == nil && r != nil && r.NetnsInode == nsInode(pid) && r.PID == pid {
			return r, time.Since(start)
		}
	}
	r, err := store.Get(id)
	t.Fatalf("container %.12s not wired after 60s (record %+v, %v)", id, r, err)
	return nil, 0
}

// eventsOf returns serve's action log.
func eventsOf(t *testing.T, e *env) []serve.Event {
	t.Helper()
	evs, err := serve.ReadEvents(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// waitEvent polls the action log for an event of container name with
// action, and returns it.
func waitEvent(t *testing.T, e *env, name, action string) serve.Event {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, ev := range eventsOf(t, e) {
			if ev.Container == name && ev.Action == action {
				return ev
			}
		}
	}
	t.Fatalf("no %q event for %s after 60s: %+v", action, name, eventsOf(t, e))
	return serve.Event{}
}

// udpTotals reads the ipv4/udp counters of id through the CLI.
func udpTotals(e *env, id string) (rx, tx control.Flow) {
	s := e.stats(id)
	return s.RXByProto["ipv4/udp"], s.TXByProto["ipv4/udp"]
}

// TestServeLabelsRestartCounters: a labelled container is wired by serve
// with nobody running attach; docker restart and stop+start wire it again
// with the same address, MAC and counter slot, and the counters continue
// exactly (a known burst before and after the restart, totals add up);
// while stopped, ls says "stopped, waiting"; /healthz and /metrics answer.
func TestServeLabelsRestartCounters(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	token := newToken()
	s := startServe(t, e, token, 30*time.Second)
	id, name := runLabelled(t, cli, token, "srv-web", enable())
	rec, took := waitWired(t, e, cli, id)
	t.Logf("wired by serve %s after the container started (polled)", took)
	if string(rec.Mode) != "observe" || rec.Bridge != "docker0" {
		t.Fatalf("record = %+v: want the attach defaults", rec)
	}
	if body := httpGet(t, "http://"+rec.IP().String()+"/"); body != testenv.IndexHTML {
		t.Fatalf("page = %q", body)
	}
	ev := waitEvent(t, e, name, serve.ActWired)
	if ev.Address != rec.Address.String() || ev.MAC != rec.MAC.String() {
		t.Fatalf("event %+v does not match the record %+v", ev, rec)
	}
	if d, _ := (state.DesiredStore{Dir: desiredDir(e)}).Get(id); d == nil || d.Address != rec.Address.String() || d.MAC != rec.MAC.String() || d.Source != state.SourceLabel {
		t.Fatalf("desired state = %+v: want the label entry with the chosen address", d)
	}

	const n, size = 200, 300
	frame := uint64(14 + 20 + 8 + size)
	one := control.Flow{Packets: 1, Bytes: 14 + 20 + 8 + 1}
	phase := func(pid int) (rx0, tx0, rx1, tx1 control.Flow) {
		cns := containerNS(t, pid)
		inC := udpSocketIn(t, cns, rec.IP().String()+":9000")
		onHost := udpSocketIn(t, hostNS(t), "172.17.0.1:0")
		warmARP(t, onHost, inC) // one 1-byte datagram each way
		rx0, tx0 = udpTotals(e, id)
		burst(t, onHost, inC, n, size)
		burst(t, inC, onHost, n, size)
		rx1, tx1 = udpTotals(e, id)
		return
	}
	want := control.Flow{Packets: n, Bytes: n * frame}
	sub := func(a, b control.Flow) control.Flow {
		return control.Flow{Packets: b.Packets - a.Packets, Bytes: b.Bytes - a.Bytes}
	}
	rxA0, txA0, rxA1, txA1 := phase(rec.PID)
	if sub(rxA0, rxA1) != want || sub(txA0, txA1) != want {
		t.Fatalf("before restart: rx %+v tx %+v, want %+v each", sub(rxA0, rxA1), sub(txA0, txA1), want)
	}

	ctx := context.Background()
	for round, restart := range []func(){
		func() {
			if err := cli.ContainerRestart(ctx, id, container.StopOptions{Timeout: new(int)}); err != nil {
				t.Fatal(err)
			}
		},
		func() {
			if err := cli.ContainerStop(ctx, id, container.StopOptions{Timeout: new(int)}); err != nil {
				t.Fatal(err)
			}
			waitEvent(t, e, name, serve.ActWaiting)
			var rows []struct {
				ID     string `json:"id"`
				PID    int    `json:"pid"`
				Status string `json:"status"`
			}
			if err := json.Unmarshal([]byte(e.ok("ls", "-o", "json")), &rows); err != nil || len(rows) != 1 || rows[0].Status != serve.StateWaiting {
				t.Fatalf("ls -o json while stopped = %+v, %v: want one row %q", rows, err, serve.StateWaiting)
			}
			if ls := e.ok("ls"); !strings.Contains(ls, "stopped, waiting") {
				t.Fatalf("ls while stopped:\n%s", ls)
			}
			// gc beside a running serve keeps the waiting record (its
			// address and slot): the counters continue after the start.
			if out := e.ok("gc"); strings.Contains(out, name) {
				t.Fatalf("gc collected the waiting container:\n%s", out)
			}
			if err := cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
				t.Fatal(err)
			}
		},
	} {
		old := rec
		restart()
		rec, took = waitWired(t, e, cli, id)
		t.Logf("round %d: wired again %s after the restart call returned (polled)", round, took)
		if rec.Address.String() != old.Address.String() || rec.MAC.String() != old.MAC.String() || rec.Slot != old.Slot || string(rec.Mode) != string(old.Mode) || rec.HostIf != old.HostIf {
			t.Fatalf("round %d: rewired as %+v, was %+v: want the same address, MAC, slot, mode", round, rec, old)
		}
		if rec.PID == old.PID || rec.HostIfindex == old.HostIfindex {
			t.Fatalf("round %d: same PID %d or host ifindex %d after a restart (namespace inodes may be reused, PIDs here are not)", round, rec.PID, rec.HostIfindex)
		}
		if body := httpGet(t, "http://"+rec.IP().String()+"/"); body != testenv.IndexHTML {
			t.Fatalf("round %d: page = %q", round, body)
		}
		rxB0, txB0, rxB1, txB1 := phase(rec.PID)
		// Not reset and not doubled: the totals are the earlier totals plus
		// the warm-up datagram of this phase, then plus the burst.
		if rxB0 != (control.Flow{Packets: rxA1.Packets + one.Packets, Bytes: rxA1.Bytes + one.Bytes}) ||
			txB0 != (control.Flow{Packets: txA1.Packets + one.Packets, Bytes: txA1.Bytes + one.Bytes}) {
			t.Fatalf("round %d: counters after the restart rx %+v tx %+v; before it rx %+v tx %+v: want them continued (+1 datagram of warm-up)", round, rxB0, txB0, rxA1, txA1)
		}
		if sub(rxB0, rxB1) != want || sub(txB0, txB1) != want {
			t.Fatalf("round %d: burst after restart: rx %+v tx %+v, want %+v each", round, sub(rxB0, rxB1), sub(txB0, txB1), want)
		}
		rxA1, txA1 = rxB1, txB1
	}
	if n := len(eventsOfAction(eventsOf(t, e), name, serve.ActRewired)); n != 2 {
		t.Fatalf("%d rewired events, want 2: %+v", n, eventsOf(t, e))
	}

	// /healthz and /metrics.
	resp, err := http.Get("http://" + s.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h serve.Health
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != 200 || !h.OK || h.Engine != "ok" || h.BPFFS != "ok" || h.LastFullReconcile.IsZero() {
		t.Fatalf("/healthz = %d %+v", resp.StatusCode, h)
	}
	resp, err = http.Get("http://" + s.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantLine := fmt.Sprintf(`nswire_packets_total{container=%q,direction="rx",host_if=%q,id=%q,proto="ipv4/udp"} %d`, name, rec.HostIf, id, rxA1.Packets)
	if !strings.Contains(string(body), wantLine) {
		t.Fatalf("/metrics lacks %s", wantLine)
	}
}

func eventsOfAction(evs []serve.Event, name, action string) []serve.Event {
	var out []serve.Event
	for _, ev := range evs {
		if ev.Container == name && ev.Action == action {
			out = append(out, ev)
		}
	}
	return out
}

// TestServeBadLabels: a container with a bad label value stays unwired with
// a reason naming the container, the label and the value (log, events, ls);
// the others are wired; serve keeps running.
func TestServeBadLabels(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	token := newToken()
	s := startServe(t, e, token, 30*time.Second)
	bad := []struct {
		prefix, label, value string
	}{
		{"srv-badmode", "nswire.mode", "turbo"},
		{"srv-badip", "nswire.ip", "172.17.0.300/16"},
		{"srv-gwip", "nswire.ip", "172.17.0.1/16"}, // the gateway's: refused by the machine check
		{"srv-nobridge", "nswire.bridge", "nswnobr0"},
		{"srv-typo", "nswire.adress", "172.17.0.9"},
	}
	var badIDs, badNames []string
	for _, b := range bad {
		id, name := runLabelled(t, cli, token, b.prefix, enable(b.label, b.value), "sleep", "300")
		badIDs, badNames = append(badIDs, id), append(badNames, name)
	}
	goodID, goodName := runLabelled(t, cli, token, "srv-good", enable(), "sleep", "300")
	rec, _ := waitWired(t, e, cli, goodID)
	if rec.Name != goodName {
		t.Fatalf("record %+v", rec)
	}
	for i, b := range bad {
		ev := waitEvent(t, e, badNames[i], serve.ActUnwired)
		t.Logf("reason: %s", ev.Reason)
		for _, w := range []string{badNames[i], b.label, b.value} {
			if !strings.Contains(ev.Reason, w) {
				t.Errorf("reason %q does not name %q", ev.Reason, w)
			}
		}
		if r, _ := (state.Store{Dir: e.stateDir}).Get(badIDs[i]); r != nil {
			t.Errorf("%s was wired despite %s=%s: %+v", badNames[i], b.label, b.value, r)
		}
		if !strings.Contains(s.log.String(), badNames[i]) {
			t.Errorf("the log does not name %s", badNames[i])
		}
	}
	// An address in use (the good one's) is refused by the machine check.
	usedID, usedName := runLabelled(t, cli, token, "srv-usedip", enable("nswire.ip", rec.Address.String()), "sleep", "300")
	ev := waitEvent(t, e, usedName, serve.ActUnwired)
	t.Logf("reason: %s", ev.Reason)
	for _, w := range []string{usedName, "nswire.ip", rec.Address.String(), "already in use by " + goodName} {
		if !strings.Contains(ev.Reason, w) {
			t.Errorf("reason %q does not name %q", ev.Reason, w)
		}
	}
	if r, _ := (state.Store{Dir: e.stateDir}).Get(usedID); r != nil {
		t.Errorf("%s was wired with a used address: %+v", usedName, r)
	}
	// A labelled container that Docker wires itself (not --network=none)
	// is left alone, with the reason.
	brName := testenv.ContainerName("srv-bridged")
	br, err := cli.ContainerCreate(context.Background(), &container.Config{Image: testenv.ImageName(), Cmd: []string{"sleep", "300"},
		Labels: map[string]string{testenv.ContainerLabel: t.Name(), serveLabel: token, "nswire.enable": "true"}},
		&container.HostConfig{NetworkMode: "bridge"}, &network.NetworkingConfig{}, nil, brName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.ContainerRemove(context.Background(), br.ID, container.RemoveOptions{Force: true}) })
	if err := cli.ContainerStart(context.Background(), br.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	ev = waitEvent(t, e, brName, serve.ActUnwired)
	t.Logf("reason: %s", ev.Reason)
	for _, w := range []string{brName, `nswire.enable="true"`, "not --network=none"} {
		if !strings.Contains(ev.Reason, w) {
			t.Errorf("reason %q does not name %q", ev.Reason, w)
		}
	}
	ls := e.ok("ls")
	for i, b := range bad {
		if !strings.Contains(ls, badNames[i]) || !strings.Contains(ls, b.label) {
			t.Errorf("ls does not show %s unwired with %s:\n%s", badNames[i], b.label, ls)
		}
	}
	if out := e.ok("events"); !strings.Contains(out, "unwired") || !strings.Contains(out, badNames[0]) {
		t.Errorf("nswire events:\n%s", out)
	}
	if !s.running() {
		t.Fatal("serve stopped")
	}
	// No veth was left by the failed attaches: only the good one's.
	links, _ := netlink.LinkList()
	tag := "nswire:" + e.stateDir
	var ours []string
	for _, l := range links {
		if l.Attrs().Alias == tag {
			ours = append(ours, l.Attrs().Name)
		}
	}
	if len(ours) != 1 || ours[0] != rec.HostIf {
		t.Fatalf("veths of this test: %v, want only %s", ours, rec.HostIf)
	}
}

// TestServeManyAtOnce starts many labelled containers at once: all are
// wired with distinct addresses; some are removed with docker rm -f while
// serve is wiring the batch; at the end, removing all leaves nothing: no
// record, desired entry, veth, link pin or endpoint.
func TestServeManyAtOnce(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	token := newToken()
	testenv.Image(t)
	startServe(t, e, token, 30*time.Second)
	const count = 30
	ids := make([]string, count)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, _ := runLabelledAsync(t, cli, token, fmt.Sprintf("srv-many%02d", i))
			mu.Lock()
			ids[i] = id
			mu.Unlock()
		}()
	}
	wg.Wait()
	// Remove every fifth at once, likely in the middle of the batch.
	ctx := context.Background()
	var removed, kept []string
	for i, id := range ids {
		if id == "" {
			t.Fatal("a container failed to start")
		}
		if i%5 == 2 {
			if err := cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
			removed = append(removed, id)
		} else {
			kept = append(kept, id)
		}
	}
	addrs := map[string]string{}
	slots := map[uint32]string{}
	for _, id := range kept {
		r, _ := waitWired(t, e, cli, id)
		if other, dup := addrs[r.Address.String()]; dup {
			t.Fatalf("%s and %s both have %s", other, r.Name, r.Address.String())
		}
		if other, dup := slots[r.Slot]; dup {
			t.Fatalf("%s and %s both have slot %d", other, r.Name, r.Slot)
		}
		addrs[r.Address.String()], slots[r.Slot] = r.Name, r.Name
	}
	for _, id := range kept {
		if err := cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	// Everything goes: records, desired entries, veths, pins, endpoints.
	ds := state.DesiredStore{Dir: desiredDir(e)}
	tag := "nswire:" + e.stateDir
	var left string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		recs, _, _ := state.Store{Dir: e.stateDir}.List()
		des, _, _ := ds.List()
		links, _ := netlink.LinkList()
		var veths []string
		for _, l := range links {
			if l.Attrs().Alias == tag {
				veths = append(veths, l.Attrs().Name)
			}
		}
		pins, _ := os.ReadDir(filepath.Join(e.pinDir, "links"))
		eps := endpointsIn(t, e.pinDir)
		left = fmt.Sprintf("records %d, desired %d, veths %v, link pins %d, endpoints %v", len(recs), len(des), veths, len(pins), eps)
		if len(recs) == 0 && len(des) == 0 && len(veths) == 0 && len(pins) == 0 && len(eps) == 0 {
			left = ""
			break
		}
	}
	if left != "" {
		t.Fatalf("after removing every container: %s", left)
	}
	t.Logf("%d wired with distinct addresses and slots, %d removed mid-batch, nothing left", len(kept), len(removed))
}

// runLabelledAsync is runLabelled for goroutines: errors are returned as an
// empty ID (the caller fails the test).
func runLabelledAsync(t *testing.T, cli *client.Client, token, prefix string) (string, string) {
	image := testenv.ImageName()
	name := testenv.ContainerName(prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := &container.Config{Image: image, Cmd: []string{"sleep", "300"}, Labels: map[string]string{
		testenv.ContainerLabel: t.Name(), serveLabel: token, "nswire.enable": "true"}}
	c, err := cli.ContainerCreate(ctx, cfg, &container.HostConfig{NetworkMode: "none"}, &network.NetworkingConfig{}, nil, name)
	if err != nil {
		return "", ""
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	})
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return "", ""
	}
	return c.ID, name
}

// TestServeSecondInstanceRefuses: a second serve on the same state refuses
// and names the PID of the first, in process and as a command.
func TestServeSecondInstanceRefuses(t *testing.T) {
	e := newEnv(t)
	startServe(t, e, newToken(), 30*time.Second)
	m, err := control.NewManager(control.Config{StateDir: e.stateDir, PinDir: e.pinDir, NewEngine: dockerengine.New, DesiredDir: desiredDir(e)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = serve.Run(context.Background(), m, serve.Config{Labels: map[string]string{serveLabel: "x"}})
	pid := "pid " + strconv.Itoa(os.Getpid())
	if err == nil || !strings.Contains(err.Error(), pid) {
		t.Fatalf("second serve: %v; want a refusal naming %s", err, pid)
	}
	e.fails([]string{"serve", "--listen", ""}, "already running", pid)
}

// TestServeAdoptsAndRecovers: a restarted serve adopts what is wired
// (nothing is wired twice); a container attached with `nswire attach`
// (no labels) is wired again by serve after a docker restart; after a
// simulated reboot (serve stopped, the run state emptied, the pins removed,
// the containers restarted) serve wires both again with the same addresses
// and MACs.
func TestServeAdoptsAndRecovers(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	token := newToken()
	s := startServe(t, e, token, 30*time.Second)
	lid, lname := runLabelled(t, cli, token, "srv-adopt", enable("nswire.mode", "off"), "sleep", "300")
	lrec, _ := waitWired(t, e, cli, lid)
	// An unlabelled container attached by hand (serve's token so that this
	// test's serve may manage it).
	aid, aname := runLabelled(t, cli, token, "srv-attached", nil, "sleep", "300")
	waitPID(t, cli, aid)
	arec := e.attachJSON(aid)
	if d, _ := (state.DesiredStore{Dir: desiredDir(e)}).Get(aid); d == nil || d.Source != state.SourceAttach || d.Address != arec.Address.String() {
		t.Fatalf("attach recorded %+v", d)
	}
	s.stop()

	s = startServe(t, e, token, 30*time.Second)
	waitEvent(t, e, lname, serve.ActAdopted)
	waitEvent(t, e, aname, serve.ActAdopted)
	if r, _ := (state.Store{Dir: e.stateDir}).Get(lid); r == nil || r.HostIfindex != lrec.HostIfindex {
		t.Fatalf("adopting changed the wiring: %+v, was %+v", r, lrec)
	}
	if err := cli.ContainerRestart(context.Background(), aid, container.StopOptions{Timeout: new(int)}); err != nil {
		t.Fatal(err)
	}
	r, _ := waitWired(t, e, cli, aid)
	if r.Address.String() != arec.Address.String() || r.MAC.String() != arec.MAC.String() || r.Slot != arec.Slot {
		t.Fatalf("attached container rewired as %+v, was %+v", r, arec)
	}
	s.stop()

	// "Reboot": no run state, no pins, the containers restarted.
	entries, _ := os.ReadDir(e.stateDir)
	for _, en := range entries {
		os.RemoveAll(filepath.Join(e.stateDir, en.Name()))
	}
	os.RemoveAll(e.pinDir)
	for _, id := range []string{lid, aid} {
		if err := cli.ContainerRestart(context.Background(), id, container.StopOptions{Timeout: new(int)}); err != nil {
			t.Fatal(err)
		}
	}
	startServe(t, e, token, 30*time.Second)
	for _, want := range []*state.Record{lrec, arec} {
		got, _ := waitWired(t, e, cli, want.ID)
		if got.Address.String() != want.Address.String() || got.MAC.String() != want.MAC.String() || string(got.Mode) != string(want.Mode) {
			t.Fatalf("after the reboot %s is %s %s %s, was %s %s %s", want.Name, got.Address.String(), got.MAC.String(), string(got.Mode), want.Address.String(), want.MAC.String(), string(want.Mode))
		}
	}
	// Detach removes the attached one from the desired state.
	e.ok("detach", aid)
	if d, _ := (state.DesiredStore{Dir: desiredDir(e)}).Get(aid); d != nil {
		t.Fatalf("detach left the desired entry %+v", d)
	}
}

func waitPID(t *testing.T, cli *client.Client, id string) int {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if pid := currentPID(t, cli, id); pid > 0 {
			return pid
		}
	}
	t.Fatalf("container %.12s not running after 60s", id)
	return 0
}

// waitForNetwork is the entrypoint prefix the README documents: it waits
// (no tool needed but sh and grep) until eth0 has its default route, which
// nswire adds after the address, so the network is complete.
const waitForNetwork = `i=0; until grep -q '^eth0[[:space:]]00000000' /proc/net/route; do i=$((i+1)); [ $i -gt 600 ] && { echo 'no network after 30s' >&2; exit 1; }; sleep 0.05; done; `

// TestServeEntrypointWaits: a container whose entrypoint waits for eth0 as
// the README shows starts its real work only once serve has wired it.
func TestServeEntrypointWaits(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	token := newToken()
	startServe(t, e, token, 30*time.Second)
	id, _ := runLabelled(t, cli, token, "srv-wait", enable(), "sh", "-c", waitForNetwork+`echo "up: $(grep -c . /proc/net/route) routes"; exec sleep 300`)
	waitWired(t, e, cli, id)
	var out string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		rc, err := cli.ContainerLogs(context.Background(), id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if out = string(b); strings.Contains(out, "up: ") {
			break
		}
	}
	// Header line, the default route, the subnet route: 3 lines.
	if !strings.Contains(out, "up: 3 routes") {
		t.Fatalf("entrypoint output %q: want it to have waited for the network", out)
	}
}

// TestServeCollectsRemovedWhileDown: a wired container removed while serve
// is not running is detached and forgotten when serve starts: its address
// freed, no record, desired entry, veth, pin or endpoint left; one that was
// stopped meanwhile stays, waiting.
func TestServeCollectsRemovedWhileDown(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	token := newToken()
	s := startServe(t, e, token, 30*time.Second)
	goneID, goneName := runLabelled(t, cli, token, "srv-gone", enable(), "sleep", "300")
	stopID, stopName := runLabelled(t, cli, token, "srv-stopped", enable(), "sleep", "300")
	gone, _ := waitWired(t, e, cli, goneID)
	stopped, _ := waitWired(t, e, cli, stopID)
	s.stop()
	ctx := context.Background()
	if err := cli.ContainerRemove(ctx, goneID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerStop(ctx, stopID, container.StopOptions{Timeout: new(int)}); err != nil {
		t.Fatal(err)
	}
	startServe(t, e, token, 30*time.Second)
	ev := waitEvent(t, e, goneName, serve.ActDetached)
	if !strings.Contains(ev.Reason, "freed "+gone.Address.String()) {
		t.Fatalf("detached event %+v does not free %s", ev, gone.Address.String())
	}
	waitEvent(t, e, stopName, serve.ActWaiting)
	if r, _ := (state.Store{Dir: e.stateDir}).Get(goneID); r != nil {
		t.Fatalf("record of the removed container left: %+v", r)
	}
	if d, _ := (state.DesiredStore{Dir: desiredDir(e)}).Get(goneID); d != nil {
		t.Fatalf("desired entry of the removed container left: %+v", d)
	}
	if r, _ := (state.Store{Dir: e.stateDir}).Get(stopID); r == nil || r.Address.String() != stopped.Address.String() {
		t.Fatalf("the stopped container lost its record: %+v", r)
	}
	if eps := endpointsIn(t, e.pinDir); len(eps) != 1 {
		t.Fatalf("endpoints: %v, want only the stopped container's", eps)
	}
	if _, err := os.Stat(filepath.Join(e.pinDir, "links", gone.HostIf)); !os.IsNotExist(err) {
		t.Fatalf("link pins of the removed container left: %v", err)
	}
}

// TestServeFastpathAfterRestart: two containers in mode fastpath; after one
// restarts, serve's rewire points the fast path at its new veth: a burst
// between them is fast-pathed in full again, and counted once.
func TestServeFastpathAfterRestart(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	token := newToken()
	startServe(t, e, token, 30*time.Second)
	aID, _ := runLabelled(t, cli, token, "srv-fpa", enable("nswire.mode", "fastpath"), "sleep", "300")
	bID, _ := runLabelled(t, cli, token, "srv-fpb", enable("nswire.mode", "fastpath"), "sleep", "300")
	a, _ := waitWired(t, e, cli, aID)
	b, _ := waitWired(t, e, cli, bID)
	const n, size = 100, 200
	send := func(bPID int) {
		inA := udpSocketIn(t, containerNS(t, a.PID), a.IP().String()+":0")
		inB := udpSocketIn(t, containerNS(t, bPID), b.IP().String()+":9000")
		warmARP(t, inA, inB)
		before := e.stats(aID).Fastpathed
		rxB := e.stats(bID).RXByProto["ipv4/udp"]
		burst(t, inA, inB, n, size)
		after := e.stats(aID).Fastpathed
		if got := after.Packets - before.Packets; got != n {
			t.Fatalf("fast-pathed %d of %d datagrams from A to B", got, n)
		}
		if got := e.stats(bID).RXByProto["ipv4/udp"].Packets - rxB.Packets; got != n {
			t.Fatalf("B counted %d of %d datagrams", got, n)
		}
	}
	send(b.PID)
	if err := cli.ContainerRestart(context.Background(), bID, container.StopOptions{Timeout: new(int)}); err != nil {
		t.Fatal(err)
	}
	b2, _ := waitWired(t, e, cli, bID)
	if b2.Address.String() != b.Address.String() || b2.Slot != b.Slot || b2.Mode != "fastpath" {
		t.Fatalf("B rewired as %+v, was %+v", b2, b)
	}
	send(b2.PID)
}

// TestServeAddressTakenWhileStopped: while two containers are stopped,
// foreign hosts take their addresses. The one whose address nswire chose
// moves to a free one (same MAC and counter slot); the one with nswire.ip
// stays unwired with the reason, and is wired with its address as soon as
// the address is free again (serve retries with backoff, no event needed).
func TestServeAddressTakenWhileStopped(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	br := testBridge(t, "nswtbrsrv", "10.231.19.1/24")
	token := newToken()
	startServe(t, e, token, 30*time.Second)
	aID, aName := runLabelled(t, cli, token, "srv-chosen", enable("nswire.bridge", br.Name), "sleep", "300")
	bID, bName := runLabelled(t, cli, token, "srv-given", enable("nswire.bridge", br.Name, "nswire.ip", "10.231.19.100/24"), "sleep", "300")
	a, _ := waitWired(t, e, cli, aID)
	b, _ := waitWired(t, e, cli, bID)
	ctx := context.Background()
	for _, id := range []string{aID, bID} {
		if err := cli.ContainerStop(ctx, id, container.StopOptions{Timeout: new(int)}); err != nil {
			t.Fatal(err)
		}
	}
	squatter(t, br.Name, "nswsqa", a.Address.String())
	squatter(t, br.Name, "nswsqb", b.Address.String())
	for _, id := range []string{aID, bID} {
		if err := cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	a2, _ := waitWired(t, e, cli, aID)
	if a2.Address.String() == a.Address.String() || a2.MAC.String() != a.MAC.String() || a2.Slot != a.Slot {
		t.Fatalf("%s rewired as %s mac %s slot %d; was %s mac %s slot %d: want another address, the same MAC and slot", aName, a2.Address.String(), a2.MAC.String(), a2.Slot, a.Address.String(), a.MAC.String(), a.Slot)
	}
	if ev := eventsOfAction(eventsOf(t, e), aName, serve.ActRewired); len(ev) != 1 || !strings.Contains(ev[0].Reason, "taken by another host") {
		t.Fatalf("rewired events of %s: %+v", aName, ev)
	}
	ev := waitEvent(t, e, bName, serve.ActError)
	t.Logf("reason: %s", ev.Reason)
	if !strings.Contains(ev.Reason, "10.231.19.100 is now in use") {
		t.Fatalf("reason %q does not say the address is in use", ev.Reason)
	}
	// The host goes, and so does the bridge's memory of it.
	netlink.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "nswsqb"}})
	if neighs, err := netlink.NeighList(br.Index, netlink.FAMILY_V4); err == nil {
		for _, n := range neighs {
			if n.IP.String() == "10.231.19.100" {
				netlink.NeighDel(&n)
			}
		}
	}
	b2, _ := waitWired(t, e, cli, bID)
	if b2.Address.String() != b.Address.String() || b2.MAC.String() != b.MAC.String() || b2.Slot != b.Slot {
		t.Fatalf("%s wired as %+v, was %+v", bName, b2, b)
	}
}

// TestServeDetachBesideServe: `nswire detach` while serve runs removes the
// container from the desired state, so serve does not wire it again after a
// restart (an unlabelled container attached by hand).
func TestServeDetachBesideServe(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	token := newToken()
	startServe(t, e, token, 30*time.Second)
	id, _ := runLabelled(t, cli, token, "srv-handmade", nil, "sleep", "300")
	waitPID(t, cli, id)
	e.attachJSON(id)
	e.ok("detach", id)
	if err := cli.ContainerRestart(context.Background(), id, container.StopOptions{Timeout: new(int)}); err != nil {
		t.Fatal(err)
	}
	// Events are handled in order, one at a time: once a container started
	// after the restart is wired, the restart has been handled.
	sentinel, _ := runLabelled(t, cli, token, "srv-sentinel", enable(), "sleep", "300")
	waitWired(t, e, cli, sentinel)
	if r, _ := (state.Store{Dir: e.stateDir}).Get(id); r != nil {
		t.Fatalf("serve wired a detached container again: %+v", r)
	}
}

// TestServeDualStack: a container labelled with nswire.network (a Docker
// network made with --ipv6) and nswire.ip6 is wired by serve with both
// families, its page answers over IPv6, and after a restart it has the same
// IPv6 address (kept in the desired state too).
func TestServeDualStack(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	ctx := context.Background()
	netName := testenv.ContainerName("nswsv6")
	resp, err := cli.NetworkCreate(ctx, netName, network.CreateOptions{
		Driver:     "bridge",
		EnableIPv6: boolPtr(true),
		IPAM: &network.IPAM{Config: []network.IPAMConfig{
			{Subnet: "10.234.13.0/28", Gateway: "10.234.13.1"},
			{Subnet: "fd00:4e53:7771::/64", Gateway: "fd00:4e53:7771::1"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.NetworkRemove(context.Background(), resp.ID) })
	testenv.RunOn(t, cli, netName, "sv6peer", "sleep", "300")
	token := newToken()
	startServe(t, e, token, 30*time.Second)
	want6 := netip.MustParsePrefix("fd00:4e53:7771::20/64")
	id, _ := runLabelled(t, cli, token, "srv-v6", enable("nswire.network", netName, "nswire.ip6", want6.String()))
	rec, _ := waitWired(t, e, cli, id)
	if rec.Address6 != want6 || rec.Bridge != "br-"+resp.ID[:12] || !netip.MustParsePrefix("10.234.13.0/28").Contains(rec.IP()) {
		t.Fatalf("record: bridge %s, address %s, address6 %s", rec.Bridge, rec.Address, rec.Address6)
	}
	if body := httpGet(t, fmt.Sprintf("http://[%s]/", want6.Addr())); body != testenv.IndexHTML {
		t.Fatalf("page over IPv6 = %q", body)
	}
	if d, _ := (state.DesiredStore{Dir: desiredDir(e)}).Get(id); d == nil || d.Address6 != want6.String() {
		t.Fatalf("desired state = %+v, want address6 %s", d, want6)
	}
	oldPID := rec.PID
	if err := cli.ContainerRestart(ctx, id, container.StopOptions{Timeout: new(int)}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); rec.PID == oldPID && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		rec, _ = waitWired(t, e, cli, id)
	}
	if rec.PID == oldPID || rec.Address6 != want6 {
		t.Fatalf("after restart: pid %d (was %d), address6 %s", rec.PID, oldPID, rec.Address6)
	}
	if body := httpGet(t, fmt.Sprintf("http://[%s]/", want6.Addr())); body != testenv.IndexHTML {
		t.Fatalf("page over IPv6 after restart = %q", body)
	}
}
