package control

import (
	"context"
	"fmt"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/state"
)

// SetMode switches an attached target's datapath between off, observe and
// fastpath at run time. Addresses and links stay; between observe and
// fastpath only the endpoint record changes (the attached programs read the
// mode per packet), so open connections see no gap. The fast path is refused
// on a Docker network with enable_icc=false unless force is set.
// mode and hook are parsed (datapath.ParseMode, datapath.ParseHook); hook ""
// is auto.
func (m *Manager) SetMode(ctx context.Context, ref string, mode datapath.Mode, hook datapath.Hook, force bool) (*state.Record, error) {
	if hook == datapath.HookNone {
		hook = datapath.HookAuto
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
	if rec.Observed && mode == datapath.Fastpath {
		return nil, fmt.Errorf("%s is only observed (nswire did not wire it): the fast path needs a container nswire attached", rec.DisplayName())
	}
	if mode == datapath.Fastpath && !force {
		dn, err := m.bridgeNetwork(ctx, rec.Bridge)
		if err != nil {
			return nil, err
		}
		if dn != nil && !dn.ICC {
			return nil, fmt.Errorf("bridge %s belongs to Docker network %s with com.docker.network.bridge.enable_icc=false: the fast path would bypass that isolation between containers; use --force to fast-path anyway", rec.Bridge, dn.Name)
		}
	}
	if rec.Mode == mode && (mode == datapath.Off || hook == datapath.HookAuto || hook == rec.Hook) {
		return rec, nil
	}
	prev := *rec
	if rec.Hook.Installed() && hook == datapath.HookAuto {
		hook = rec.Hook // keep how it is installed
	}
	used, err := m.dp.setMode(rec, mode, hook)
	if err != nil {
		return nil, fmt.Errorf("switch %s to %s: %w", rec.DisplayName(), mode, err)
	}
	rec.Mode, rec.Hook = mode, used
	if err := m.store.Put(rec); err != nil {
		// Put the datapath back as the record says, so both agree.
		m.dp.setMode(&prev, prev.Mode, prev.Hook)
		return nil, err
	}
	return rec, nil
}
