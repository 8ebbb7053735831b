package control

import (
	"context"
	"strings"

	"github.com/nswire/nswire/control/state"
)

// ListRow is one line of `nswire ls`: an attached target, or (with all) a
// running --network=none container that is not wired.
type ListRow struct {
	Name   string        `json:"name"`
	ID     string        `json:"id"`
	PID    int           `json:"pid"`
	Wired  bool          `json:"wired"`
	Record *state.Record `json:"attachment,omitempty"`
}

// List returns the attached targets and, when all is set, the running
// --network=none containers that nswire has not wired.
func (m *Manager) List(ctx context.Context, all bool) ([]ListRow, error) {
	recs, _, err := m.store.List()
	if err != nil {
		return nil, err
	}
	var rows []ListRow
	seen := map[string]bool{}
	for _, r := range recs {
		rows = append(rows, ListRow{Name: r.DisplayName(), ID: r.ID, PID: r.PID, Wired: true, Record: r})
		seen[r.ID] = true
	}
	if !all {
		return rows, nil
	}
	cs, err := m.noneContainers(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if seen[c.ID] {
			continue
		}
		name := c.ID
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		row := ListRow{Name: name, ID: c.ID}
		if ci, err := m.inspect(ctx, c.ID); err == nil && ci.State != nil {
			row.PID = ci.State.Pid
		}
		rows = append(rows, row)
	}
	return rows, nil
}
