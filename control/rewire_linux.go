package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/netops"
)

// ErrNotAttached is returned by Rewire for a target that has no record.
var ErrNotAttached = errors.New("not attached")

// ErrAddressTaken is returned by Rewire when another host answers ARP for
// the container's address and RewireOptions.MoveIfTaken is not set.
var ErrAddressTaken = errors.New("address taken")

// RewireOptions tune Rewire.
type RewireOptions struct {
	// MoveIfTaken lets Rewire give the container another free address
	// when a foreign host took its own while it was stopped (for an
	// address nswire chose itself); MAC, mode and counter slot stay.
	MoveIfTaken bool
}

// Rewire wires an attached container again after it started with a new
// network namespace (a docker restart, stop and start, a restart policy):
// the same address, MAC, gateway, MTU, interface name, bridge and mode as
// its record, and the same counter slot, whose counters are kept, so stats
// and the Prometheus counters continue where they were (never reset, never
// counted twice). The stale wiring (programs, pins and endpoint entry of the
// old host veth, and the old veth if the kernel has not removed it with the
// old namespace yet) is removed first; the record of the old wiring stays
// until the new one replaces it, so the address and slot stay reserved even
// if the rewire fails or is killed (the next Rewire finishes it). A container
// whose wiring is live is left alone (Unchanged). Returns an error wrapping
// ErrNotAttached when id has no record, and one wrapping ErrAddressTaken when
// a foreign host answers for its address (see RewireOptions.MoveIfTaken).
func (m *Manager) Rewire(ctx context.Context, id string, opts RewireOptions) (*AttachResult, error) {
	phase := time.Now()
	lock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	old, err := m.store.Get(id)
	if err != nil {
		return nil, err
	}
	if old == nil {
		return nil, fmt.Errorf("rewire %.12s: %w", id, ErrNotAttached)
	}
	if old.Observed || old.Kind != "docker" {
		return nil, fmt.Errorf("rewire %s: only containers nswire wired can be wired again", old.DisplayName())
	}
	m.logPhase("lock", &phase)
	t, err := m.Resolve(ctx, TargetSpec{Container: old.ID})
	if err != nil {
		return nil, err
	}
	defer t.Close()
	m.logPhase("resolve", &phase)
	if old.NetnsInode == t.Inode && m.hostLinkMatches(old) {
		return &AttachResult{Record: old, Unchanged: true}, nil
	}
	if tomb, err := m.store.GetTombstone(t.ID); err != nil {
		return nil, err
	} else if tomb != nil {
		if err := m.store.ClearDetaching(t.ID); err != nil { // the record is newer
			return nil, err
		}
	}

	if err := m.clearStaleWiring(old); err != nil {
		return nil, err
	}
	m.logPhase("clear stale wiring", &phase)
	rec := *old
	rec.Name, rec.PID, rec.NetnsPath, rec.NetnsInode = t.Name, t.PID, t.NetnsPath, t.Inode
	if ip, mac := rec.IPv4(), rec.MAC; ip != nil && mac != nil {
		if br, err := netops.LinkByName(m.host, rec.Bridge); err == nil {
			// Its own old neighbour entry must not look like another holder.
			netops.ForgetNeighbor(m.host, br.Attrs().Index, ip, mac)
		}
	}
	probe, err := m.startAddrProbe(&rec)
	if err != nil {
		return nil, err
	}
	defer func() { probe.Close() }()
	settle := func() error { return m.settleRewire(ctx, t, &rec, &probe, opts) }
	m.logPhase("probe start", &phase)
	steps, release := m.attachSteps(t, &rec, settle)
	defer release()
	for i := range steps {
		if steps[i].name != "datapath" {
			continue
		}
		steps[i].do = func() error {
			am, err := m.dp.(*lazyDatapath).reattach(&rec)
			if err == nil {
				rec.Hook = am
			}
			return err
		}
	}
	if err := m.run(steps); err != nil {
		return nil, fmt.Errorf("rewire %s: %w (every step done was undone; the record of its last wiring is kept)", t.Name, err)
	}
	return &AttachResult{Record: &rec}, nil
}

// clearStaleWiring clears what old's last wiring left, keeping the slot's
// counters: the old veth, if the kernel has not yet removed it with the old
// namespace (deleted first: its programs go with it, which costs less than
// detaching them one by one), then the link pins and the endpoint entry of
// its ifindex (and of an interrupted rewire's veth).
func (m *Manager) clearStaleWiring(old *state.Record) error {
	leftIdx := 0
	if l, err := netops.LinkByName(m.host, old.HostIf); err == nil {
		if l.Attrs().Alias != m.vethTag() {
			return fmt.Errorf("rewire %s: host interface %s exists and is not this nswire's", old.DisplayName(), old.HostIf)
		}
		leftIdx = l.Attrs().Index
		if err := netops.DeleteLink(m.host, old.HostIf); err != nil {
			return fmt.Errorf("rewire %s: %w", old.DisplayName(), err)
		}
	} else if !netops.IsNotFound(err) {
		return fmt.Errorf("rewire %s: look for the old %s: %w", old.DisplayName(), old.HostIf, err)
	}
	if !old.Hook.Installed() {
		return nil
	}
	if err := m.dp.remove(old); err != nil {
		return fmt.Errorf("rewire %s: clear the old datapath: %w", old.DisplayName(), err)
	}
	if leftIdx != 0 && leftIdx != old.HostIfindex { // an interrupted rewire's
		left := *old
		left.HostIfindex = leftIdx
		if err := m.dp.remove(&left); err != nil {
			return fmt.Errorf("rewire %s: clear the datapath of the old %s: %w", old.DisplayName(), old.HostIf, err)
		}
	}
	return nil
}

// settleRewire collects the answer to the probe of rec's address (*probe).
// Nobody answering is success. A foreign holder is ErrAddressTaken, or,
// with opts.MoveIfTaken, a move to the next free address, probed in turn
// (at most maxProbeTries), updating rec.Address and *probe.
func (m *Manager) settleRewire(ctx context.Context, t *Target, rec *state.Record, probe **addrProbe, opts RewireOptions) error {
	for try := 1; ; try++ {
		holder, err := (*probe).Conflict()
		(*probe).Close()
		if err != nil {
			return fmt.Errorf("probe %s: %w", rec.IP(), err)
		}
		if holder == nil {
			return nil
		}
		who := fmt.Sprintf("a host with MAC %s that answered ARP for it on %s", holder, rec.Bridge)
		if !opts.MoveIfTaken {
			return fmt.Errorf("%s is now in use by %s: %w; `nswire detach %s` and attach it with another address", rec.IP(), who, ErrAddressTaken, rec.DisplayName())
		}
		if try == maxProbeTries {
			return fmt.Errorf("the %d addresses nswire chose on %s are all in use by hosts it did not know of (the last: %s, by %s)", try, rec.Bridge, rec.IP(), who)
		}
		if m.conflicts == nil {
			m.conflicts = map[string]string{}
		}
		m.conflicts[rec.IP().String()] = who
		next, err := m.plan(ctx, t, AttachRequest{Target: TargetSpec{Container: rec.ID}, Bridge: rec.Bridge, IfName: rec.IfName,
			Gateway: rec.Gateway, MTU: rec.MTU, Mode: rec.Mode, Hook: datapath.HookAuto, Force: true})
		if err != nil {
			return err
		}
		rec.Address = next.Address
		if *probe, err = m.startAddrProbe(rec); err != nil {
			return err
		}
	}
}

// ForgetOwnNeighbor removes the bridge's neighbour entry of ip when it holds
// mac: what a container with that address and MAC left behind. An attach
// that reuses a remembered address calls it first, so the container's own
// stale entry is not taken for another holder. Returns nil when there is
// nothing to forget or the bridge is missing (the attach reports that).
func (m *Manager) ForgetOwnNeighbor(bridge string, ipCIDR, mac string) error {
	ip, _, err := net.ParseCIDR(ipCIDR)
	if err != nil {
		ip = net.ParseIP(ipCIDR)
	}
	hw := mustMAC(mac)
	if ip == nil || hw == nil {
		return nil
	}
	br, err := netops.LinkByName(m.host, bridge)
	if err != nil {
		return nil
	}
	return netops.ForgetNeighbor(m.host, br.Attrs().Index, ip, hw)
}

func mustMAC(s string) net.HardwareAddr {
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil
	}
	return mac
}

// reattach installs the datapath on rec's new host veth with rec's slot,
// keeping the slot's counters (see Rewire).
func (l *lazyDatapath) reattach(rec *state.Record) (datapath.Hook, error) {
	hook := rec.Hook
	if hook == datapath.HookNone {
		hook = datapath.HookAuto
	}
	ep := endpointOf(rec)
	ep.KeepCounters = true
	dp, err := l.open()
	if err != nil {
		return datapath.HookNone, err
	}
	return dp.Install(ep, rec.Mode, hook)
}
