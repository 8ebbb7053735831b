package control

import (
	"context"
	"fmt"

	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/netops"
)

// DetachResult says what a detach did.
type DetachResult struct {
	Record  *state.Record // nil when nothing was attached
	Message string
}

// Detach undoes an attach: programs, map entries, pins, the veth pair (and
// with it the address and route inside the container) and the record. A
// target that is unknown, already detached or dead is success.
//
// The target leaves the desired state too (Config.DesiredDir), so serve no
// longer wires it.
func (m *Manager) Detach(ctx context.Context, ref string) (res *DetachResult, err error) {
	defer func() {
		if err == nil {
			err = m.forgetDesired(ref, res)
		}
	}()
	lock, rec, err := m.lockedRecord(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if rec == nil {
		tomb, err := m.findTombstone(ref)
		if err != nil {
			return nil, err
		}
		if tomb == nil {
			return m.detachUnrecorded(ctx, ref)
		}
		if err := m.finishDetach(tomb); err != nil {
			return nil, fmt.Errorf("finish the interrupted detach of %s: %w", tomb.DisplayName(), err)
		}
		return &DetachResult{Record: tomb, Message: fmt.Sprintf("detached %s (finished an interrupted detach)", tomb.DisplayName())}, nil
	}
	if err := m.teardown(rec); err != nil {
		return nil, fmt.Errorf("detach %s: %w", rec.DisplayName(), err)
	}
	return &DetachResult{Record: rec, Message: fmt.Sprintf("detached %s", rec.DisplayName())}, nil
}

// teardown removes everything of rec, in the reverse order of the attach;
// each part is a no-op when already gone, so it can be re-run after a crash.
// Its first step turns the record into a tombstone (one rename), so that a
// teardown killed at any later point is finished by gc or by the next attach
// or detach of the target.
func (m *Manager) teardown(rec *state.Record) error {
	steps := []func() error{
		func() error { return m.store.MarkDetaching(rec) },
		func() error {
			if rec.Hook != "tcx" && rec.Hook != "tc" {
				return nil // no program was attached
			}
			return m.dp.remove(rec)
		},
		func() error {
			if rec.Observed {
				return nil // the wiring is not ours
			}
			return netops.DeleteLink(m.host, rec.HostIf)
		},
		func() error { return m.store.ClearDetaching(rec.ID) },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			return err
		}
		m.crashPoint(i + 1)
	}
	return nil
}
