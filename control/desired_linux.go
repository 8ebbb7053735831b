package control

import (
	"context"
	"errors"
	"strings"

	"github.com/nswire/nswire/control/state"
)

// Desired returns the desired-state store this manager records attaches in,
// or nil when Config.DesiredDir is empty (nothing is recorded).
func (m *Manager) Desired() *state.DesiredStore {
	if m.cfg.DesiredDir == "" {
		return nil
	}
	return &state.DesiredStore{Dir: m.cfg.DesiredDir}
}

// rememberDesired records an attached container in the desired state (when
// the manager keeps one), so that `nswire serve` wires it again after a
// restart or a reboot with the same settings. An entry that serve made from
// the container's labels stays a label entry. chosen says nswire chose the
// address (no --ip): serve may then move the container to another address
// should a foreign host take it while the container is stopped.
func (m *Manager) rememberDesired(rec *state.Record, chosen bool) error {
	ds := m.Desired()
	if ds == nil || rec.Kind != "docker" || rec.Observed {
		return nil
	}
	src := state.SourceAttach
	if old, err := ds.Get(rec.ID); err == nil && old != nil && old.Source == state.SourceLabel {
		src, chosen = state.SourceLabel, old.Chosen
	}
	return ds.Put(&state.Desired{
		ID: rec.ID, Name: rec.Name, Source: src, Bridge: rec.Bridge, IfName: rec.IfName,
		Address: rec.Address.String(), Address6: prefixString(rec.Address6), Chosen: chosen, Gateway: rec.Gateway.String(), MAC: rec.MAC.String(), MTU: rec.MTU, Mode: string(rec.Mode),
	})
}

// forgetDesired removes what ref names from the desired state: the detached
// record's container, or an entry whose ID, abbreviated ID (≥ 4 hex digits)
// or name is ref (a container stopped or not yet wired again after a reboot
// has an entry but no record).
func (m *Manager) forgetDesired(ref string, res *DetachResult) error {
	ds := m.Desired()
	if ds == nil {
		return nil
	}
	if res != nil && res.Record != nil {
		return ds.Delete(res.Record.ID)
	}
	all, _, err := ds.List()
	if err != nil {
		return err
	}
	ref = strings.TrimPrefix(ref, "/")
	var match []*state.Desired
	for _, d := range all {
		if d.ID == ref || d.Name == ref || len(ref) >= 4 && strings.HasPrefix(d.ID, ref) {
			match = append(match, d)
		}
	}
	if len(match) == 1 {
		return ds.Delete(match[0].ID)
	}
	return nil
}

// waitingForServe reports whether rec belongs to a container that is stopped
// but not removed, that a running `nswire serve` wires again when it starts
// (it has a desired entry): gc keeps such a record, with its address and
// counter slot, so the counters continue after the restart.
func (m *Manager) waitingForServe(ctx context.Context, rec *state.Record) bool {
	ds := m.Desired()
	if ds == nil || rec.Kind != "docker" || rec.Observed || state.ServeRunningPID(m.cfg.StateDir) == 0 {
		return false
	}
	if d, err := ds.Get(rec.ID); err != nil || d == nil {
		return false
	}
	e, err := m.Engine()
	if err != nil {
		return false
	}
	_, err = e.Container(ctx, rec.ID)
	return err == nil || !errors.Is(err, ErrNotFound) // keep it unless surely removed
}
