package control

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fakeEngine answers from its fields; with hang, every call waits for its
// context to end.
type fakeEngine struct {
	hang       bool
	containers map[string]Container
	networks   []Network
}

func (f *fakeEngine) wait(ctx context.Context) error {
	if f.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (f *fakeEngine) DaemonHost() string { return "unix:///fake.sock" }
func (f *fakeEngine) Ping(ctx context.Context) (string, error) {
	return "1.41", f.wait(ctx)
}
func (f *fakeEngine) ServerVersion(ctx context.Context) (string, error) {
	return "28.0.0", f.wait(ctx)
}
func (f *fakeEngine) Container(ctx context.Context, ref string) (Container, error) {
	if err := f.wait(ctx); err != nil {
		return Container{}, err
	}
	if c, ok := f.containers[ref]; ok {
		return c, nil
	}
	return Container{}, fmt.Errorf("No such container: %s: %w", ref, ErrNotFound)
}
func (f *fakeEngine) Containers(ctx context.Context) ([]Container, error) {
	var cs []Container
	for _, c := range f.containers {
		cs = append(cs, c)
	}
	return cs, f.wait(ctx)
}
func (f *fakeEngine) Network(ctx context.Context, ref string) (Network, error) {
	if err := f.wait(ctx); err != nil {
		return Network{}, err
	}
	for _, n := range f.networks {
		if n.Name == ref || n.ID == ref {
			return n, nil
		}
	}
	return Network{}, fmt.Errorf("network %s not found: %w", ref, ErrNotFound)
}
func (f *fakeEngine) Networks(ctx context.Context) ([]Network, error) {
	return f.networks, f.wait(ctx)
}
func (f *fakeEngine) Close() error { return nil }

func withEngine(e Engine) *Manager {
	return &Manager{cfg: Config{DockerTimeout: 50 * time.Millisecond, NewEngine: func() (Engine, error) { return e, nil }}}
}

// TestNoEngine: a manager without Config.NewEngine (the CNI plugin) works
// as with an engine that is not reachable, and never asks one.
func TestNoEngine(t *testing.T) {
	ctx := context.Background()
	m := &Manager{}
	if ok, err := m.dockerReachable(ctx); ok || err != nil {
		t.Errorf("dockerReachable = %v, %v; want false, nil", ok, err)
	}
	if dn, err := m.bridgeNetwork(ctx, "docker0"); dn != nil || err != nil {
		t.Errorf("bridgeNetwork = %+v, %v; want nil, nil", dn, err)
	}
	if _, err := m.NetworkBridge(ctx, "net1"); err == nil || err.Error() != "--network net1: the Docker engine is not reachable" {
		t.Errorf("networkBridge error = %v", err)
	}
	if _, err := m.inspect(ctx, "web"); err == nil || !strings.Contains(err.Error(), `inspect container "web"`) || !strings.Contains(err.Error(), "is dockerd running?") {
		t.Errorf("inspect error = %v", err)
	}
}

// TestEngineErrors: the errors of engine lookups name what was asked, an
// absent container or network, and a hung engine's address and deadline.
func TestEngineErrors(t *testing.T) {
	ctx := context.Background()
	web := Container{ID: "0123456789ab", Name: "web", State: "exited"}
	f := &fakeEngine{
		containers: map[string]Container{"web": web},
		networks: []Network{
			{ID: "1111111111111111", Name: "bridge", Driver: "bridge", Bridge: "docker0", ICC: true,
				Containers: []NetworkEndpoint{{Name: "web", IPv4: netip.MustParsePrefix("172.17.0.2/16"), IPv6: netip.MustParsePrefix("fd00::2/64")}}},
			{ID: "2222222222222222", Name: "isolated", Driver: "bridge", Bridge: "br-222222222222", ICC: false},
			{ID: "3333333333333333", Name: "over", Driver: "overlay"},
		},
	}
	m := withEngine(f)
	if _, err := m.inspect(ctx, "db"); err == nil || err.Error() != "container \"db\" not found (`docker ps -a` lists containers)" {
		t.Errorf("inspect of a missing container: %v", err)
	}
	if _, err := m.Resolve(ctx, TargetSpec{Container: "web"}); err == nil || err.Error() != "container web is exited: start it first (`docker start web`)" {
		t.Errorf("Resolve of a stopped container: %v", err)
	}
	for _, tc := range []struct{ network, bridge, errHas string }{
		{"bridge", "docker0", ""},
		{"isolated", "br-222222222222", ""},
		{"nope", "", "--network nope: no such Docker network (`docker network ls` lists them)"},
		{"over", "", `--network over uses Docker's "overlay" driver`},
	} {
		br, err := m.NetworkBridge(ctx, tc.network)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("NetworkBridge(%s) error = %v, want %q", tc.network, err, tc.errHas)
			}
			continue
		}
		if err != nil || br != tc.bridge {
			t.Errorf("NetworkBridge(%s) = %q, %v; want %q", tc.network, br, err, tc.bridge)
		}
	}
	dn, err := m.bridgeNetwork(ctx, "docker0")
	if err != nil || dn == nil || dn.Name != "bridge" || !dn.ICC || dn.Containers["172.17.0.2"] != "container web" || dn.Containers["fd00::2"] != "container web" {
		t.Errorf("bridgeNetwork(docker0) = %+v, %v", dn, err)
	}
	if dn, err := m.bridgeNetwork(ctx, "br-222222222222"); err != nil || dn == nil || dn.Name != "isolated" || dn.ICC {
		t.Errorf("bridgeNetwork(br-222222222222) = %+v, %v", dn, err)
	}
	if dn, err := m.bridgeNetwork(ctx, "br0"); err != nil || dn != nil {
		t.Errorf("bridgeNetwork(br0) = %+v, %v; want nil, nil", dn, err)
	}

	hung := withEngine(&fakeEngine{hang: true})
	_, err = hung.inspect(ctx, "web")
	want := "inspect container web: the Docker engine did not answer in time at unix:///fake.sock within 50ms: check that dockerd is running and responsive (`docker version`), that DOCKER_HOST points to the right engine, or raise --docker-timeout"
	if !errors.Is(err, ErrDockerTimeout) || err.Error() != want {
		t.Errorf("inspect on a hung engine: %v", err)
	}
	if ok, err := hung.dockerReachable(ctx); ok || !errors.Is(err, ErrDockerTimeout) {
		t.Errorf("dockerReachable on a hung engine = %v, %v; want the timeout", ok, err)
	}
}
