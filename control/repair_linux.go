package control

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/netops"
)

// errNeedsRewire says that the veth pair of a record is missing or not the
// recorded one: it cannot be repaired in place, only wired again.
type errNeedsRewire struct{ why string }

func (e errNeedsRewire) Error() string { return e.why }

// checkAndRepair verifies that what rec claims is in place — the host veth
// with its ifindex, up, a port of the recorded bridge; its peer as IfName in
// t's namespace, up, with accept_ra=0, the address and the default route
// of each family;
// the programs installed and pinned with the recorded hook and the endpoint
// map entry with the recorded slot — and repairs, in place, what is missing.
// It returns what it repaired (with dryRun, what it would repair, changing
// nothing). When the veth pair itself is missing it returns errNeedsRewire.
// t's namespace is the recorded one (the caller checked the inode).
func (m *Manager) checkAndRepair(t *Target, rec *state.Record, dryRun bool) ([]string, error) {
	host, nsh, peer, err := m.locatePair(t, rec)
	if err != nil {
		return nil, err
	}
	defer nsh.Close()
	r := &repairer{m: m, t: t, rec: rec, nsh: nsh, host: host, peer: peer, dryRun: dryRun}
	for _, phase := range []func() error{r.hostSide, r.containerSide, r.datapath} {
		if err := phase(); err != nil {
			return r.repaired, err
		}
	}
	return r.repaired, nil
}

// locatePair finds rec's host veth and its peer in t's namespace (with a
// handle there, which the caller closes); errNeedsRewire when either is
// missing or they are not the recorded pair.
func (m *Manager) locatePair(t *Target, rec *state.Record) (netlink.Link, *netlink.Handle, netlink.Link, error) {
	host, err := netops.LinkByName(m.host, rec.HostIf)
	if netops.IsNotFound(err) {
		return nil, nil, nil, errNeedsRewire{fmt.Sprintf("its host veth %s was missing", rec.HostIf)}
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("check %s: %w", rec.HostIf, err)
	}
	if host.Attrs().Index != rec.HostIfindex {
		return nil, nil, nil, errNeedsRewire{fmt.Sprintf("its host veth %s had ifindex %d, recorded %d", rec.HostIf, host.Attrs().Index, rec.HostIfindex)}
	}
	nsh, err := netops.HandleAt(t.NS)
	if err != nil {
		return nil, nil, nil, err
	}
	peer, err := netops.LinkByName(nsh, rec.IfName)
	if err == nil {
		if pi, perr := netops.PeerIndex(host); perr != nil || pi != peer.Attrs().Index {
			err = errNeedsRewire{fmt.Sprintf("%s in the container was not the peer of %s", rec.IfName, rec.HostIf)}
		}
	} else if netops.IsNotFound(err) {
		err = errNeedsRewire{fmt.Sprintf("its interface %s in the container was missing", rec.IfName)}
	} else {
		err = fmt.Errorf("check %s in the container: %w", rec.IfName, err)
	}
	if err != nil {
		nsh.Close()
		return nil, nil, nil, err
	}
	return host, nsh, peer, nil
}

// repairer is one check-and-repair of an attachment whose veth pair is in
// place: each phase checks one side and repairs what is missing, listing
// it (with dryRun, only listing it).
type repairer struct {
	m          *Manager
	t          *Target
	rec        *state.Record
	nsh        *netlink.Handle
	host, peer netlink.Link
	dryRun     bool
	repaired   []string
}

func (r *repairer) fix(what string, do func() error) error {
	r.repaired = append(r.repaired, what)
	if r.dryRun {
		return nil
	}
	if err := do(); err != nil {
		return fmt.Errorf("repair %s: %w", what, err)
	}
	return nil
}

// hostSide: the host veth is a port of the recorded bridge, and up.
func (r *repairer) hostSide() error {
	m, rec, host := r.m, r.rec, r.host
	br, err := netops.LinkByName(m.host, rec.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s of %s: %w", rec.Bridge, rec.DisplayName(), err)
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		if err := r.fix(fmt.Sprintf("%s as a port of %s", rec.HostIf, rec.Bridge), func() error { return netops.SetMaster(m.host, host, br) }); err != nil {
			return err
		}
	}
	if !netops.IsUp(host) {
		return r.fix(rec.HostIf+" up", func() error { return netops.SetUp(m.host, host) })
	}
	return nil
}

// containerSide: the peer has accept_ra=0 and autoconf=0, is up, and has
// the address and default route of each recorded family (IPv6 on).
func (r *repairer) containerSide() error {
	t, rec := r.t, r.rec
	for _, kv := range raOff {
		key, want := kv[0], kv[1]
		if v, ok, err := netops.IPv6Conf(t.NS, rec.IfName, key); err != nil {
			return err
		} else if ok && v != want {
			if err := r.fix(fmt.Sprintf("%s=%s on %s (was %s)", key, want, rec.IfName, v), func() error {
				_, err := netops.SetIPv6Conf(t.NS, rec.IfName, key, want)
				return err
			}); err != nil {
				return err
			}
		}
	}
	if !netops.IsUp(r.peer) {
		if err := r.fix(rec.IfName+" up in the container", func() error { return netops.SetUp(r.nsh, r.peer) }); err != nil {
			return err
		}
	}
	addr := &net.IPNet{IP: rec.IPv4(), Mask: net.CIDRMask(rec.Address.Bits(), 32)}
	if err := repairFamily(r.nsh, r.peer, addr, net.IP(rec.Gateway.AsSlice()), r.fix); err != nil {
		return err
	}
	if !rec.Address6.IsValid() {
		return nil
	}
	if v, ok, err := netops.IPv6Conf(t.NS, rec.IfName, "disable_ipv6"); err != nil {
		return err
	} else if ok && v != "0" {
		if err := r.fix(fmt.Sprintf("IPv6 on %s (disable_ipv6 was %s)", rec.IfName, v), func() error {
			_, err := netops.SetIPv6Confs(t.NS, rec.IfName, ipv6Settings)
			return err
		}); err != nil {
			return err
		}
	}
	addr6 := &net.IPNet{IP: rec.IPv6(), Mask: net.CIDRMask(rec.Address6.Bits(), 128)}
	return repairFamily(r.nsh, r.peer, addr6, net.IP(rec.Gateway6.AsSlice()), r.fix)
}

// datapath: the programs are installed and pinned with the recorded hook.
func (r *repairer) datapath() error {
	m, rec := r.m, r.rec
	if !rec.Mode.Programs() {
		return nil
	}
	miss := m.dp.missing(rec)
	if len(miss) == 0 {
		return nil
	}
	r.repaired = append(r.repaired, miss[:len(miss)-1]...)
	return r.fix(miss[len(miss)-1], func() error {
		used, err := m.dp.install(rec, rec.Hook)
		if err == nil && used != rec.Hook {
			return fmt.Errorf("installed with %s, recorded %s", used, rec.Hook)
		}
		return err
	})
}

// repairFamily checks that peer has addr (IPv4 or IPv6) and a default route
// of its family via gw, and repairs what is missing through fix. A re-added
// IPv6 address is announced again as attach announces it.
func repairFamily(nsh *netlink.Handle, peer netlink.Link, addr *net.IPNet, gw net.IP, fix func(string, func() error) error) error {
	family := netlink.FAMILY_V4
	if addr.IP.To4() == nil {
		family = netlink.FAMILY_V6
	}
	addrs, err := netops.Addrs(nsh, peer, family)
	if err != nil {
		return err
	}
	has := false
	for _, a := range addrs {
		if a.IPNet != nil && a.IPNet.String() == addr.String() {
			has = true
		}
	}
	name := peer.Attrs().Name
	if !has {
		if err := fix(fmt.Sprintf("address %s on %s", addr, name), func() error {
			if err := netops.AddAddr(nsh, peer, addr); err != nil {
				return err
			}
			if family == netlink.FAMILY_V6 {
				return netops.WaitAddrUsable(nsh, peer, addr.IP, addrUsableWait)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	gwNow, idx, err := netops.DefaultRoute(nsh, family)
	if err != nil {
		return err
	}
	if !gwNow.Equal(gw) || idx != peer.Attrs().Index {
		return fix(fmt.Sprintf("the default route via %s dev %s", gw, name), func() error { return netops.AddDefaultRoute(nsh, peer, gw) })
	}
	return nil
}

// rewire wires t again with everything rec recorded (address, MAC, MTU,
// gateway, mode, hook and counter slot) after its veth pair went missing: the
// old remains are cleared first, then the attach steps run with rec's
// settings, with rollback. The caller holds the state lock.
func (m *Manager) rewire(t *Target, old *state.Record, dryRun bool) (*state.Record, []PlanStep, error) {
	rec := *old
	rec.HostIfindex = 0
	rec.PID, rec.NetnsPath, rec.Name = t.PID, t.NetnsPath, t.Name
	if rec.Mode.Programs() && !rec.Hook.Installed() {
		rec.Hook = datapath.HookAuto
	}
	steps, release := m.attachSteps(t, &rec, func() error { return nil })
	defer release()
	if dryRun {
		return &rec, planOf(steps), nil
	}
	if err := m.teardown(old); err != nil {
		return nil, nil, fmt.Errorf("clear what is left of %s: %w", t.Name, err)
	}
	if err := m.run(steps); err != nil {
		return nil, nil, fmt.Errorf("wire %s again: %w (every step done was undone)", t.Name, err)
	}
	return &rec, nil, nil
}

// attachedAgain is an attach of a target attached in this namespace with the
// same settings: nothing changes when everything the record claims is in
// place; what is missing is repaired and listed.
func (m *Manager) attachedAgain(t *Target, existing *state.Record, dryRun bool) (*AttachResult, error) {
	repaired, err := m.checkAndRepair(t, existing, dryRun)
	var rw errNeedsRewire
	if errors.As(err, &rw) {
		rec, plan, err := m.rewire(t, existing, dryRun)
		if err != nil {
			return nil, err
		}
		what := []string{rw.why + ": wired again with the recorded address, MAC and counter slot"}
		return &AttachResult{Record: rec, Plan: plan, Repaired: what}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s is attached but %w", t.Name, err)
	}
	if len(repaired) == 0 {
		return &AttachResult{Record: existing, Unchanged: true}, nil
	}
	return &AttachResult{Record: existing, Repaired: repaired}, nil
}
