package control

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"

	"github.com/nswire/nswire/netops"
)

// Target is a resolved network namespace to wire, held open as a handle for
// the whole operation so that a PID reused later is never followed.
type Target struct {
	Kind      string // docker, pid, netns
	ID        string // Docker container ID, or "netns:INODE"
	Name      string // container name without '/', or the spec
	PID       int
	NetnsPath string
	NS        netns.NsHandle
	Inode     uint64
}

// Close releases the namespace handle.
func (t *Target) Close() {
	if t != nil && t.NS.IsOpen() {
		t.NS.Close()
	}
}

// dockerReachable reports whether the engine answers (a ping, unless this
// process has already talked to it). An engine that accepts the connection
// but does not answer within the Docker deadline is an error, not
// "unreachable": a hung engine must be reported, not taken for an absent one.
func (m *Manager) dockerReachable(ctx context.Context) (bool, error) {
	if m.dockerOK {
		return true, nil
	}
	_, err := dockerCall(ctx, m, "ping the Docker engine", func(ctx context.Context, e Engine) (string, error) {
		return e.Ping(ctx)
	})
	if errors.Is(err, ErrDockerTimeout) {
		return false, err
	}
	m.dockerOK = err == nil
	return m.dockerOK, nil
}

// inContainer checks that process pid belongs to the container id, by its
// cgroup path (both the cgroupfs and the systemd drivers put the ID in it).
func inContainer(pid int, id string) error {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return fmt.Errorf("process %d is gone", pid)
	}
	if !strings.Contains(string(data), id) {
		return fmt.Errorf("process %d is no longer in container %.12s", pid, id)
	}
	return nil
}

// inspect returns the container ref refers to, with errors a user can act on.
func (m *Manager) inspect(ctx context.Context, ref string) (Container, error) {
	c, err := dockerCall(ctx, m, "inspect container "+ref, func(ctx context.Context, e Engine) (Container, error) {
		return e.Container(ctx, ref)
	})
	if errors.Is(err, ErrDockerTimeout) {
		return c, err
	}
	if errors.Is(err, ErrNotFound) {
		return c, fmt.Errorf("container %q not found (`docker ps -a` lists containers)", ref)
	}
	if err != nil {
		return c, fmt.Errorf("inspect container %q: %w (is dockerd running? `nswire doctor` checks)", ref, err)
	}
	m.dockerOK = true
	return c, nil
}

// Resolve opens the network namespace of spec. A Docker target must be a
// running container started with --network=none; the host's own namespace is
// refused.
func (m *Manager) Resolve(ctx context.Context, spec TargetSpec) (*Target, error) {
	return m.resolve(ctx, spec, true)
}

// resolveAny is Resolve for a container in any Docker network mode, for
// observing what Docker wired.
func (m *Manager) resolveAny(ctx context.Context, spec TargetSpec) (*Target, error) {
	return m.resolve(ctx, spec, false)
}

// spec was checked where it was parsed (AttachFlags.Parse, ParseObserve).
func (m *Manager) resolve(ctx context.Context, spec TargetSpec, requireNone bool) (*Target, error) {
	t := &Target{}
	var err error
	switch {
	case spec.Container != "":
		c, err := m.inspect(ctx, spec.Container)
		if err != nil {
			return nil, err
		}
		name := c.Name
		if !c.Running || c.PID == 0 {
			status := "not running"
			if c.State != "" {
				status = c.State
			}
			return nil, fmt.Errorf("container %s is %s: start it first (`docker start %s`)", name, status, name)
		}
		if mode := c.NetworkMode; requireNone && mode != "none" {
			return nil, fmt.Errorf("container %s uses Docker network mode %q, not --network=none: Docker already wires it and nswire will not touch Docker's own networking (`nswire observe %s` counts its traffic instead)", name, mode, name)
		}
		t.Kind, t.ID, t.Name, t.PID = "docker", c.ID, name, c.PID
		t.NetnsPath = "/proc/" + strconv.Itoa(c.PID) + "/ns/net"
		if t.NS, err = netops.OpenNetnsPath(t.NetnsPath); err != nil {
			return nil, fmt.Errorf("container %s: its process %d is gone: %w", name, c.PID, err)
		}
		// The PID might have been reused between inspect and open: check,
		// now that the handle is held, that the process is still in the
		// container's cgroup (a local read, where a second inspect would
		// cost a round trip to the engine).
		if err := inContainer(c.PID, c.ID); err != nil {
			t.Close()
			return nil, fmt.Errorf("container %s stopped while nswire opened its namespace: %w", name, err)
		}
	case spec.PID != 0:
		t.Kind, t.PID = "pid", spec.PID
		t.NetnsPath = "/proc/" + strconv.Itoa(spec.PID) + "/ns/net"
		if _, serr := os.Stat("/proc/" + strconv.Itoa(spec.PID)); serr != nil {
			return nil, fmt.Errorf("--pid %d: no such process", spec.PID)
		}
		if t.NS, err = netops.OpenNetnsPath(t.NetnsPath); err != nil {
			return nil, fmt.Errorf("--pid %d: %w", spec.PID, err)
		}
		t.Name = "pid " + strconv.Itoa(spec.PID)
	default:
		t.Kind, t.NetnsPath = "netns", spec.NetnsPath
		if t.NS, err = netops.OpenNetnsPath(spec.NetnsPath); err != nil {
			return nil, fmt.Errorf("--netns: %w", err)
		}
		t.Name = spec.NetnsPath
	}
	if t.Inode, err = netops.Inode(t.NS); err != nil {
		t.Close()
		return nil, err
	}
	if t.Inode == m.hostInode {
		t.Close()
		return nil, fmt.Errorf("target %s is in the host's own network namespace (inode %d): nswire wires container namespaces only", spec, t.Inode)
	}
	if t.ID == "" {
		t.ID = "netns:" + strconv.FormatUint(t.Inode, 10)
	}
	return t, nil
}

// dockerNetwork is what nswire needs of the Docker network behind a bridge.
type dockerNetwork struct {
	Name       string
	ICC        bool              // com.docker.network.bridge.enable_icc
	Containers map[string]string // IPv4 or IPv6 address -> container name
}

// bridgeNetwork finds the Docker network whose Linux bridge is bridge. It
// returns (nil, nil) when the engine is unreachable or no network uses it.
func (m *Manager) bridgeNetwork(ctx context.Context, bridge string) (*dockerNetwork, error) {
	if ok, err := m.dockerReachable(ctx); !ok {
		return nil, err
	}
	inspect := func(ref string) (Network, error) {
		return dockerCall(ctx, m, "inspect docker network "+ref, func(ctx context.Context, e Engine) (Network, error) {
			return e.Network(ctx, ref)
		})
	}
	// Docker's default network "bridge" is docker0: one call finds it.
	if bridge == "docker0" {
		n, err := inspect("bridge")
		if errors.Is(err, ErrDockerTimeout) {
			return nil, err
		}
		if err == nil && n.Bridge == bridge {
			return toDockerNetwork(n), nil
		}
	}
	nets, err := dockerCall(ctx, m, "list docker networks", func(ctx context.Context, e Engine) ([]Network, error) {
		return e.Networks(ctx)
	})
	if errors.Is(err, ErrDockerTimeout) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("list docker networks: %w", err)
	}
	for _, n := range nets {
		if n.Bridge != bridge {
			continue
		}
		full, err := inspect(n.ID)
		if errors.Is(err, ErrDockerTimeout) {
			return nil, err
		}
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil, nil
			}
			return nil, fmt.Errorf("inspect docker network %s: %w", n.Name, err)
		}
		return toDockerNetwork(full), nil
	}
	return nil, nil
}

func toDockerNetwork(n Network) *dockerNetwork {
	dn := &dockerNetwork{Name: n.Name, ICC: n.ICC, Containers: map[string]string{}}
	for _, ep := range n.Containers {
		for _, p := range []netip.Prefix{ep.IPv4, ep.IPv6} {
			if p.IsValid() {
				dn.Containers[p.Addr().String()] = "container " + ep.Name
			}
		}
	}
	return dn
}

// NetworkBridge resolves a Docker network, by name or ID, to its Linux
// bridge. A network that does not exist, or whose driver is not bridge, is
// an error naming it and what would do.
func (m *Manager) NetworkBridge(ctx context.Context, name string) (string, error) {
	if ok, err := m.dockerReachable(ctx); !ok {
		if err == nil {
			err = errors.New("the Docker engine is not reachable")
		}
		return "", fmt.Errorf("--network %s: %w", name, err)
	}
	n, err := dockerCall(ctx, m, "inspect docker network "+name, func(ctx context.Context, e Engine) (Network, error) {
		return e.Network(ctx, name)
	})
	if errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("--network %s: no such Docker network (`docker network ls` lists them)", name)
	}
	if err != nil {
		return "", fmt.Errorf("--network %s: %w", name, err)
	}
	if n.Bridge == "" {
		return "", fmt.Errorf("--network %s uses Docker's %q driver: nswire wires containers into bridge networks only (give a network made with `docker network create --driver bridge`, or --bridge)", name, n.Driver)
	}
	return n.Bridge, nil
}

// BridgeNetworkName returns the name of the Docker network whose Linux
// bridge is bridge. It returns "" (and no error) when the engine is
// unreachable or no network uses the bridge.
func (m *Manager) BridgeNetworkName(ctx context.Context, bridge string) (string, error) {
	dn, err := m.bridgeNetwork(ctx, bridge)
	if err != nil || dn == nil {
		return "", err
	}
	return dn.Name, nil
}
