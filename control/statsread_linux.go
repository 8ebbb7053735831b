package control

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/state"
)

// Stats returns the counters of the attached targets named by refs (all of
// them, and the damaged records, when refs is empty), read from the pinned
// maps in one batch. Only a live record has counters: one whose target
// restarted, stopped or is gone has its State and Reason instead, and
// Counted false. An unknown ref is an error naming it.
func (m *Manager) Stats(ctx context.Context, refs []string) ([]EndpointStats, error) {
	recs, bad, err := m.selectRecords(ctx, refs)
	if err != nil {
		return nil, err
	}
	return m.statsOf(ctx, recs, bad)
}

// AllStats returns the counters of every record, and an entry for each
// damaged record, read in one batch: one scrape of the metrics collector.
func (m *Manager) AllStats(ctx context.Context) ([]EndpointStats, error) {
	return m.Stats(ctx, nil)
}

// statsOf tells the state of recs (one list of Docker's containers) and
// reads the counters of the live ones in one batch.
func (m *Manager) statsOf(ctx context.Context, recs []*state.Record, bad []string) ([]EndpointStats, error) {
	tr := m.newTruth(ctx, recs)
	status := make([]RecordStatus, len(recs))
	counted := false
	for i, r := range recs {
		status[i] = tr.status(r)
		if status[i].Live() && r.Mode != datapath.Off {
			counted = true
		}
	}
	var all map[uint32]datapath.Counters
	if counted {
		var err error
		if all, err = m.dp.readCounters(); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	out := make([]EndpointStats, 0, len(recs)+len(bad))
	for i, r := range recs {
		if !status[i].Live() || r.Mode == datapath.Off {
			s := statsFrom(r, nil, now)
			s.State, s.Reason = status[i].State, status[i].Reason
			if s.Reason == "" {
				s.Reason = "mode off: no program counts"
			}
			out = append(out, s)
			continue
		}
		c := all[r.Slot]
		out = append(out, statsFrom(r, &c, now))
	}
	for _, d := range m.damaged(bad) {
		name := short12(d.ID)
		if name == "" {
			name = filepath.Base(d.File)
		}
		out = append(out, EndpointStats{Name: name, ID: d.ID, State: StateDamaged, Reason: d.Error + "; " + d.Hint(), Time: now})
	}
	return out, nil
}

// selectRecords returns the records of refs, or all records and the
// damaged files without refs.
func (m *Manager) selectRecords(ctx context.Context, refs []string) ([]*state.Record, []string, error) {
	if len(refs) == 0 {
		return m.store.List()
	}
	var recs []*state.Record
	for _, ref := range refs {
		r, err := m.FindRecord(ctx, ref)
		if err != nil {
			return nil, nil, err
		}
		if r == nil {
			return nil, nil, fmt.Errorf("%s is not attached (`nswire ls` lists what is)", ref)
		}
		recs = append(recs, r)
	}
	return recs, nil, nil
}
