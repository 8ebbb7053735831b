package control

import (
	"context"
	"errors"
	"fmt"
	"time"
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

// Engine returns the container engine of Config.NewEngine, created on first
// use. Without Config.NewEngine (the CNI plugin) it returns an error, and
// the manager works as with an engine that is not reachable.
func (m *Manager) Engine() (Engine, error) {
	if m.engine != nil {
		return m.engine, nil
	}
	if m.cfg.NewEngine == nil {
		return nil, errNoEngine
	}
	e, err := m.cfg.NewEngine()
	if err != nil {
		return nil, err
	}
	m.engine = e
	return e, nil
}

// dockerCall runs one call to the engine with a deadline of
// Config.DockerTimeout. When the deadline (not the caller's ctx) ends the
// call, the error names the engine's address and what to check; other
// errors are returned as f returned them.
func dockerCall[T any](ctx context.Context, m *Manager, what string, f func(context.Context, Engine) (T, error)) (T, error) {
	var zero T
	e, err := m.Engine()
	if err != nil {
		return zero, err
	}
	dctx, cancel := context.WithTimeout(ctx, m.dockerTimeout())
	defer cancel()
	v, err := f(dctx, e)
	if err != nil && ctx.Err() == nil && errors.Is(dctx.Err(), context.DeadlineExceeded) {
		return zero, m.dockerTimeoutError(what)
	}
	return v, err
}

// dockerTimeoutError says which engine did not answer and what to check.
func (m *Manager) dockerTimeoutError(what string) error {
	host := "the default socket"
	if m.engine != nil {
		host = m.engine.DaemonHost()
	}
	return fmt.Errorf("%s: %w at %s within %s: check that dockerd is running and responsive (`docker version`), that DOCKER_HOST points to the right engine, or raise --docker-timeout",
		what, ErrDockerTimeout, host, m.dockerTimeout())
}

// containersByID lists every container the engine knows (running or not),
// in one call, by full ID.
func (m *Manager) containersByID(ctx context.Context) (map[string]Container, error) {
	cs, err := dockerCall(ctx, m, "list containers", func(ctx context.Context, e Engine) ([]Container, error) {
		return e.Containers(ctx)
	})
	if err != nil {
		return nil, err
	}
	m.dockerOK = true
	by := make(map[string]Container, len(cs))
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
