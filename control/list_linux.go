package control

import (
	"context"
	"errors"
	"path/filepath"
	"sort"

	"github.com/nswire/nswire/control/state"
)

// ListRow is one line of `nswire ls`: a record with what is true of it now
// (State), a damaged record file, or (with all) a running --network=none
// container that is not wired.
type ListRow struct {
	Name   string        `json:"name"`
	ID     string        `json:"id"`
	PID    int           `json:"pid"` // the live process; 0 when the record is not live
	Wired  bool          `json:"wired"`
	State  RecordState   `json:"state,omitempty"`  // of a record: live, restarted, stopped, gone, broken, damaged
	Reason string        `json:"reason,omitempty"` // why it is not live, and what to do
	File   string        `json:"file,omitempty"`   // the record file, when damaged
	Error  string        `json:"error,omitempty"`  // what is wrong with it, when damaged
	Record *state.Record `json:"attachment,omitempty"`
}

// List returns every record with its state (from one list of Docker's
// containers, not one inspect per record), the damaged record files, and,
// when all is set, the running --network=none containers that nswire has not
// wired. With all, an engine that is unreachable or does not answer in time
// is an error; without, the states of container records are told from local
// facts and say why.
func (m *Manager) List(ctx context.Context, all bool) ([]ListRow, error) {
	recs, bad, err := m.store.List()
	if err != nil {
		return nil, err
	}
	var tr *truth
	if all {
		if ok, err := m.dockerReachable(ctx); err != nil {
			return nil, err
		} else if !ok {
			return nil, errors.New("the Docker engine is not reachable: cannot list --network=none containers")
		}
		cs, err := m.containersByID(ctx)
		if err != nil {
			return nil, err
		}
		tr = &truth{m: m, containers: cs}
	} else {
		tr = m.newTruth(ctx, recs)
	}
	var rows []ListRow
	seen := map[string]bool{}
	for _, r := range recs {
		st := tr.status(r)
		row := ListRow{Name: r.DisplayName(), ID: r.ID, Wired: true, State: st.State, Reason: st.Reason, Record: r}
		if st.Live() {
			row.PID = r.PID
		}
		rows = append(rows, row)
		seen[r.ID] = true
	}
	for _, d := range m.damaged(bad) {
		name := short12(d.ID)
		if name == "" {
			name = filepath.Base(d.File)
		}
		rows = append(rows, ListRow{Name: name, ID: d.ID, Wired: true, State: StateDamaged, Reason: d.Hint(), File: d.File, Error: d.Error})
		seen[d.ID] = true
	}
	if !all {
		return rows, nil
	}
	ids := make([]string, 0, len(tr.containers))
	for id := range tr.containers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return tr.containers[ids[i]].Created > tr.containers[ids[j]].Created }) // newest first, as docker ps
	for _, id := range ids {
		c := tr.containers[id]
		if seen[c.ID] || c.State != "running" || c.NetworkMode != "none" {
			continue
		}
		name := c.ID
		if c.Name != "" {
			name = c.Name
		}
		row := ListRow{Name: name, ID: c.ID}
		ci, err := dockerCall(ctx, m, "inspect container "+name, func(ctx context.Context, e Engine) (Container, error) {
			return e.Container(ctx, c.ID)
		})
		if isTimeout(err) {
			return nil, err
		}
		if err == nil {
			row.PID = ci.PID
		}
		rows = append(rows, row)
	}
	return rows, nil
}
