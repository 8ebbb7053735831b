package control

import (
	"context"
	"fmt"
)

// SetMode switches an attached target's datapath between off, observe and
// fastpath at run time. Addresses and links stay; between observe and
// fastpath only the endpoint record changes (the attached programs read the
// mode per packet), so open connections see no gap. The fast path is refused
// on a Docker network with enable_icc=false unless force is set.
func (m *Manager) SetMode(ctx context.Context, ref, mode, attachMode string, force bool) (*Record, error) {
	if err := checkModeName(mode); err != nil {
		return nil, err
	}
	if attachMode == "" {
		attachMode = "auto"
	}
	if err := checkAttachModeName(attachMode); err != nil {
		return nil, err
	}
	lock, rec, err := m.lockedRecord(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if rec == nil {
		return nil, fmt.Errorf("%s is not attached: `nswire attach %s --mode %s` wires it", ref, ref, mode)
	}
	if !m.hostLinkMatches(rec) {
		return nil, fmt.Errorf("the host veth %s of %s is gone (the container stopped?): `nswire detach %s` clears the record", rec.HostIf, rec.DisplayName(), rec.DisplayName())
	}
	if rec.Observed && mode == ModeFastpath {
		return nil, fmt.Errorf("%s is only observed (nswire did not wire it): the fast path needs a container nswire attached", rec.DisplayName())
	}
	if mode == ModeFastpath && !force {
		dn, err := m.bridgeNetwork(ctx, rec.Bridge)
		if err != nil {
			return nil, err
		}
		if dn != nil && !dn.ICC {
			return nil, fmt.Errorf("bridge %s belongs to Docker network %s with com.docker.network.bridge.enable_icc=false: the fast path would bypass that isolation between containers; use --force to fast-path anyway", rec.Bridge, dn.Name)
		}
	}
	if rec.Mode == mode && (mode == ModeOff || attachMode == "auto" || attachMode == rec.AttachMode) {
		return rec, nil
	}
	prev := *rec
	if rec.AttachMode == "tcx" || rec.AttachMode == "tc" {
		if attachMode == "auto" {
			attachMode = rec.AttachMode // keep how it is attached
		}
	}
	used, err := m.dp.setMode(rec, mode, attachMode)
	if err != nil {
		return nil, fmt.Errorf("switch %s to %s: %w", rec.DisplayName(), mode, err)
	}
	rec.Mode, rec.AttachMode = mode, used
	if err := m.store.Put(rec); err != nil {
		// Put the datapath back as the record says, so both agree.
		m.dp.setMode(&prev, prev.Mode, prev.AttachMode)
		return nil, err
	}
	return rec, nil
}
