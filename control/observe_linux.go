package control

import (
	"context"
	"fmt"
	"time"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/state"

	"github.com/vishvananda/netlink"

	"github.com/nswire/nswire/netops"
)

// ObserveRequest names a target nswire did not wire and the interface in
// it whose traffic to count.
type ObserveRequest struct {
	Target TargetSpec
	IfName string        // default eth0
	Hook   datapath.Hook // default auto
	CNI    *CNIInfo      // a CNI attachment (chained plugin): record ID, name and kind from it
}

// ParseObserve checks an observe request as a user writes it and returns it
// typed; Observe does not check the same things again.
func ParseObserve(target TargetSpec, ifName, hook string) (ObserveRequest, error) {
	r := ObserveRequest{Target: target, IfName: ifName}
	if r.IfName == "" {
		r.IfName = "eth0"
	}
	if err := target.Validate(); err != nil {
		return r, err
	}
	if err := netops.ValidateIfName(r.IfName); err != nil {
		return r, fmt.Errorf("--ifname: %w", err)
	}
	var err error
	if r.Hook, err = datapath.ParseHook(hook); err != nil {
		return r, fmt.Errorf("--hook: %w", err)
	}
	return r, nil
}

// Observe attaches only the counters to the host-side peer of the target's
// interface, without changing its wiring: for containers Docker wired, or a
// namespace wired by hand. The peer is found as `ethtool -S` would show its
// peer_ifindex, through netlink. The spoof guard stays off (nswire does not
// own the endpoint's addresses).
func (m *Manager) Observe(ctx context.Context, req ObserveRequest) (*state.Record, bool, error) {
	if req.IfName == "" {
		req.IfName = "eth0"
	}
	if req.Hook == datapath.HookNone {
		req.Hook = datapath.HookAuto
	}
	lock, err := m.lock()
	if err != nil {
		return nil, false, err
	}
	defer lock.Release()
	t, err := m.resolveAny(ctx, req.Target)
	if err != nil {
		return nil, false, err
	}
	defer t.Close()
	t.identifyCNI(req.CNI)
	if existing, err := m.store.Get(t.ID); err != nil {
		return nil, false, err
	} else if existing != nil {
		if existing.Observed && existing.IfName == req.IfName && m.hostLinkMatches(existing) {
			return existing, true, nil
		}
		if !existing.Observed {
			return nil, false, fmt.Errorf("%s was wired by nswire and is counted already (mode %s): `nswire mode` changes what is counted", t.Name, existing.Mode)
		}
		if err := m.teardown(existing); err != nil {
			return nil, false, err
		}
	}
	rec, err := m.observedRecord(t, req)
	if err != nil {
		return nil, false, err
	}
	rec.CNI = req.CNI
	recs, _, err := m.store.List()
	if err != nil {
		return nil, false, err
	}
	if rec.Slot, err = freeSlot(recs, t.ID); err != nil {
		return nil, false, err
	}
	err = m.run([]step{
		{
			name: "datapath",
			do: func() error {
				used, err := m.dp.install(rec, rec.Hook)
				if err == nil {
					rec.Hook = used
				}
				return err
			},
			undo: func() error { return m.dp.remove(rec) },
		},
		{name: "record", do: func() error { return m.store.Put(rec) }, undo: func() error { return m.store.Delete(rec.ID) }},
	})
	if err != nil {
		return nil, false, fmt.Errorf("observe %s: %w", t.Name, err)
	}
	return rec, false, nil
}

// Unobserve removes the counters Observe attached. A target that is not
// observed is success; one nswire wired is an error (detach it instead).
func (m *Manager) Unobserve(ctx context.Context, ref string) (*DetachResult, error) {
	lock, rec, err := m.lockedRecord(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if rec == nil {
		return &DetachResult{Message: fmt.Sprintf("%s is not observed: nothing to do", ref)}, nil
	}
	if !rec.Observed {
		return nil, fmt.Errorf("%s was wired by nswire, not only observed: `nswire detach %s` removes it", rec.DisplayName(), rec.DisplayName())
	}
	if err := m.teardown(rec); err != nil {
		return nil, fmt.Errorf("unobserve %s: %w", rec.DisplayName(), err)
	}
	return &DetachResult{Record: rec, Message: "stopped observing " + rec.DisplayName()}, nil
}

// observedRecord finds the host-side peer of the target's interface and
// describes it as an observed record (no slot yet).
func (m *Manager) observedRecord(t *Target, req ObserveRequest) (*state.Record, error) {
	nsh, err := netops.HandleAt(t.NS)
	if err != nil {
		return nil, err
	}
	defer nsh.Close()
	inner, err := netops.LinkByName(nsh, req.IfName)
	if err != nil {
		return nil, fmt.Errorf("%s has no interface %s (give another with --ifname)", t.Name, req.IfName)
	}
	peerIdx, err := netops.PeerIndex(inner)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Name, err)
	}
	host, err := netops.LinkByIndex(m.host, peerIdx)
	if err != nil {
		return nil, fmt.Errorf("%s: the peer of %s (ifindex %d) is not in the host namespace", t.Name, req.IfName, peerIdx)
	}
	if hv, ok := host.(*netlink.Veth); !ok || hv.Attrs().ParentIndex != inner.Attrs().Index {
		return nil, fmt.Errorf("%s: host link %d (%s) is not the peer of its %s", t.Name, peerIdx, host.Attrs().Name, req.IfName)
	}
	rec := &state.Record{
		ID: t.ID, Name: t.Name, Kind: t.Kind, PID: t.PID,
		NetnsPath: t.NetnsPath, NetnsInode: t.Inode, HostIf: host.Attrs().Name, HostIfindex: peerIdx,
		IfName: req.IfName, MAC: inner.Attrs().HardwareAddr, MTU: inner.Attrs().MTU,
		Mode: datapath.Observe, Hook: req.Hook, Observed: true, Created: time.Now().UTC(),
	}
	if addrs, err := netops.Addrs(nsh, inner, netlink.FAMILY_V4); err == nil && len(addrs) > 0 {
		rec.Address = prefixOf(addrs[0].IPNet)
	}
	// Its first global IPv6 address (a Docker network made with --ipv6),
	// as attach records one; not its link-local one.
	if addrs, err := netops.Addrs(nsh, inner, netlink.FAMILY_V6); err == nil {
		for _, a := range addrs {
			if a.IP.IsGlobalUnicast() && a.IP.To4() == nil {
				rec.Address6 = prefixOf(a.IPNet)
				break
			}
		}
	}
	if host.Attrs().MasterIndex > 0 {
		if br, err := netops.LinkByIndex(m.host, host.Attrs().MasterIndex); err == nil {
			rec.Bridge = br.Attrs().Name
		}
	}
	return rec, nil
}
