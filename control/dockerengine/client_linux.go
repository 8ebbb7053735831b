package dockerengine

import (
	"errors"

	"github.com/docker/docker/client"

	"github.com/nswire/nswire/control"
)

// Client returns the Docker client of m's engine (created on first use, and
// closed with m), for what uses Docker beyond control.Engine. It is an
// error when m was not configured with New.
func Client(m *control.Manager) (*client.Client, error) {
	e, err := m.Engine()
	if err != nil {
		return nil, err
	}
	de, ok := e.(*Engine)
	if !ok {
		return nil, errors.New("the manager's container engine is not Docker's (control.Config.NewEngine is not dockerengine.New)")
	}
	return de.cli, nil
}
