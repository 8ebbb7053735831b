package control

import (
	"context"
	"errors"
	"net/netip"
)

// Engine is what nswire asks of the container engine (Docker): containers
// by name or ID and their processes, and the networks behind bridges. Its
// types are nswire's own, so that control (and the CNI plugin, which never
// asks an engine) does not link the engine's SDK. control/dockerengine
// implements it with the Docker client; Config.NewEngine supplies one.
//
// A call returns when its context ends: control bounds calls with the
// Docker deadline (Config.DockerTimeout) and words the error of one that ran
// out of it. An engine answers "no such container/network" with an error
// that matches ErrNotFound.
type Engine interface {
	// DaemonHost is the engine's address (e.g. unix:///var/run/docker.sock),
	// for errors.
	DaemonHost() string
	// Ping checks that the engine answers and returns its API version.
	Ping(ctx context.Context) (apiVersion string, err error)
	// ServerVersion returns the engine's version (e.g. "28.3.3").
	ServerVersion(ctx context.Context) (string, error)
	// Container inspects the container ref names (a name or an ID).
	Container(ctx context.Context, ref string) (Container, error)
	// Containers lists every container the engine knows, running or not, in
	// one call. Their PIDs are not known from a list (0).
	Containers(ctx context.Context) ([]Container, error)
	// Network inspects the network ref names (a name or an ID), with its
	// containers' addresses.
	Network(ctx context.Context, ref string) (Network, error)
	// Networks lists the engine's networks, without their containers.
	Networks(ctx context.Context) ([]Network, error)
	// Close releases the connection.
	Close() error
}

// ErrNotFound is matched (errors.Is) by an Engine's error for a container
// or network that does not exist.
var ErrNotFound = errors.New("not found")

// errNoEngine is the error of every engine call of a manager made without
// Config.NewEngine (the CNI plugin): it works as with an engine that is not
// reachable.
var errNoEngine = errors.New("no container engine: this program does not talk to Docker")

// Container is what nswire needs of a container of the engine.
type Container struct {
	ID          string
	Name        string // without Docker's leading '/'; "" when the engine gave none
	State       string // running, paused, exited, created, …; "" when unknown
	Running     bool
	PID         int // its process when running (known from Engine.Container only)
	NetworkMode string
	Created     int64 // Unix seconds
	Labels      map[string]string
	// Networks are the addresses the engine gave the container, by network
	// name; an address not given is the zero netip.Addr.
	Networks map[string]ContainerAddrs
}

// ContainerAddrs are a container's addresses on one network.
type ContainerAddrs struct {
	IPv4 netip.Addr
	IPv6 netip.Addr
}

// Network is what nswire needs of a network of the engine.
type Network struct {
	ID     string
	Name   string
	Driver string
	// Bridge is the Linux bridge of a bridge network ("" for other drivers).
	Bridge string
	// ICC is false when the network disables traffic between its
	// containers (Docker's com.docker.network.bridge.enable_icc=false).
	ICC bool
	// Subnets are the network's IPv4 and IPv6 subnets with their gateways.
	Subnets []NetworkSubnet
	// Containers are the network's endpoints (from Engine.Network only).
	Containers []NetworkEndpoint
}

// NetworkSubnet is one subnet of a network; Gateway is the zero netip.Addr
// when the engine names none.
type NetworkSubnet struct {
	Subnet  netip.Prefix
	Gateway netip.Addr
}

// NetworkEndpoint is one container on a network, with its addresses (zero
// when not given).
type NetworkEndpoint struct {
	Name string
	IPv4 netip.Prefix
	IPv6 netip.Prefix
}
