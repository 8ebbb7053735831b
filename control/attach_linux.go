package control

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/netops"
)

// lockTimeout bounds how long an attach or detach waits for another nswire.
const lockTimeout = 30 * time.Second

// AttachResult says what an attach did.
type AttachResult struct {
	Record    *state.Record
	Unchanged bool       // it was already attached with these settings
	Plan      []PlanStep // the steps with their equivalent shell commands (dry run)
	// Repaired lists what of an existing attachment was missing and was
	// repaired (with a dry run: would be); Unchanged is then false.
	Repaired []string
}

// PlanStep is one step of an attach plan as --dry-run shows it.
type PlanStep struct {
	Name    string `json:"name"`
	Command string `json:"command"` // the equivalent shell command
}

// maxSlots is the number of counter slots the datapath has.
const maxSlots = 4096

// Attach wires the target into the bridge as req says. It holds the state
// lock for the whole operation. On failure every step done is undone. With
// dryRun it only returns the plan. A wired container is recorded in the
// desired state (Config.DesiredDir), so serve keeps it wired.
func (m *Manager) Attach(ctx context.Context, req AttachRequest, dryRun bool) (*AttachResult, error) {
	req = req.withDefaults()
	if req.Network != "" {
		br, err := m.NetworkBridge(ctx, req.Network)
		if err != nil {
			return nil, err
		}
		req.Bridge = br
	}
	lock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer lock.Release()

	phase := time.Now()
	t, err := m.Resolve(ctx, req.Target)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	m.logPhase("resolve", &phase)

	if !dryRun {
		if err := m.finishInterruptedDetach(t); err != nil {
			return nil, err
		}
	}
	if res, err := m.attachExisting(t, req, dryRun); res != nil || err != nil {
		return res, err
	}

	rec, err := m.plan(ctx, t, req)
	if err != nil {
		return nil, err
	}
	m.logPhase("plan", &phase)
	if !dryRun {
		if err := m.clearLeftover(rec); err != nil {
			return nil, err
		}
	}
	settle := func() error { return nil }
	if !dryRun {
		// Probe the address on the bridge now; the answer is collected in
		// the address step, so the wait overlaps the veth steps.
		probe, err := m.startAddrProbe(rec)
		if err != nil {
			return nil, err
		}
		defer probe.Close()
		settle = func() error { return m.settleAddress(ctx, t, req, rec, probe) }
	}
	steps, release := m.attachSteps(t, rec, settle)
	defer release()
	if dryRun {
		return &AttachResult{Record: rec, Plan: planOf(steps)}, nil
	}
	if err := m.run(steps); err != nil {
		return nil, fmt.Errorf("attach %s: %w (every step done was undone)", t.Name, err)
	}
	if err := m.rememberDesired(rec, !req.IP.IsSet()); err != nil {
		return nil, fmt.Errorf("attached %s, but %w", t.Name, err)
	}
	return &AttachResult{Record: rec}, nil
}

// finishInterruptedDetach finishes a detach of t that was interrupted after
// it wrote its tombstone, if there is one.
func (m *Manager) finishInterruptedDetach(t *Target) error {
	tomb, err := m.store.GetTombstone(t.ID)
	if err != nil || tomb == nil {
		return err
	}
	if err := m.finishDetach(tomb); err != nil {
		return fmt.Errorf("finish the interrupted detach of %s: %w", t.Name, err)
	}
	return nil
}

// attachExisting deals with a record t has already. In the same namespace
// it is attach again: the same settings are checked and repaired, other
// settings an error. A record of a namespace or veth that is gone (the
// container restarted) is cleared. (nil, nil): plan and wire afresh.
func (m *Manager) attachExisting(t *Target, req AttachRequest, dryRun bool) (*AttachResult, error) {
	existing, err := m.store.Get(t.ID)
	if state.IsDamaged(err) {
		ref := t.Name
		if t.Kind != state.KindDocker {
			ref = t.ID
		}
		return nil, fmt.Errorf("the record of %s is damaged (%v): `nswire detach %s` removes what nswire made for it and keeps the file aside, then attach again", t.Name, err, ref)
	}
	if err != nil || existing == nil {
		return nil, err
	}
	// The same namespace: the same inode and, for a container or PID, the
	// same process (an inode number is reused at once after a namespace
	// dies: a restarted container may get its old one).
	if existing.NetnsInode == t.Inode && existing.PID == t.PID {
		if diff := differences(existing, req); diff != "" {
			return nil, fmt.Errorf("%s is already attached with other settings (%s): `nswire detach %s` first", t.Name, diff, t.Name)
		}
		res, err := m.attachedAgain(t, existing, dryRun)
		if err == nil && !dryRun {
			if err := m.rememberDesired(res.Record, !req.IP.IsSet()); err != nil {
				return nil, err
			}
		}
		return res, err
	}
	if !dryRun {
		if err := m.teardown(existing); err != nil {
			return nil, fmt.Errorf("clear stale record of %s: %w", t.Name, err)
		}
	}
	return nil, nil
}

// planOf is the dry run's plan of steps: the ones with a command.
func planOf(steps []step) []PlanStep {
	var plan []PlanStep
	for _, s := range steps {
		if s.cmd != "" {
			plan = append(plan, PlanStep{Name: s.name, Command: s.cmd})
		}
	}
	return plan
}

// logPhase prints, in verbose mode, how long the phase since *since took.
func (m *Manager) logPhase(name string, since *time.Time) {
	if m.cfg.Verbose != nil {
		fmt.Fprintf(m.cfg.Verbose, "%-21s %8s\n", name, time.Since(*since).Round(time.Microsecond))
	}
	*since = time.Now()
}

// hostLinkMatches reports whether the record's host veth still exists with
// the recorded ifindex.
func (m *Manager) hostLinkMatches(r *state.Record) bool {
	l, err := netops.LinkByName(m.host, r.HostIf)
	return err == nil && l.Attrs().Index == r.HostIfindex
}

// differences lists the settings of req that differ from rec; settings left
// to their defaults in req never differ.
func differences(rec *state.Record, req AttachRequest) string {
	var d []string
	add := func(what, had, want string) { d = append(d, fmt.Sprintf("%s %s, asked %s", what, had, want)) }
	if req.Bridge != rec.Bridge {
		add("bridge", rec.Bridge, req.Bridge)
	}
	if req.IfName != rec.IfName {
		add("ifname", rec.IfName, req.IfName)
	}
	if req.IP.IsSet() && (req.IP.Addr != rec.IP() || (req.IP.Bits != -1 && req.IP.Bits != rec.Address.Bits())) {
		add("ip", rec.Address.String(), req.IP.String())
	}
	if req.IP6.IsSet() && (req.IP6.Addr != rec.Address6.Addr() || (req.IP6.Bits != -1 && req.IP6.Bits != rec.Address6.Bits())) {
		add("ip6", rec.Address6.String(), req.IP6.String())
	}
	if req.Gateway.IsValid() && req.Gateway != rec.Gateway {
		add("gateway", rec.Gateway.String(), req.Gateway.String())
	}
	if req.MAC != nil && !bytes.Equal(req.MAC, rec.MAC) {
		add("mac", rec.MAC.String(), req.MAC.String())
	}
	if req.MTU != 0 && req.MTU != rec.MTU {
		add("mtu", fmt.Sprint(rec.MTU), fmt.Sprint(req.MTU))
	}
	if req.NoFlows != rec.NoFlows {
		add("flows", fmt.Sprint(!rec.NoFlows), fmt.Sprint(!req.NoFlows))
	}
	if req.Mode != rec.Mode {
		add("mode", string(rec.Mode), string(req.Mode)+" (`nswire mode` switches it)")
	}
	return strings.Join(d, "; ")
}

// plan decides every setting of the attach and checks it against the
// machine: bridge, subnet, address, gateway, MAC, MTU, slot.
func (m *Manager) plan(ctx context.Context, t *Target, req AttachRequest) (*state.Record, error) {
	br, nets, err := netops.Bridge(m.host, req.Bridge)
	if err != nil {
		return nil, err
	}
	if len(nets) == 0 {
		return nil, fmt.Errorf("bridge %s has no IPv4 address: give it one (the gateway) first", req.Bridge)
	}
	if err := checkBridgeShared(br, req.MTU); err != nil {
		return nil, err
	}
	bridgeAddr := nets[0]
	subnet := &net.IPNet{IP: bridgeAddr.IP.Mask(bridgeAddr.Mask).To4(), Mask: bridgeAddr.Mask}
	gw := bridgeAddr.IP.To4()
	if req.Gateway.IsValid() {
		gw = net.IP(req.Gateway.AsSlice())
		if err := CheckGateway(gw, subnet); err != nil {
			return nil, err
		}
	}
	dn, err := m.bridgeNetwork(ctx, req.Bridge)
	if err != nil {
		return nil, err
	}
	if req.Mode == datapath.Fastpath && dn != nil && !dn.ICC && !req.Force {
		return nil, fmt.Errorf("bridge %s belongs to Docker network %s with com.docker.network.bridge.enable_icc=false: the fast path would bypass that isolation between containers; use --mode observe, or --force to fast-path anyway", req.Bridge, dn.Name)
	}
	recs, _, err := m.store.List()
	if err != nil {
		return nil, err
	}
	used, err := m.usedAddresses(br, recs, dn, t.ID)
	if err != nil {
		return nil, err
	}
	addr, err := ResolveAddress(req.IP, Subnet{Net: subnet, Gateway: gw}, func(ip net.IP) string { return used[ip.String()] })
	if err != nil {
		return nil, err
	}
	mac := netops.StableMAC(t.ID)
	if req.MAC != nil {
		mac = req.MAC
	}
	for _, r := range recs {
		if bytes.Equal(r.MAC, mac) && r.ID != t.ID {
			return nil, fmt.Errorf("--mac %s is already used by %s", mac, r.DisplayName())
		}
	}
	mtu := req.MTU
	if mtu == 0 {
		mtu = br.Attrs().MTU
	}
	slot, err := freeSlot(recs, t.ID)
	if err != nil {
		return nil, err
	}
	hook := req.Hook // replaced by the one used (tcx or tc) once installed
	if !req.Mode.Programs() {
		hook = datapath.HookNone
	}
	gwAddr, _ := netip.AddrFromSlice(gw.To4())
	addr6, gw6, err := m.planIPv6(br, recs, dn, t.ID, req)
	if err != nil {
		return nil, err
	}
	return &state.Record{
		Address6: addr6, Gateway6: gw6,
		ID: t.ID, Name: t.Name, Kind: t.Kind, PID: t.PID,
		NetnsPath: t.NetnsPath, NetnsInode: t.Inode,
		HostIf: netops.HostVethName(t.ID), IfName: req.IfName,
		Address: prefixOf(addr), Gateway: gwAddr, MAC: mac, MTU: mtu,
		Bridge: req.Bridge, Mode: req.Mode, Hook: hook, Slot: slot, NoFlows: req.NoFlows, Created: time.Now().UTC(),
	}, nil
}

// usedAddresses maps each IPv4 address in use on the bridge to who uses it:
// Docker's containers on the bridge's network, other nswire records, and
// the bridge's neighbour table.
func (m *Manager) usedAddresses(br netlink.Link, recs []*state.Record, dn *dockerNetwork, self string) (map[string]string, error) {
	used := map[string]string{}
	neigh, err := netops.NeighborIPs(m.host, br.Attrs().Index)
	if err != nil {
		return nil, err
	}
	for _, ip := range neigh {
		used[ip.String()] = "a host in the neighbour table of " + br.Attrs().Name
	}
	if dn != nil {
		for ip, who := range dn.Containers {
			used[ip] = who + " (Docker)"
		}
	}
	for _, r := range recs {
		if r.ID != self && !r.Observed {
			used[r.IP().String()] = r.DisplayName() + " (nswire)"
		}
	}
	for ip, who := range m.conflicts {
		used[ip] = who
	}
	return used, nil
}

// freeSlot returns the lowest counter slot no other record holds.
func freeSlot(recs []*state.Record, self string) (uint32, error) {
	taken := map[uint32]bool{}
	for _, r := range recs {
		if r.ID != self {
			taken[r.Slot] = true
		}
	}
	for s := uint32(0); s < maxSlots; s++ {
		if !taken[s] {
			return s, nil
		}
	}
	return 0, fmt.Errorf("all %d datapath slots are in use: detach containers or run `nswire gc`", maxSlots)
}

// attachSteps is the attach as named steps, each with its undo and the
// equivalent shell command. release frees the in-namespace netlink handle
// once the steps (and any rollback) are over.
// settle runs first in the address step: it may change rec.Address (see
// settleAddress).
func (m *Manager) attachSteps(t *Target, rec *state.Record, settle func() error) (steps []step, release func()) {
	tmpPeer := netops.TempPeerName(rec.ID)
	mac := rec.MAC
	ipnetOf := func() *net.IPNet { return &net.IPNet{IP: rec.IPv4(), Mask: net.CIDRMask(rec.Address.Bits(), 32)} }
	addr := ipnetOf()
	gw := net.IP(rec.Gateway.AsSlice())
	nsRef := t.NetnsPath
	if t.PID != 0 {
		nsRef = fmt.Sprint(t.PID)
	}
	var nsExec string
	if t.PID != 0 {
		nsExec = fmt.Sprintf("nsenter -t %d -n ip", t.PID)
	} else {
		nsExec = fmt.Sprintf("nsenter --net=%s ip", t.NetnsPath)
	}

	var (
		hostLink netlink.Link
		peer     netlink.Link
		nsh      *netlink.Handle
		loWasUp  bool
	)
	closeNSH := func() {
		if nsh != nil {
			nsh.Close()
			nsh = nil
		}
	}
	steps = []step{
		{
			name: "veth",
			cmd: fmt.Sprintf("ip link add %s mtu %d type veth peer name %s address %s mtu %d netns %s",
				rec.HostIf, rec.MTU, tmpPeer, rec.MAC, rec.MTU, nsRef),
			do: func() error {
				// The peer is created inside the target namespace directly:
				// the recipe's "ip link set PEER netns PID" costs ~15 ms of
				// RCU grace periods, creation in place costs nothing.
				v, err := netops.CreateVeth(m.host, rec.HostIf, tmpPeer, t.NS, rec.MTU, mac)
				if err != nil {
					return err
				}
				hostLink = v
				rec.HostIfindex = v.Attrs().Index
				// Tag it as this nswire's (state dir), for gc.
				if err := netops.SetAlias(m.host, v, m.vethTag()); err != nil {
					netops.DeleteLink(m.host, rec.HostIf)
					return fmt.Errorf("tag %s: %w", rec.HostIf, err)
				}
				if nsh, err = netops.HandleAt(t.NS); err == nil {
					peer, err = netops.LinkByName(nsh, tmpPeer)
				}
				if err != nil { // a failed step undoes its own part
					netops.DeleteLink(m.host, rec.HostIf)
					return fmt.Errorf("find the peer in the target netns: %w", err)
				}
				return nil
			},
			undo: func() error { return netops.DeleteLink(m.host, rec.HostIf) },
		},
		{
			name: "master",
			cmd:  fmt.Sprintf("ip link set %s master %s", rec.HostIf, rec.Bridge),
			do: func() error {
				br, err := netops.LinkByName(m.host, rec.Bridge)
				if err != nil {
					return err
				}
				return netops.SetMaster(m.host, hostLink, br)
			},
			undo: func() error { return netops.SetNoMaster(m.host, hostLink) },
		},
		{
			name: "host-up",
			cmd:  fmt.Sprintf("ip link set %s up", rec.HostIf),
			do:   func() error { return netops.SetUp(m.host, hostLink) },
			undo: func() error { return netops.SetDown(m.host, hostLink) },
		},
		{
			name: "rename",
			cmd:  fmt.Sprintf("%s link set dev %s name %s", nsExec, tmpPeer, rec.IfName),
			do: func() error {
				l, err := netops.Rename(nsh, peer, rec.IfName)
				if err == nil {
					peer = l
				}
				return err
			},
			undo: func() error {
				l, err := netops.Rename(nsh, peer, tmpPeer)
				if err == nil {
					peer = l
				}
				return err
			},
		},
		{
			// Before the interface comes up, so that no router
			// advertisement is ever accepted on it: a rogue one from
			// another container would give this one a default route and an
			// address. The veth's undo removes the interface with its
			// settings.
			name: "no-ra",
			cmd:  fmt.Sprintf("%s sysctl -w net.ipv6.conf.%s.accept_ra=0 net.ipv6.conf.%s.autoconf=0", strings.TrimSuffix(nsExec, " ip"), rec.IfName, rec.IfName),
			do:   func() error { return disableRA(t.NS, rec.IfName) },
		},
		{
			name: "up",
			cmd:  fmt.Sprintf("%s link set lo up; %s link set %s up", nsExec, nsExec, rec.IfName),
			do: func() error {
				lo, err := netops.LinkByName(nsh, "lo")
				if err != nil {
					return err
				}
				loWasUp = netops.IsUp(lo)
				if !loWasUp {
					if err := netops.SetUp(nsh, lo); err != nil {
						return err
					}
				}
				return netops.SetUp(nsh, peer)
			},
			undo: func() error {
				if err := netops.SetDown(nsh, peer); err != nil {
					return err
				}
				if !loWasUp {
					if lo, err := netops.LinkByName(nsh, "lo"); err == nil {
						return netops.SetDown(nsh, lo)
					}
				}
				return nil
			},
		},
		{
			name: "address",
			cmd:  fmt.Sprintf("%s addr add %s dev %s", nsExec, rec.Address, rec.IfName),
			do: func() error {
				if err := settle(); err != nil {
					return err
				}
				addr = ipnetOf()
				return netops.AddAddr(nsh, peer, addr)
			},
			undo: func() error { return netops.DelAddr(nsh, peer, addr) },
		},
		{
			name: "route",
			cmd:  fmt.Sprintf("%s route add default via %s dev %s", nsExec, rec.Gateway, rec.IfName),
			do:   func() error { return netops.AddDefaultRoute(nsh, peer, gw) },
			undo: func() error { return netops.DelDefaultRoute(nsh, peer, gw) },
		},
	}
	if rec.Address6.IsValid() {
		addr6 := &net.IPNet{IP: rec.IPv6(), Mask: net.CIDRMask(rec.Address6.Bits(), 128)}
		gw6 := net.IP(rec.Gateway6.AsSlice())
		steps = append(steps, step{
			name: "address6",
			cmd: fmt.Sprintf("%s sysctl -w net.ipv6.conf.%s.accept_dad=0 net.ipv6.conf.%s.ndisc_notify=1 net.ipv6.conf.%s.disable_ipv6=0; %s -6 addr add %s dev %s",
				strings.TrimSuffix(nsExec, " ip"), rec.IfName, rec.IfName, rec.IfName, nsExec, rec.Address6, rec.IfName),
			do: func() error {
				if err := m.probe6(rec); err != nil {
					return err
				}
				if ok, err := netops.SetIPv6Confs(t.NS, rec.IfName, ipv6Settings); err != nil {
					return err
				} else if !ok {
					return fmt.Errorf("the namespace of %s has no IPv6 (a kernel without it, or ipv6.disable=1): attach it without IPv6 on a bridge without an IPv6 address", t.Name)
				}
				// The kernel announces the address as it becomes usable:
				// the bridge must forward from the port by then.
				waitForwarding(rec.HostIf, 100*time.Millisecond)
				if err := netops.AddAddr(nsh, peer, addr6); err != nil {
					return err
				}
				return netops.WaitAddrUsable(nsh, peer, addr6.IP, addrUsableWait)
			},
			undo: func() error { return netops.DelAddr(nsh, peer, addr6) },
		}, step{
			name: "route6",
			cmd:  fmt.Sprintf("%s -6 route add default via %s dev %s", nsExec, rec.Gateway6, rec.IfName),
			do:   func() error { return netops.AddDefaultRoute(nsh, peer, gw6) },
			undo: func() error { return netops.DelDefaultRoute(nsh, peer, gw6) },
		})
	}
	if rec.Mode.Programs() {
		steps = append(steps, step{
			name: "datapath",
			cmd:  fmt.Sprintf("# attach eBPF from_container on tcx ingress and to_container on tcx egress of %s (mode %s)", rec.HostIf, rec.Mode),
			do: func() error {
				used, err := m.dp.install(rec, rec.Hook)
				if err == nil {
					rec.Hook = used
				}
				return err
			},
			undo: func() error { return m.dp.remove(rec) },
		})
	}
	steps = append(steps, step{
		name: "record",
		cmd: fmt.Sprintf("%s arping -U -c 1 -I %s %s; # write %s", strings.TrimSuffix(nsExec, " ip"), rec.IfName, rec.IP(),
			m.store.Path(rec.ID)),
		do: func() error {
			// The container must still be the one resolved; then announce
			// its address (gratuitous ARP) and record the attach.
			if err := t.alive(); err != nil {
				return err
			}
			if err := announce(nsh, peer.Attrs().Index, rec.IPv4(), rec.HostIf); err != nil {
				return err
			}
			return m.store.Put(rec)
		},
		undo: func() error { return m.store.Delete(rec.ID) },
	})
	return steps, closeNSH
}

// clearLeftover removes what an attach of rec's target that crashed before
// writing its record left behind: the host veth (and with it the peer) and
// its datapath pins and map entries. Under the state lock, a host veth of
// this name without a record can only be such a leftover.
func (m *Manager) clearLeftover(rec *state.Record) error {
	l, err := netops.LinkByName(m.host, rec.HostIf)
	if netops.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look for a leftover %s: %w", rec.HostIf, err)
	}
	left := *rec
	left.HostIfindex = l.Attrs().Index
	if err := m.dp.remove(&left); err != nil {
		return fmt.Errorf("clear leftover datapath of %s: %w", rec.HostIf, err)
	}
	if err := netops.DeleteLink(m.host, rec.HostIf); err != nil {
		return fmt.Errorf("clear leftover %s: %w", rec.HostIf, err)
	}
	return nil
}

// lock takes the state lock, waiting at most lockTimeout for another
// nswire process.
func (m *Manager) lock() (*state.Lock, error) {
	return state.AcquireLock(m.cfg.StateDir, "lock", lockTimeout)
}

// lockedRecord takes the state lock and finds the record of ref (nil when
// there is none). The caller releases the lock.
func (m *Manager) lockedRecord(ctx context.Context, ref string) (*state.Lock, *state.Record, error) {
	lock, err := m.lock()
	if err != nil {
		return nil, nil, err
	}
	rec, err := m.FindRecord(ctx, ref)
	if err != nil {
		lock.Release()
		return nil, nil, err
	}
	return lock, rec, nil
}

// FindRecord finds the record of ref: a container name, a full or
// abbreviated (≥ 4 hex digits) ID, "pid:N"/"--pid" form, a netns path or a
// record ID. Returns (nil, nil) when nothing matches.
func (m *Manager) FindRecord(ctx context.Context, ref string) (*state.Record, error) {
	recs, _, err := m.store.List()
	if err != nil {
		return nil, err
	}
	path := ref
	ref = strings.TrimPrefix(ref, "/")
	var matches []*state.Record
	for _, r := range recs {
		switch {
		case r.ID == ref, r.Name == ref, r.NetnsPath == path && r.Kind == "netns":
			return r, nil
		case len(ref) >= 4 && r.Kind == "docker" && strings.HasPrefix(r.ID, ref):
			matches = append(matches, r)
		}
	}
	if len(matches) == 1 {
		return matches[0], nil
	}
	if len(matches) > 1 {
		return nil, fmt.Errorf("%q matches %d attached containers: give more of the ID", ref, len(matches))
	}
	return nil, nil
}

// addrUsableWait bounds the wait for an added IPv6 address to stop being
// tentative. With accept_dad=0 it is usable within a millisecond; where the
// container's namespace has net.ipv6.conf.all.accept_dad on (new namespaces
// have it off), the kernel's detection runs anyway, up to two seconds.
const addrUsableWait = 3 * time.Second

// planIPv6 chooses the container's IPv6 address and gateway when the bridge
// has a global IPv6 address (the first one: its prefix is the subnet, the
// address the gateway); without one, a requested --ip6 is an error and none
// is chosen.
func (m *Manager) planIPv6(br netlink.Link, recs []*state.Record, dn *dockerNetwork, self string, req AttachRequest) (netip.Prefix, netip.Addr, error) {
	nets, err := netops.BridgeIPv6(m.host, br)
	if err != nil {
		return netip.Prefix{}, netip.Addr{}, err
	}
	if len(nets) == 0 {
		if req.IP6.IsSet() && req.Network != "" && dn != nil {
			return netip.Prefix{}, netip.Addr{}, fmt.Errorf("--ip6 %s: Docker network %s (bridge %s) has no IPv6: create one with `docker network create --ipv6 --subnet fdXX:…::/64`, or leave --ip6 out", req.IP6, dn.Name, br.Attrs().Name)
		}
		if req.IP6.IsSet() {
			return netip.Prefix{}, netip.Addr{}, fmt.Errorf("--ip6 %s: bridge %s has no global IPv6 address (a Docker network made with --ipv6 has one)", req.IP6, br.Attrs().Name)
		}
		return netip.Prefix{}, netip.Addr{}, nil
	}
	bp := prefixOf(nets[0])
	gw := bp.Addr()
	used := map[netip.Addr]string{}
	neigh, err := netops.NeighborIPv6s(m.host, br.Attrs().Index)
	if err != nil {
		return netip.Prefix{}, netip.Addr{}, err
	}
	for _, ip := range neigh {
		if a, ok := netip.AddrFromSlice(ip); ok {
			used[a] = "a host in the neighbour table of " + br.Attrs().Name
		}
	}
	if dn != nil {
		for ip, who := range dn.Containers {
			if a, err := netip.ParseAddr(ip); err == nil && a.Is6() {
				used[a] = who + " (Docker)"
			}
		}
	}
	for _, r := range recs {
		if r.ID != self && r.Address6.IsValid() {
			used[r.Address6.Addr()] = r.DisplayName() + " (nswire)"
		}
	}
	for ip, who := range m.conflicts {
		if a, err := netip.ParseAddr(ip); err == nil && a.Is6() {
			used[a] = who
		}
	}
	addr, err := ResolveAddress6(req.IP6, bp, gw, func(a netip.Addr) string { return used[a] })
	return addr, gw, err
}

// probe6 asks the bridge's neighbours, with a neighbour solicitation from
// the host, whether anyone holds rec's IPv6 address, waiting at most
// ProbeWait: the address is then added with nodad, without the kernel's
// duplicate address detection delay.
func (m *Manager) probe6(rec *state.Record) error {
	br, err := netops.LinkByName(m.host, rec.Bridge)
	if err != nil {
		return err
	}
	// Its own entry from before a restart (same address, same MAC) is not
	// another holder.
	if err := netops.ForgetNeighbor(m.host, br.Attrs().Index, rec.IPv6(), rec.MAC); err != nil {
		return err
	}
	p, err := startProbe(m.host, br.Attrs().Index, rec.IPv6(), ProbeWait)
	if err != nil {
		return err
	}
	defer p.Close()
	holder, err := p.Conflict()
	if err != nil {
		return fmt.Errorf("probe %s: %w", rec.Address6.Addr(), err)
	}
	if holder != nil {
		return fmt.Errorf("IPv6 address %s is already in use by a host with MAC %s that answered a neighbour solicitation on %s: give another with --ip6", rec.Address6.Addr(), holder, rec.Bridge)
	}
	return nil
}
