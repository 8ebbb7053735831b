// Package dockerengine is control.Engine for Docker: the Docker client (with
// API version negotiation, as the engine here speaks 1.41) behind nswire's
// own types. It is the only place control's lookups meet the Docker SDK, so
// that what imports control alone (the CNI plugin) does not link it.
package dockerengine

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/nswire/nswire/control"
)

// Engine is a control.Engine talking to the Docker engine of the
// environment (DOCKER_HOST, or the default socket).
type Engine struct {
	cli *client.Client
}

var _ control.Engine = (*Engine)(nil)

// New returns an Engine for the Docker engine of the environment; it does
// not connect yet. It is what control.Config.NewEngine is set to.
func New() (control.Engine, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("create docker client: %w", err)
	}
	return &Engine{cli: cli}, nil
}

// Client is the Docker client, for what needs more of Docker than
// control.Engine offers (serve's events, the bench's containers).
func (e *Engine) Client() *client.Client { return e.cli }

// DaemonHost is the engine's address.
func (e *Engine) DaemonHost() string { return e.cli.DaemonHost() }

// Close releases the client's connections.
func (e *Engine) Close() error { return e.cli.Close() }

// Ping checks that the engine answers and returns its API version.
func (e *Engine) Ping(ctx context.Context) (string, error) {
	p, err := e.cli.Ping(ctx)
	return p.APIVersion, err
}

// ServerVersion returns the engine's version.
func (e *Engine) ServerVersion(ctx context.Context) (string, error) {
	v, err := e.cli.ServerVersion(ctx)
	return v.Version, err
}

// notFound keeps the Docker client's error (and its text) and matches
// control.ErrNotFound.
type notFound struct{ err error }

func (e notFound) Error() string   { return e.err.Error() }
func (e notFound) Unwrap() []error { return []error{e.err, control.ErrNotFound} }

func wrap(err error) error {
	if err != nil && cerrdefs.IsNotFound(err) {
		return notFound{err}
	}
	return err
}

// Container inspects the container ref names.
func (e *Engine) Container(ctx context.Context, ref string) (control.Container, error) {
	ci, err := e.cli.ContainerInspect(ctx, ref)
	if err != nil {
		return control.Container{}, wrap(err)
	}
	return fromInspect(ci), nil
}

func fromInspect(ci container.InspectResponse) control.Container {
	var c control.Container
	if ci.ContainerJSONBase != nil {
		c.ID, c.Name = ci.ID, strings.TrimPrefix(ci.Name, "/")
		if t, err := time.Parse(time.RFC3339Nano, ci.Created); err == nil {
			c.Created = t.Unix()
		}
		if s := ci.State; s != nil {
			c.State, c.Running, c.PID = s.Status, s.Running, s.Pid
		}
		if ci.HostConfig != nil {
			c.NetworkMode = string(ci.HostConfig.NetworkMode)
		}
	}
	if ci.Config != nil {
		c.Labels = ci.Config.Labels
	}
	if ci.NetworkSettings != nil {
		c.Networks = addrsOf(ci.NetworkSettings.Networks)
	}
	return c
}

func addrsOf(eps map[string]*network.EndpointSettings) map[string]control.ContainerAddrs {
	if len(eps) == 0 {
		return nil
	}
	out := make(map[string]control.ContainerAddrs, len(eps))
	for name, ep := range eps {
		if ep == nil {
			continue
		}
		var a control.ContainerAddrs
		a.IPv4, _ = netip.ParseAddr(ep.IPAddress)
		a.IPv6, _ = netip.ParseAddr(ep.GlobalIPv6Address)
		out[name] = a
	}
	return out
}

// Containers lists every container, running or not.
func (e *Engine) Containers(ctx context.Context) ([]control.Container, error) {
	cs, err := e.cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, err
	}
	out := make([]control.Container, 0, len(cs))
	for _, s := range cs {
		c := control.Container{ID: s.ID, State: s.State, Running: s.State == container.StateRunning,
			NetworkMode: s.HostConfig.NetworkMode, Created: s.Created, Labels: s.Labels}
		if len(s.Names) > 0 {
			c.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		if s.NetworkSettings != nil {
			c.Networks = addrsOf(s.NetworkSettings.Networks)
		}
		out = append(out, c)
	}
	return out, nil
}

// Network inspects the network ref names, with its containers.
func (e *Engine) Network(ctx context.Context, ref string) (control.Network, error) {
	n, err := e.cli.NetworkInspect(ctx, ref, network.InspectOptions{})
	if err != nil {
		return control.Network{}, wrap(err)
	}
	out := fromNetwork(n)
	for _, ep := range n.Containers {
		c := control.NetworkEndpoint{Name: ep.Name}
		c.IPv4, _ = netip.ParsePrefix(ep.IPv4Address)
		c.IPv6, _ = netip.ParsePrefix(ep.IPv6Address)
		out.Containers = append(out.Containers, c)
	}
	return out, nil
}

// Networks lists the networks, without their containers.
func (e *Engine) Networks(ctx context.Context) ([]control.Network, error) {
	ns, err := e.cli.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]control.Network, 0, len(ns))
	for _, n := range ns {
		out = append(out, fromNetwork(n))
	}
	return out, nil
}

func fromNetwork(n network.Inspect) control.Network {
	out := control.Network{ID: n.ID, Name: n.Name, Driver: n.Driver,
		Bridge: bridgeName(n.Name, n.ID, n.Driver, n.Options),
		ICC:    n.Options["com.docker.network.bridge.enable_icc"] != "false"}
	for _, c := range n.IPAM.Config {
		var s control.NetworkSubnet
		var err error
		if s.Subnet, err = netip.ParsePrefix(c.Subnet); err != nil {
			continue
		}
		s.Gateway, _ = netip.ParseAddr(c.Gateway)
		out.Subnets = append(out.Subnets, s)
	}
	return out
}

// bridgeName is the Linux bridge of a Docker bridge network: its
// com.docker.network.bridge.name option, docker0 for the default network
// "bridge", else "br-" and the first 12 digits of its ID; "" for other
// drivers.
func bridgeName(name, id, driver string, opts map[string]string) string {
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
