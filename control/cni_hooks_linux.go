package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/netops"
)

// This file is what the CNI plugin (control/cni) needs of the manager: an
// attach whose identity, address, gateway and routes come from the CNI call
// and its IPAM plugin instead of Docker and nswire's own allocator, the
// bridge created when missing, and lookups for CHECK and GC. The wiring
// itself is the CLI's attach plan (attachSteps, run, teardown).

// identifyCNI makes t the CNI attachment c: its record ID, name and kind. A
// nil c leaves t as it is.
func (t *Target) identifyCNI(c *CNIInfo) {
	if c == nil {
		return
	}
	t.Kind, t.ID, t.Name = state.KindCNI, CNIRecordID(c.ContainerID, c.IfName), CNIDisplayName(c)
}

// cniGuard reports whether an observed record gets the spoof guard all the
// same: a chained CNI attachment whose interface has its address (from the
// previous plugin's IPAM, as prevResult says) and MAC, which the runtime
// gave it and the container must not change.
func cniGuard(rec *state.Record) bool {
	return rec.Observed && rec.CNI != nil && rec.IP().Is4() && len(rec.MAC) == 6
}

// CNIRoute is one route the IPAM plugin gave; a nil GW routes on-link.
type CNIRoute struct {
	Dst *net.IPNet
	GW  net.IP
}

// CNIAddress is what the IPAM plugin gave for one attachment.
type CNIAddress struct {
	Address  *net.IPNet // IPv4, with the subnet's prefix
	Gateway  net.IP     // nil: the bridge's address
	Address6 *net.IPNet // IPv6, with its prefix; nil: IPv4 only
	Gateway6 net.IP     // the IPv6 gateway (required with Address6)
	Routes   []CNIRoute
}

// CNIAttachRequest is a CNI ADD in standalone mode.
type CNIAttachRequest struct {
	NetnsPath string // CNI_NETNS
	CNI       CNIInfo
	Bridge    string
	IsGateway bool          // give the bridge the gateway address
	MTU       int           // veth MTU and MTU of a bridge this attach creates; 0: the bridge's (1500 for a new one)
	Mode      datapath.Mode // default observe
	Hook      datapath.Hook // default auto
	// Allocate asks the IPAM plugin for an address. It runs under the state
	// lock, only when the attachment is new; Release gives the address back
	// and runs when a later step fails, and when a stale record of the same
	// attachment is cleared.
	Allocate func() (*CNIAddress, error)
	Release  func() error
}

// CNIAttachResult is what a CNI ADD reports.
type CNIAttachResult struct {
	Record    *state.Record
	Unchanged bool // the attachment existed with these settings: nothing done
	HostMAC   string
	BridgeMAC string
	Routes    []CNIRoute // the routes set in the container, the default route included
}

// cniFixedSteps is the number of steps AttachCNI runs before the attach plan
// (ipam, bridge): Config.FailAfterStep counts them first.
const cniFixedSteps = 2

// AttachCNI wires the namespace at req.NetnsPath into req.Bridge as the CNI
// attachment req.CNI, with the address the IPAM plugin gives, running the
// CLI's attach plan. Steps: ipam, bridge, then the attach plan (veth, master,
// host-up, rename, up, address, route, [address6, route6], [routes],
// [datapath], record). On any failure every step done is undone, the IPAM
// lease included. An attachment that exists live with the same bridge and
// mode is returned unchanged, without asking the IPAM plugin again; with
// other settings it is an error.
func (m *Manager) AttachCNI(ctx context.Context, req CNIAttachRequest) (*CNIAttachResult, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	phase := time.Now()
	lock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	m.logPhase("lock", &phase)
	t, err := m.resolve(ctx, TargetSpec{NetnsPath: req.NetnsPath}, true)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	t.identifyCNI(&req.CNI)
	m.logPhase("resolve", &phase)
	if res, err := m.cniExisting(t, req); res != nil || err != nil {
		return res, err
	}
	m.logPhase("existing", &phase)

	// The fixed steps count first for Config.FailAfterStep, then the plan's.
	fx := &cniFixed{m: m, req: req}
	fixedSteps := fx.steps()
	inject := m.cfg.FailAfterStep
	defer func() { m.cfg.FailAfterStep = inject }()
	m.cfg.FailAfterStep = 0
	if inject <= cniFixedSteps {
		m.cfg.FailAfterStep = inject
	}
	if err := m.run(fixedSteps); err != nil {
		return nil, fmt.Errorf("attach %s: %w (every step done was undone)", t.ID, err)
	}
	m.cfg.FailAfterStep = 0
	if inject > cniFixedSteps {
		m.cfg.FailAfterStep = inject - cniFixedSteps
	}
	undoFixed := func(cause error) error {
		m.cfg.FailAfterStep = 0
		return fmt.Errorf("attach %s: %w (every step done was undone)", t.ID, m.rollback(fixedSteps, cause))
	}

	rec, extra, err := m.cniRecord(t, req, fx.br, fx.addr)
	if err != nil {
		return nil, undoFixed(err)
	}
	if err := m.clearLeftover(rec); err != nil {
		return nil, undoFixed(err)
	}
	m.logPhase("plan", &phase)
	steps, release := m.attachSteps(t, rec, func() error { return nil })
	defer release()
	if len(extra) > 0 {
		after := "route"
		if rec.Address6.IsValid() {
			after = "route6" // an IPv6 gateway is reachable once the address is there
		}
		steps = insertAfter(steps, after, m.cniRoutesStep(t, rec, extra))
	}
	if err := m.run(steps); err != nil {
		return nil, undoFixed(err)
	}
	m.logPhase("attach", &phase)
	return m.cniResult(rec, false, append(defaultRoutes(rec), extra...))
}

// check fills in the defaults of r and refuses what is not valid.
func (r *CNIAttachRequest) check() error {
	if r.Mode == "" {
		r.Mode = datapath.Observe
	}
	if r.Hook == datapath.HookNone {
		r.Hook = datapath.HookAuto
	}
	if err := netops.ValidateIfName(r.Bridge); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	if err := netops.ValidateIfName(r.CNI.IfName); err != nil {
		return fmt.Errorf("CNI_IFNAME: %w", err)
	}
	if _, err := datapath.ParseMode(string(r.Mode)); err != nil {
		return err
	}
	if _, err := datapath.ParseHook(string(r.Hook)); err != nil {
		return err
	}
	if r.Allocate == nil || r.Release == nil {
		return errors.New("attach: no IPAM")
	}
	return nil
}

// cniExisting deals with what an earlier ADD of t left: it finishes an
// interrupted detach; it returns the attachment unchanged when it is live
// with req's settings (an error with other settings); and it clears a
// record of t in a namespace that is gone, with its lease. (nil, nil): wire
// afresh.
func (m *Manager) cniExisting(t *Target, req CNIAttachRequest) (*CNIAttachResult, error) {
	if err := m.finishInterruptedDetach(t); err != nil {
		return nil, err
	}
	existing, err := m.store.Get(t.ID)
	if err != nil || existing == nil {
		return nil, err
	}
	if existing.NetnsInode == t.Inode && m.hostLinkMatches(existing) {
		if existing.Observed || existing.Bridge != req.Bridge || existing.Mode != req.Mode {
			return nil, fmt.Errorf("%s is already attached with other settings (bridge %s, mode %s, observed %v): DEL it first",
				t.ID, existing.Bridge, existing.Mode, existing.Observed)
		}
		return m.cniResult(existing, true, nil)
	}
	// A record of this attachment in another (gone) namespace: clear it
	// and its lease, and wire afresh.
	if err := m.teardown(existing); err != nil {
		return nil, fmt.Errorf("clear stale record of %s: %w", t.ID, err)
	}
	if err := req.Release(); err != nil {
		return nil, fmt.Errorf("release the address of the stale record of %s: %w", t.ID, err)
	}
	return nil, nil
}

// cniFixed are the steps a CNI ADD runs before the attach plan: ask the
// IPAM plugin for the addresses, and make sure of the bridge (created when
// missing, with the gateway addresses when req.IsGateway).
type cniFixed struct {
	m       *Manager
	req     CNIAttachRequest
	addr    *CNIAddress
	br      *netlink.Bridge
	created bool         // the bridge step created the bridge
	added   []*net.IPNet // gateway addresses the bridge step gave an existing bridge
}

func (f *cniFixed) steps() []step {
	b := f.req.Bridge
	return []step{
		{name: "ipam", cmd: "# IPAM plugin ADD", do: f.allocate, undo: f.req.Release},
		{
			name: "bridge",
			cmd:  fmt.Sprintf("ip link add %s type bridge; ip link set %s up; ip addr add GATEWAY dev %s; sysctl -w net.ipv4.ip_forward=1", b, b, b),
			do:   f.ensureBridge,
			undo: f.undoBridge,
		},
	}
}

func (f *cniFixed) allocate() error {
	a, err := f.req.Allocate()
	if err != nil {
		return err
	}
	if a == nil || a.Address == nil || a.Address.IP.To4() == nil {
		f.req.Release()
		return errors.New("the IPAM plugin gave no IPv4 address (nswire needs one; IPv6 comes as a second address)")
	}
	f.addr = a
	return nil
}

// ensureBridge makes sure of the bridge and, for a gateway, of its
// addresses and of forwarding. A failure undoes its own part.
func (f *cniFixed) ensureBridge() error {
	b, created, err := netops.EnsureBridge(f.m.host, f.req.Bridge, f.req.MTU)
	if err != nil {
		return err
	}
	f.br, f.created = b, created
	if !f.req.IsGateway {
		return nil
	}
	if err := f.giveGateways(); err != nil {
		f.undoBridge()
		return err
	}
	return nil
}

// giveGateways gives the bridge the gateway address of each family the
// IPAM plugin gave and turns forwarding on for it, as the reference bridge
// plugin does for isGateway (never turned off again).
func (f *cniFixed) giveGateways() error {
	a := f.addr
	if a.Gateway == nil {
		return errors.New("isGateway is set but the IPAM plugin gave no gateway")
	}
	gws := []*net.IPNet{{IP: a.Gateway.To4(), Mask: a.Address.Mask}}
	if a.Address6 != nil && a.Gateway6 != nil {
		gws = append(gws, &net.IPNet{IP: a.Gateway6, Mask: a.Address6.Mask})
	}
	for _, gw := range gws {
		added, err := netops.EnsureAddr(f.m.host, f.br, gw)
		if err != nil {
			return fmt.Errorf("give bridge %s the gateway address %s: %w", f.req.Bridge, gw, err)
		}
		if added {
			f.added = append(f.added, gw)
		}
	}
	if err := netops.EnableIPv4Forwarding(); err != nil {
		return err
	}
	if len(gws) > 1 {
		return netops.EnableIPv6Forwarding()
	}
	return nil
}

// undoBridge removes the bridge the step created, or the gateway addresses
// it gave an existing one.
func (f *cniFixed) undoBridge() error {
	if f.created {
		return netops.DeleteLink(f.m.host, f.req.Bridge)
	}
	var errs []error
	for _, gw := range f.added {
		errs = append(errs, netops.DelAddr(f.m.host, f.br, gw))
	}
	f.added = nil
	return errors.Join(errs...)
}

// cniRecord plans the record of the attachment with the IPAM plugin's
// addresses, default gateways (its default routes win over its gateways)
// and other routes, which it returns.
func (m *Manager) cniRecord(t *Target, req CNIAttachRequest, br *netlink.Bridge, addr *CNIAddress) (*state.Record, []CNIRoute, error) {
	gw4, gw6, extra := splitRoutes(addr)
	rec, err := m.cniPlan(t, req, br, addr.Address, gw4)
	if err != nil {
		return nil, nil, err
	}
	if addr.Address6 != nil {
		if gw6 == nil {
			return nil, nil, fmt.Errorf("plan: the IPAM plugin gave IPv6 address %s without a gateway or an IPv6 default route", addr.Address6)
		}
		// The attach plan's address6 and route6 steps configure it.
		rec.Address6 = prefixOf(addr.Address6)
		rec.Gateway6, _ = netip.AddrFromSlice(gw6.To16())
	}
	return rec, extra, nil
}

// defaultRoutes are rec's default route of each family, as a CNI result
// reports them.
func defaultRoutes(rec *state.Record) []CNIRoute {
	routes := []CNIRoute{{Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: net.IP(rec.Gateway.AsSlice())}}
	if rec.Address6.IsValid() {
		routes = append(routes, CNIRoute{Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, GW: net.IP(rec.Gateway6.AsSlice())})
	}
	return routes
}

// splitRoutes returns the gateway of each family's default route (the IPAM
// plugin's default route of that family if it has one, else its gateway)
// and the other routes. IPv6 routes count only with an IPv6 address.
func splitRoutes(a *CNIAddress) (gw4, gw6 net.IP, other []CNIRoute) {
	gw4, gw6 = a.Gateway, a.Gateway6
	for _, r := range a.Routes {
		if r.Dst == nil {
			continue
		}
		v4 := r.Dst.IP.To4() != nil
		if !v4 && a.Address6 == nil {
			continue
		}
		if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			switch {
			case r.GW == nil:
			case v4:
				gw4 = r.GW
			default:
				gw6 = r.GW
			}
			continue
		}
		other = append(other, r)
	}
	return gw4, gw6, other
}

// insertAfter returns steps with s inserted after the step called name (at
// the end if there is none).
func insertAfter(steps []step, name string, s step) []step {
	for i := range steps {
		if steps[i].name == name {
			out := append([]step{}, steps[:i+1]...)
			out = append(out, s)
			return append(out, steps[i+1:]...)
		}
	}
	return append(steps, s)
}

// cniRoutesStep adds the IPAM plugin's routes other than the default route
// in the container.
func (m *Manager) cniRoutesStep(t *Target, rec *state.Record, routes []CNIRoute) step {
	cmd := ""
	for _, r := range routes {
		via := ""
		if r.GW != nil {
			via = " via " + r.GW.String()
		}
		cmd += fmt.Sprintf("nsenter --net=%s ip route add %s%s dev %s; ", t.NetnsPath, r.Dst, via, rec.IfName)
	}
	each := func(f func(h *netlink.Handle, l netlink.Link, r CNIRoute) error) error {
		h, err := netlink.NewHandleAt(t.NS)
		if err != nil {
			return fmt.Errorf("open netlink in the container: %w", err)
		}
		defer h.Close()
		l, err := netops.LinkByName(h, rec.IfName)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if err := f(h, l, r); err != nil {
				return err
			}
		}
		return nil
	}
	return step{
		name: "routes",
		cmd:  cmd,
		do: func() error {
			return each(func(h *netlink.Handle, l netlink.Link, r CNIRoute) error { return netops.AddRoute(h, l, r.Dst, r.GW) })
		},
		undo: func() error {
			return each(func(h *netlink.Handle, l netlink.Link, r CNIRoute) error { return netops.DelRoute(h, l, r.Dst, r.GW) })
		},
	}
}

// cniPlan decides the record of a CNI attach: the address and gateway are
// the IPAM plugin's, the rest as the CLI's plan decides it (stable MAC,
// the bridge's MTU, the lowest free counter slot). No Docker lookup.
func (m *Manager) cniPlan(t *Target, req CNIAttachRequest, br *netlink.Bridge, addr *net.IPNet, gw net.IP) (*state.Record, error) {
	if gw == nil || gw.To4() == nil {
		return nil, errors.New("plan: the IPAM plugin gave neither an IPv4 gateway nor a default route with one")
	}
	mtu := req.MTU
	if mtu == 0 {
		mtu = br.Attrs().MTU
	}
	recs, _, err := m.store.List()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.ID != t.ID && !r.Observed && r.Bridge == req.Bridge && r.IP() == prefixOf(addr).Addr() {
			return nil, fmt.Errorf("plan: the IPAM plugin gave %s, which %s holds already", addr.IP, r.DisplayName())
		}
	}
	slot, err := freeSlot(recs, t.ID)
	if err != nil {
		return nil, err
	}
	hook := req.Hook // replaced by the one used (tcx or tc) once installed
	if !req.Mode.Programs() {
		hook = datapath.HookNone
	}
	info := req.CNI
	gwAddr, _ := netip.AddrFromSlice(gw.To4())
	return &state.Record{
		ID: t.ID, Name: t.Name, Kind: t.Kind,
		NetnsPath: t.NetnsPath, NetnsInode: t.Inode,
		HostIf: netops.HostVethName(t.ID), IfName: req.CNI.IfName,
		Address: prefixOf(&net.IPNet{IP: addr.IP.To4(), Mask: addr.Mask}), Gateway: gwAddr,
		MAC: netops.StableMAC(t.ID), MTU: mtu,
		Bridge: req.Bridge, Mode: req.Mode, Hook: hook, Slot: slot, Created: time.Now().UTC(),
		CNI: &info,
	}, nil
}

// cniResult adds the host veth's and the bridge's MACs to rec.
func (m *Manager) cniResult(rec *state.Record, unchanged bool, routes []CNIRoute) (*CNIAttachResult, error) {
	res := &CNIAttachResult{Record: rec, Unchanged: unchanged, Routes: routes}
	if l, err := m.host.LinkByIndex(rec.HostIfindex); err == nil {
		res.HostMAC = l.Attrs().HardwareAddr.String()
	}
	if rec.Bridge != "" {
		if l, err := m.host.LinkByName(rec.Bridge); err == nil {
			res.BridgeMAC = l.Attrs().HardwareAddr.String()
		}
	}
	if routes == nil {
		res.Routes = defaultRoutes(rec)
	}
	return res, nil
}

// DetachCNI removes the CNI attachment (containerID, ifName): for one nswire
// wired, everything (programs, map entries, pins, veth, record); for one it
// observed, only its counters and guard. Needs neither the namespace nor
// the container: an attachment that is unknown or already gone is success
// (returns nil). It reads only this attachment's record (or tombstone), not
// the whole store, so a DEL costs the same on a node with many pods.
func (m *Manager) DetachCNI(ctx context.Context, containerID, ifName string) (*state.Record, error) {
	id := CNIRecordID(containerID, ifName)
	lock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	rec, err := m.store.Get(id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		tomb, err := m.store.GetTombstone(id)
		if err != nil || tomb == nil {
			return nil, err
		}
		if err := m.finishDetach(tomb); err != nil {
			return nil, fmt.Errorf("finish the interrupted detach of %s: %w", id, err)
		}
		return tomb, nil
	}
	if err := m.teardown(rec); err != nil {
		return nil, fmt.Errorf("detach %s: %w", id, err)
	}
	return rec, nil
}

// CNILive is the live state of a CNI attachment, for CHECK.
type CNILive struct {
	Record  *state.Record
	Stale   string // why the record no longer describes a live attachment, or ""
	MAC     string // of the interface in the container
	Addrs   []*net.IPNet
	Routes  []netlink.Route // IPv4 routes of the interface in the container
	HostIf  string          // the host peer, found from the container side
	Master  string          // the bridge the host peer is in
	Program bool            // nswire's programs are attached to the host peer
}

// InspectCNI reads the live state of the CNI attachment (containerID,
// ifName) in the namespace at netnsPath. A missing record is an error.
func (m *Manager) InspectCNI(ctx context.Context, containerID, ifName, netnsPath string) (*CNILive, error) {
	rec, err := m.store.Get(CNIRecordID(containerID, ifName))
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("nswire has no attachment %s", CNIRecordID(containerID, ifName))
	}
	live := &CNILive{Record: rec, Stale: m.Staleness(rec)}
	ns, err := netops.OpenNetnsPath(netnsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	ino, err := netops.Inode(ns)
	if err != nil {
		return nil, err
	}
	if ino != rec.NetnsInode {
		live.Stale = fmt.Sprintf("%s is namespace %d, the attachment was made in %d", netnsPath, ino, rec.NetnsInode)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("open netlink in %s: %w", netnsPath, err)
	}
	defer h.Close()
	l, err := h.LinkByName(ifName)
	if err != nil {
		return nil, fmt.Errorf("the container has no interface %s", ifName)
	}
	live.MAC = l.Attrs().HardwareAddr.String()
	addrs, err := netops.Addrs(h, l, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		live.Addrs = append(live.Addrs, a.IPNet)
	}
	if live.Routes, err = netops.Routes(h, l, netlink.FAMILY_V4); err != nil {
		return nil, err
	}
	if idx, err := netops.PeerIndex(l); err == nil {
		if hl, err := m.host.LinkByIndex(idx); err == nil {
			live.HostIf = hl.Attrs().Name
			if hl.Attrs().MasterIndex > 0 {
				if b, err := m.host.LinkByIndex(hl.Attrs().MasterIndex); err == nil {
					live.Master = b.Attrs().Name
				}
			}
		}
	}
	if rec.Hook.Installed() {
		if ld, ok := m.dp.(*lazyDatapath); ok {
			if dp, err := ld.open(); err == nil {
				_, live.Program = dp.Installed(rec.HostIf)
			}
		}
	}
	return live, nil
}

// GCCNI removes the CNI attachments of network that are not in valid (a set
// of CNIRecordID values) and returns their record IDs, sorted.
func (m *Manager) GCCNI(ctx context.Context, network string, valid map[string]bool) ([]string, error) {
	lock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	recs, _, err := m.store.List()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, r := range recs {
		if r.Kind != state.KindCNI || r.CNI == nil || r.CNI.Network != network || valid[r.ID] {
			continue
		}
		if err := m.teardown(r); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", r.ID, err))
			continue
		}
		removed = append(removed, r.ID)
	}
	sort.Strings(removed)
	return removed, errors.Join(errs...)
}
