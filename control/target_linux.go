package control

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
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

// dockerReachable reports whether the engine answers a ping.
func (m *Manager) dockerReachable(ctx context.Context) bool {
	cli, err := m.Docker()
	if err != nil {
		return false
	}
	_, err = cli.Ping(ctx)
	return err == nil
}

// inspect returns the container ref refers to, with errors a user can act on.
func (m *Manager) inspect(ctx context.Context, ref string) (container.InspectResponse, error) {
	cli, err := m.Docker()
	if err != nil {
		return container.InspectResponse{}, err
	}
	c, err := cli.ContainerInspect(ctx, ref)
	if errdefs.IsNotFound(err) {
		return c, fmt.Errorf("container %q not found (`docker ps -a` lists containers)", ref)
	}
	if err != nil {
		return c, fmt.Errorf("inspect container %q: %w (is dockerd running? `nswire doctor` checks)", ref, err)
	}
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

func (m *Manager) resolve(ctx context.Context, spec TargetSpec, requireNone bool) (*Target, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
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
		// The PID might have been reused between inspect and open: check the
		// container still runs with that PID now that the handle is held.
		c2, err := m.inspect(ctx, c.ID)
		if err != nil || c2.State == nil || !c2.State.Running || c2.State.Pid != c.State.Pid {
			t.Close()
			return nil, fmt.Errorf("container %s stopped while nswire opened its namespace", name)
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
	Containers map[string]string // IPv4 -> container name
}

// bridgeNetwork finds the Docker network whose Linux bridge is bridge. It
// returns (nil, nil) when the engine is unreachable or no network uses it.
func (m *Manager) bridgeNetwork(ctx context.Context, bridge string) (*dockerNetwork, error) {
	if !m.dockerReachable(ctx) {
		return nil, nil
	}
	cli, _ := m.Docker()
	nets, err := cli.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list docker networks: %w", err)
	}
	for _, n := range nets {
		if n.Driver != "bridge" {
			continue
		}
		brName := n.Options["com.docker.network.bridge.name"]
		if brName == "" && n.Name == "bridge" {
			brName = "docker0"
		}
		if brName == "" {
			brName = "br-" + n.ID[:12]
		}
		if brName != bridge {
			continue
		}
		full, err := cli.NetworkInspect(ctx, n.ID, network.InspectOptions{})
		if err != nil {
			if client.IsErrNotFound(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("inspect docker network %s: %w", n.Name, err)
		}
		dn := &dockerNetwork{Name: full.Name, ICC: full.Options["com.docker.network.bridge.enable_icc"] != "false", Containers: map[string]string{}}
		for _, ep := range full.Containers {
			if ip, _, ok := strings.Cut(ep.IPv4Address, "/"); ok {
				dn.Containers[ip] = "container " + ep.Name
			}
		}
		return dn, nil
	}
	return nil, nil
}

// noneContainers lists running containers started with --network=none.
func (m *Manager) noneContainers(ctx context.Context) ([]container.Summary, error) {
	if !m.dockerReachable(ctx) {
		return nil, errors.New("the Docker engine is not reachable: cannot list --network=none containers")
	}
	cli, _ := m.Docker()
	all, err := cli.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []container.Summary
	for _, c := range all {
		if c.HostConfig.NetworkMode == "none" {
			out = append(out, c)
		}
	}
	return out, nil
}
