package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// DefaultDockerTimeout bounds each call to the Docker engine when
// Config.DockerTimeout is zero.
const DefaultDockerTimeout = 10 * time.Second

// ErrDockerTimeout is wrapped by the error of a Docker call that ran out of
// time: the engine accepted the connection (or never answered it) but did not
// reply within Config.DockerTimeout.
var ErrDockerTimeout = errors.New("the Docker engine did not answer in time")

func (m *Manager) dockerTimeout() time.Duration {
	if m.cfg.DockerTimeout > 0 {
		return m.cfg.DockerTimeout
	}
	return DefaultDockerTimeout
}

// dockerCall runs one call to the engine with a deadline of
// Config.DockerTimeout. When the deadline (not the caller's ctx) ends the
// call, the error names the engine's address and what to check; other
// errors are returned as f returned them.
func dockerCall[T any](ctx context.Context, m *Manager, what string, f func(context.Context, *client.Client) (T, error)) (T, error) {
	var zero T
	cli, err := m.Docker()
	if err != nil {
		return zero, err
	}
	dctx, cancel := context.WithTimeout(ctx, m.dockerTimeout())
	defer cancel()
	v, err := f(dctx, cli)
	if err != nil && ctx.Err() == nil && errors.Is(dctx.Err(), context.DeadlineExceeded) {
		return zero, m.dockerTimeoutError(what)
	}
	return v, err
}

// dockerTimeoutError says which engine did not answer and what to check.
func (m *Manager) dockerTimeoutError(what string) error {
	host := "the default socket"
	if m.docker != nil {
		host = m.docker.DaemonHost()
	}
	return fmt.Errorf("%s: %w at %s within %s: check that dockerd is running and responsive (`docker version`), that DOCKER_HOST points to the right engine, or raise --docker-timeout",
		what, ErrDockerTimeout, host, m.dockerTimeout())
}

// containersByID lists every container the engine knows (running or not),
// in one call, by full ID.
func (m *Manager) containersByID(ctx context.Context) (map[string]container.Summary, error) {
	cs, err := dockerCall(ctx, m, "list containers", func(ctx context.Context, cli *client.Client) ([]container.Summary, error) {
		return cli.ContainerList(ctx, container.ListOptions{All: true})
	})
	if err != nil {
		return nil, err
	}
	m.dockerOK = true
	by := make(map[string]container.Summary, len(cs))
	for _, c := range cs {
		by[c.ID] = c
	}
	return by, nil
}

// DockerContext returns ctx bounded by the Docker deadline
// (Config.DockerTimeout), for a call to the engine made outside the
// manager (the bench's containers).
func (m *Manager) DockerContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.dockerTimeout())
}
