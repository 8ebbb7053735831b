package control

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
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

// Docker returns a client for the local engine with API version negotiation
// (the engine here speaks 1.41), created on first use.
func (m *Manager) Docker() (*client.Client, error) {
	if m.docker != nil {
		return m.docker, nil
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("create docker client: %w", err)
	}
	m.docker = cli
	return cli, nil
}

// dockerReachable reports whether the engine answers (a ping, unless this
// process has already talked to it). An engine that accepts the connection
// but does not answer within the Docker deadline is an error, not
// "unreachable": a hung engine must be reported, not taken for an absent one.
func (m *Manager) dockerReachable(ctx context.Context) (bool, error) {
	if m.dockerOK {
		return true, nil
	}
	_, err := dockerCall(ctx, m, "ping the Docker engine", func(ctx context.Context, cli *client.Client) (types.Ping, error) {
		return cli.Ping(ctx)
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
func (m *Manager) inspect(ctx context.Context, ref string) (container.InspectResponse, error) {
	c, err := dockerCall(ctx, m, "inspect container "+ref, func(ctx context.Context, cli *client.Client) (container.InspectResponse, error) {
		return cli.ContainerInspect(ctx, ref)
	})
	if errors.Is(err, ErrDockerTimeout) {
		return c, err
	}
	if cerrdefs.IsNotFound(err) {
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
		name := strings.TrimPrefix(c.Name, "/")
		if c.State == nil || !c.State.Running || c.State.Pid == 0 {
			status := "not running"
			if c.State != nil {
				status = c.State.Status
			}
			return nil, fmt.Errorf("container %s is %s: start it first (`docker start %s`)", name, status, name)
		}
		if mode := string(c.HostConfig.NetworkMode); requireNone && mode != "none" {
			return nil, fmt.Errorf("container %s uses Docker network mode %q, not --network=none: Docker already wires it and nswire will not touch Docker's own networking (`nswire observe %s` counts its traffic instead)", name, mode, name)
		}
		t.Kind, t.ID, t.Name, t.PID = "docker", c.ID, name, c.State.Pid
		t.NetnsPath = "/proc/" + strconv.Itoa(c.State.Pid) + "/ns/net"
		if t.NS, err = netops.OpenNetnsPath(t.NetnsPath); err != nil {
			return nil, fmt.Errorf("container %s: its process %d is gone: %w", name, c.State.Pid, err)
		}
		// The PID might have been reused between inspect and open: check,
		// now that the handle is held, that the process is still in the
		// container's cgroup (a local read, where a second inspect would
		// cost a round trip to the engine).
		if err := inContainer(c.State.Pid, c.ID); err != nil {
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
	inspect := func(ref string) (network.Inspect, error) {
		return dockerCall(ctx, m, "inspect docker network "+ref, func(ctx context.Context, cli *client.Client) (network.Inspect, error) {
			return cli.NetworkInspect(ctx, ref, network.InspectOptions{})
		})
	}
	// Docker's default network "bridge" is docker0: one call finds it.
	if bridge == "docker0" {
		n, err := inspect("bridge")
		if errors.Is(err, ErrDockerTimeout) {
			return nil, err
		}
		if err == nil && bridgeNameOf(n.Name, n.ID, n.Driver, n.Options) == bridge {
			return toDockerNetwork(n), nil
		}
	}
	nets, err := dockerCall(ctx, m, "list docker networks", func(ctx context.Context, cli *client.Client) ([]network.Summary, error) {
		return cli.NetworkList(ctx, network.ListOptions{})
	})
	if errors.Is(err, ErrDockerTimeout) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("list docker networks: %w", err)
	}
	for _, n := range nets {
		if bridgeNameOf(n.Name, n.ID, n.Driver, n.Options) != bridge {
			continue
		}
		full, err := inspect(n.ID)
		if errors.Is(err, ErrDockerTimeout) {
			return nil, err
		}
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("inspect docker network %s: %w", n.Name, err)
		}
		return toDockerNetwork(full), nil
	}
	return nil, nil
}

// bridgeNameOf is the Linux bridge of a Docker bridge network ("" for other
// drivers).
func bridgeNameOf(name, id, driver string, opts map[string]string) string {
	if driver != "bridge" {
		return ""
	}
	if b := opts["com.docker.network.bridge.name"]; b != "" {
		return b
	}
	if name == "bridge" {
		return "docker0"
	}
	if len(id) >= 12 {
		return "br-" + id[:12]
	}
	return ""
}

func toDockerNetwork(n network.Inspect) *dockerNetwork {
	dn := &dockerNetwork{Name: n.Name, ICC: n.Options["com.docker.network.bridge.enable_icc"] != "false", Containers: map[string]string{}}
	for _, ep := range n.Containers {
		for _, a := range []string{ep.IPv4Address, ep.IPv6Address} {
			if p, err := netip.ParsePrefix(a); err == nil {
				dn.Containers[p.Addr().String()] = "container " + ep.Name
			}
		}
	}
	return dn
}

// networkBridge resolves a Docker network, by name or ID, to its Linux
// bridge. A network that does not exist, or whose driver is not bridge, is
// an error naming it and what would do.
func (m *Manager) networkBridge(ctx context.Context, name string) (string, error) {
	if ok, err := m.dockerReachable(ctx); !ok {
		if err == nil {
			err = errors.New("the Docker engine is not reachable")
		}
		return "", fmt.Errorf("--network %s: %w", name, err)
	}
	n, err := dockerCall(ctx, m, "inspect docker network "+name, func(ctx context.Context, cli *client.Client) (network.Inspect, error) {
		return cli.NetworkInspect(ctx, name, network.InspectOptions{})
	})
	if cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("--network %s: no such Docker network (`docker network ls` lists them)", name)
	}
	if err != nil {
		return "", fmt.Errorf("--network %s: %w", name, err)
	}
	br := bridgeNameOf(n.Name, n.ID, n.Driver, n.Options)
	if br == "" {
		return "", fmt.Errorf("--network %s uses Docker's %q driver: nswire wires containers into bridge networks only (give a network made with `docker network create --driver bridge`, or --bridge)", name, n.Driver)
	}
	return br, nil
}

// NetworkBridge resolves a Docker network, by name or ID, to its Linux
// bridge, with the errors of `--network` (no such network, not a bridge
// network, no engine).
func (m *Manager) NetworkBridge(ctx context.Context, name string) (string, error) {
	return m.networkBridge(ctx, name)
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
