package control

import (
	"context"
	"fmt"
	"time"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/state"
)

// Stats returns the counters of the attached targets named by refs (all of
// them when refs is empty), read from the pinned maps in one batch. An
// unknown ref is an error naming it.
func (m *Manager) Stats(ctx context.Context, refs []string) ([]EndpointStats, error) {
	recs, err := m.selectRecords(ctx, refs)
	if err != nil {
		return nil, err
	}
	return m.statsOf(recs)
}

// AllStats returns every record and its counters (stats[i] is recs[i]'s),
// read in one batch: one scrape of the metrics collector.
func (m *Manager) AllStats() ([]*state.Record, []EndpointStats, error) {
	recs, _, err := m.store.List()
	if err != nil {
		return nil, nil, err
	}
	stats, err := m.statsOf(recs)
	return recs, stats, err
}

// statsOf reads the counters of recs in one batch.
func (m *Manager) statsOf(recs []*state.Record) ([]EndpointStats, error) {
	counted := false
	for _, r := range recs {
		if r.Mode != datapath.Off {
			counted = true
		}
	}
	now := time.Now()
	out := make([]EndpointStats, 0, len(recs))
	if !counted {
		for _, r := range recs {
			out = append(out, statsFrom(r, nil, now))
		}
		return out, nil
	}
	all, err := m.dp.readCounters()
	if err != nil {
		return nil, err
	}
	now = time.Now()
	for _, r := range recs {
		if r.Mode == datapath.Off {
			out = append(out, statsFrom(r, nil, now))
			continue
		}
		c := all[r.Slot]
		out = append(out, statsFrom(r, &c, now))
	}
	return out, nil
}

// selectRecords returns the records of refs, or all records without refs.
func (m *Manager) selectRecords(ctx context.Context, refs []string) ([]*state.Record, error) {
	if len(refs) == 0 {
		recs, _, err := m.store.List()
		return recs, err
	}
	var recs []*state.Record
	for _, ref := range refs {
		r, err := m.FindRecord(ctx, ref)
		if err != nil {
			return nil, err
		}
		if r == nil {
			return nil, fmt.Errorf("%s is not attached (`nswire ls` lists what is)", ref)
		}
		recs = append(recs, r)
	}
	return recs, nil
}
