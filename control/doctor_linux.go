package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/state"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/nswire/nswire/bpf"
	"github.com/nswire/nswire/netops"
)

var bigTen = big.NewInt(10)

// Check statuses.
const (
	CheckOK   = "ok"
	CheckWarn = "warn" // works, but worth knowing; does not fail doctor
	CheckFail = "fail" // nswire cannot work (or the target is broken)
)

// Check is one finding of doctor.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// DoctorReport is what doctor found.
type DoctorReport struct {
	Target string  `json:"target,omitempty"`
	OK     bool    `json:"ok"` // no check failed
	Checks []Check `json:"checks"`
}

func (r *DoctorReport) add(name, status, detail, fix string) {
	r.Checks = append(r.Checks, Check{Name: name, Status: status, Detail: detail, Fix: fix})
	if status == CheckFail {
		r.OK = false
	}
}

// DoctorHost checks the machine before anything is changed: privileges,
// bpffs, tcx, BTF, the bridge, the Docker engine, br_netfilter, free
// addresses, and nswire's own state. It changes nothing.
func (m *Manager) DoctorHost(ctx context.Context, bridge string) *DoctorReport {
	r := &DoctorReport{OK: true, Checks: []Check{}}
	privileged := m.doctorPrivileges(r)
	m.doctorBPFFS(r, privileged)
	doctorTCX(r, privileged)
	doctorBTF(r)
	subnet := m.doctorBridge(r, bridge)
	dn := m.doctorDocker(ctx, r, bridge)
	doctorBrNetfilter(r)
	if subnet != nil {
		m.doctorFreeAddresses(r, bridge, *subnet, dn)
	}
	m.doctorState(ctx, r, privileged)
	return r
}

func (m *Manager) doctorPrivileges(r *DoctorReport) bool {
	var names []string
	for _, c := range neededCaps {
		names = append(names, c.name)
	}
	if err := CheckCapabilities(); err != nil {
		r.add("privileges", CheckFail, err.Error(),
			"run nswire as root (sudo nswire …), or give the binary "+strings.Join(names, ", ")+
				" (setcap cap_net_admin,cap_sys_admin,cap_sys_ptrace,cap_bpf+ep nswire)")
		return false
	}
	who := "root"
	if os.Geteuid() != 0 {
		who = fmt.Sprintf("uid %d", os.Geteuid())
	}
	r.add("privileges", CheckOK, who+" with "+strings.Join(names, ", "), "")
	return true
}

func (m *Manager) doctorBPFFS(r *DoctorReport, privileged bool) {
	const root = "/sys/fs/bpf"
	var st unix.Statfs_t
	err := unix.Statfs(root, &st)
	switch {
	case err == nil && st.Type == unix.BPF_FS_MAGIC:
		detail := "mounted on " + root
		if fi, err := os.Stat(m.cfg.PinDir); err == nil {
			detail += fmt.Sprintf("; pin dir %s mode %04o", m.cfg.PinDir, fi.Mode().Perm())
			if fi.Mode().Perm()&0o077 != 0 {
				r.add("bpffs", CheckWarn, detail, "chmod 0700 "+m.cfg.PinDir+": the counters must be readable by root only")
				return
			}
		}
		r.add("bpffs", CheckOK, detail, "")
	case privileged:
		r.add("bpffs", CheckWarn, "not mounted on "+root+"; nswire mounts it (mode 0700) on its first attach", "or mount it now: mount -t bpf bpffs /sys/fs/bpf")
	default:
		r.add("bpffs", CheckFail, "not mounted on "+root+", and nswire lacks the privilege to mount it", "mount -t bpf bpffs /sys/fs/bpf (as root)")
	}
}

func doctorTCX(r *DoctorReport, privileged bool) {
	if !privileged {
		r.add("tcx", CheckFail, "cannot probe without CAP_BPF and CAP_NET_ADMIN", "run doctor as root")
		return
	}
	ok, err := datapath.TCXSupported()
	switch {
	case err != nil:
		r.add("tcx", CheckFail, "probe failed: "+err.Error(), "check that the kernel has CONFIG_BPF_SYSCALL and that no LSM blocks bpf()")
	case ok:
		hook, why := datapath.AutoHook()
		detail := fmt.Sprintf("tcx links supported; --hook auto uses %s (%s)", hook, why)
		if nk, err := datapath.NetkitSupported(); err == nil && nk {
			detail += "; netkit devices are available too (not used yet)"
		} else {
			detail += "; no netkit (Linux ≥ 6.7 with CONFIG_NETKIT; not used yet)"
		}
		r.add("tcx", CheckOK, detail, "")
	default:
		r.add("tcx", CheckWarn, "tcx is not supported (Linux < 6.6): nswire attaches with the legacy clsact qdisc + cls_bpf", "upgrade to Linux ≥ 6.6 for tcx links")
	}
}

func doctorBTF(r *DoctorReport) {
	const p = "/sys/kernel/btf/vmlinux"
	if fi, err := os.Stat(p); err == nil {
		r.add("btf", CheckOK, fmt.Sprintf("%s present (%d KiB)", p, fi.Size()/1024), "")
		return
	}
	r.add("btf", CheckWarn, p+" is missing: the datapath needs no kernel BTF, but bpftool and tracing tools will be blind", "a kernel built with CONFIG_DEBUG_INFO_BTF=y")
}

// doctorBridge checks the bridge and returns its subnet (nil on failure).
func (m *Manager) doctorBridge(r *DoctorReport, name string) *Subnet {
	br, nets, err := netops.Bridge(m.host, name)
	if err != nil {
		r.add("bridge", CheckFail, err.Error(), "create it (Docker makes docker0 when it starts) or choose one with --bridge")
		return nil
	}
	if !netops.IsUp(br) {
		r.add("bridge", CheckFail, name+" is down", "ip link set "+name+" up")
		return nil
	}
	if len(nets) == 0 {
		r.add("bridge", CheckFail, name+" has no IPv4 address: containers would have no gateway", "ip addr add 172.17.0.1/16 dev "+name+" (or your subnet)")
		return nil
	}
	sn := &net.IPNet{IP: nets[0].IP.Mask(nets[0].Mask).To4(), Mask: nets[0].Mask}
	detail := fmt.Sprintf("%s is up, gateway %s, subnet %s", name, nets[0].IP, sn)
	if br.Attrs().OperState != netlink.OperUp {
		detail += " (no carrier: no port is up yet, normal with no container attached)"
	}
	r.add("bridge", CheckOK, detail, "")
	return &Subnet{Net: sn, Gateway: nets[0].IP.To4()}
}

func (m *Manager) doctorDocker(ctx context.Context, r *DoctorReport, bridge string) *dockerNetwork {
	e, err := m.Engine()
	if err != nil {
		r.add("docker", CheckWarn, err.Error(), "set DOCKER_HOST, or use --pid/--netns targets")
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	api, err := e.Ping(pctx)
	if err != nil {
		r.add("docker", CheckWarn, "the Docker engine is not reachable ("+err.Error()+"): container names cannot be resolved", "start dockerd (systemctl start docker, or test/setup.sh), or use --pid / --netns targets")
		return nil
	}
	detail := "engine reachable, API version " + api
	if v, err := e.ServerVersion(pctx); err == nil {
		detail += ", Docker " + v
	}
	r.add("docker", CheckOK, detail, "")
	dn, err := m.bridgeNetwork(pctx, bridge)
	if err == nil && dn != nil && !dn.ICC {
		r.add("icc", CheckWarn, fmt.Sprintf("Docker network %s disables inter-container traffic (enable_icc=false)", dn.Name), "attach with --mode observe there: fastpath refuses unless --force")
	}
	return dn
}

func doctorBrNetfilter(r *DoctorReport) {
	if _, err := os.Stat("/sys/module/br_netfilter"); err != nil {
		r.add("br_netfilter", CheckOK, "not loaded: bridged traffic does not traverse iptables", "")
		return
	}
	v, _ := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
	val := strings.TrimSpace(string(v))
	if val == "1" {
		r.add("br_netfilter", CheckOK, "loaded, bridge-nf-call-iptables=1: container-to-container traffic on the bridge goes through iptables (Docker's FORWARD rules); the fast path bypasses them", "")
		return
	}
	r.add("br_netfilter", CheckOK, "loaded, bridge-nf-call-iptables="+val+": bridged traffic skips iptables", "")
}

func (m *Manager) doctorFreeAddresses(r *DoctorReport, bridge string, sn Subnet, dn *dockerNetwork) {
	br, err := netops.LinkByName(m.host, bridge)
	if err != nil {
		return
	}
	recs, _, err := m.store.List()
	if err != nil && !errors.Is(err, os.ErrPermission) {
		r.add("addresses", CheckFail, err.Error(), "")
		return
	}
	used, err := m.usedAddresses(br, recs, dn, "")
	if err != nil {
		r.add("addresses", CheckFail, err.Error(), "")
		return
	}
	free := FreeAddresses(sn, func(ip net.IP) string { return used[ip.String()] })
	detail := fmt.Sprintf("%s free in %s (%d in use)", free, sn.Net, len(used))
	switch {
	case free.Sign() <= 0:
		r.add("addresses", CheckFail, detail, "detach containers, run `nswire gc`, or use a bridge with a larger subnet")
	case free.Cmp(bigTen) < 0:
		r.add("addresses", CheckWarn, detail, "run `nswire gc` to free the addresses of dead containers")
	default:
		r.add("addresses", CheckOK, detail, "")
	}
}

// doctorState checks the state dir (mode, damaged records, interrupted
// detaches) and tells the state of every record, from one list of Docker's
// containers. It never takes the lock and changes nothing.
func (m *Manager) doctorState(ctx context.Context, r *DoctorReport, privileged bool) {
	fi, err := os.Lstat(m.cfg.StateDir)
	if errors.Is(err, os.ErrNotExist) {
		r.add("state", CheckOK, m.cfg.StateDir+" does not exist yet (nothing attached)", "")
		return
	}
	if err != nil {
		r.add("state", CheckFail, err.Error(), "run doctor as root")
		return
	}
	if fi.Mode().Perm()&0o077 != 0 {
		r.add("state", CheckWarn, fmt.Sprintf("%s has mode %04o", m.cfg.StateDir, fi.Mode().Perm()), "chmod 0700 "+m.cfg.StateDir)
	}
	if !privileged && os.Geteuid() != 0 {
		return
	}
	recs, bad, err := m.store.List()
	if err != nil {
		r.add("state", CheckFail, err.Error(), "remove what is at that path; nswire recreates its state dir")
		return
	}
	tombs, _, _ := m.store.Tombstones()
	// The docker check above already asked the engine: do not wait for a
	// hung one twice.
	tr := &truth{m: m, engineErr: errors.New("not reachable (see the docker check)")}
	if m.dockerOK {
		tr = m.newTruth(ctx, recs)
	}
	var notLive []string
	for _, rec := range recs {
		if st := tr.status(rec); !st.Live() {
			notLive = append(notLive, fmt.Sprintf("%s is %s: %s", rec.DisplayName(), st.State, st.Reason))
		}
	}
	if len(bad) > 0 {
		var lines, fixes []string
		for _, d := range m.damaged(bad) {
			lines = append(lines, d.File+" ("+d.Error+")")
			fixes = append(fixes, d.Hint())
		}
		r.add("state", CheckFail, fmt.Sprintf("%d damaged records (not trusted): %s", len(bad), strings.Join(lines, "; ")), strings.Join(fixes, "; "))
	}
	switch {
	case len(tombs) > 0 || len(notLive) > 0:
		detail := fmt.Sprintf("%d records; %d interrupted detaches", len(recs), len(tombs))
		if len(notLive) > 0 {
			detail += "; not live: " + strings.Join(notLive, "; ")
		}
		r.add("records", CheckWarn, detail, "attach again what should be wired; `nswire gc` clears the rest")
	case len(bad) == 0:
		r.add("state", CheckOK, fmt.Sprintf("%d records in %s, all live", len(recs), m.cfg.StateDir), "")
	}
}

// DoctorTarget checks one attached target end to end: its record, its
// namespace, both ends of the veth, the bridge port, address and default
// route inside, the gateway's answer to ARP, the programs installed as
// recorded, and the counters moving (the ARP exchange itself crosses them).
// Each phase adds its checks; a phase whose failure leaves nothing for the
// next to look at ends the report.
func (m *Manager) DoctorTarget(ctx context.Context, ref string) *DoctorReport {
	d := &targetDoctor{m: m, r: &DoctorReport{Target: ref, OK: true, Checks: []Check{}}}
	defer d.close()
	for _, phase := range []func(context.Context, string) bool{
		d.record, d.namespace, d.hostVeth, d.containerIf, d.addressAndRoute, d.programs, d.gateway, d.counters,
	} {
		if !phase(ctx, ref) {
			break
		}
	}
	return d.r
}

// targetDoctor is what the phases of DoctorTarget learn and hand on.
type targetDoctor struct {
	m      *Manager
	r      *DoctorReport
	rec    *state.Record
	fix    string
	ns     netns.NsHandle
	nsh    *netlink.Handle
	host   netlink.Link
	peer   netlink.Link
	dp     *datapath.Datapath // maps only
	before datapath.Counters
}

func (d *targetDoctor) close() {
	if d.nsh != nil {
		d.nsh.Close()
	}
	if d.ns.IsOpen() {
		d.ns.Close()
	}
	if d.dp != nil {
		d.dp.Close()
	}
}

func (d *targetDoctor) record(ctx context.Context, ref string) bool {
	if err := CheckCapabilities(); err != nil {
		d.r.add("privileges", CheckFail, err.Error(), "run nswire doctor as root")
		return false
	}
	rec, err := d.m.FindRecord(ctx, ref)
	if err == nil && rec == nil {
		if _, bad, lerr := d.m.store.List(); lerr == nil {
			if dr, _ := d.m.findDamaged(ctx, ref, bad); dr != nil {
				d.r.add("record", CheckFail, fmt.Sprintf("the record of %s is damaged: %s (%s)", ref, dr.File, dr.Error), dr.Hint())
				return false
			}
		}
	}
	if err != nil || rec == nil {
		detail := ref + " is not attached"
		if err != nil {
			detail = err.Error()
		}
		d.r.add("record", CheckFail, detail, "`nswire ls` lists attached targets; `nswire attach "+ref+"` wires it")
		return false
	}
	d.rec = rec
	d.fix = "`nswire detach " + rec.DisplayName() + "` and attach again"
	d.r.add("record", CheckOK, fmt.Sprintf("%s: %s %s on %s via %s, mode %s", rec.DisplayName(), rec.IfName, rec.Address, rec.Bridge, rec.HostIf, rec.Mode), "")
	return true
}

func (d *targetDoctor) namespace(ctx context.Context, _ string) bool {
	rec := d.rec
	if st := d.m.newTruth(ctx, []*state.Record{rec}).status(rec); st.State != StateLive && st.State != StateBroken {
		d.r.add("namespace", CheckFail, fmt.Sprintf("the record is %s: %s", st.State, st.Reason), "`nswire attach "+rec.DisplayName()+"` wires a running container again; `nswire detach "+rec.DisplayName()+"` or `nswire gc` removes what is left")
		return false
	}
	ns, err := netops.OpenNetnsPath(rec.NetnsPath)
	if err != nil {
		d.r.add("namespace", CheckFail, err.Error(), "`nswire gc` removes what is left of it")
		return false
	}
	d.ns = ns
	d.r.add("namespace", CheckOK, fmt.Sprintf("%s (inode %d) is the recorded namespace", rec.NetnsPath, rec.NetnsInode), "")
	return true
}

func (d *targetDoctor) hostVeth(context.Context, string) bool {
	rec := d.rec
	host, err := netops.LinkByName(d.m.host, rec.HostIf)
	switch {
	case err != nil:
		d.r.add("host-veth", CheckFail, rec.HostIf+" is gone", d.fix)
		return false
	case host.Attrs().Index != rec.HostIfindex:
		d.r.add("host-veth", CheckFail, fmt.Sprintf("%s has ifindex %d, recorded %d", rec.HostIf, host.Attrs().Index, rec.HostIfindex), d.fix)
		return false
	case !netops.IsUp(host) || host.Attrs().OperState != netlink.OperUp:
		d.r.add("host-veth", CheckFail, fmt.Sprintf("%s is not up (operstate %s)", rec.HostIf, host.Attrs().OperState), "ip link set "+rec.HostIf+" up")
	default:
		d.r.add("host-veth", CheckOK, rec.HostIf+" is up", "")
	}
	d.host = host
	if !rec.Observed {
		br, err := netops.LinkByName(d.m.host, rec.Bridge)
		if err != nil || host.Attrs().MasterIndex != br.Attrs().Index {
			d.r.add("bridge-port", CheckFail, rec.HostIf+" is not a port of "+rec.Bridge, "ip link set "+rec.HostIf+" master "+rec.Bridge)
		} else {
			d.r.add("bridge-port", CheckOK, rec.HostIf+" is a port of "+rec.Bridge, "")
		}
	}
	return true
}

func (d *targetDoctor) containerIf(context.Context, string) bool {
	rec := d.rec
	nsh, err := netops.HandleAt(d.ns)
	if err != nil {
		d.r.add("container-if", CheckFail, err.Error(), "")
		return false
	}
	d.nsh = nsh
	peer, err := netops.LinkByName(nsh, rec.IfName)
	if err != nil {
		d.r.add("container-if", CheckFail, rec.IfName+" is missing in the namespace", d.fix)
		return false
	}
	d.peer = peer
	switch {
	case peer.Attrs().ParentIndex != rec.HostIfindex:
		d.r.add("container-if", CheckFail, fmt.Sprintf("%s is not the peer of %s", rec.IfName, rec.HostIf), d.fix)
	case !netops.IsUp(peer):
		d.r.add("container-if", CheckFail, rec.IfName+" is down", "nsenter --net="+rec.NetnsPath+" ip link set "+rec.IfName+" up")
	case !rec.Observed && !bytes.Equal(peer.Attrs().HardwareAddr, rec.MAC):
		d.r.add("container-if", CheckFail, fmt.Sprintf("%s has MAC %s, recorded %s: the spoof guard drops its frames", rec.IfName, peer.Attrs().HardwareAddr, rec.MAC), d.fix)
	default:
		d.r.add("container-if", CheckOK, fmt.Sprintf("%s is up, peer of %s, MAC %s", rec.IfName, rec.HostIf, peer.Attrs().HardwareAddr), "")
	}
	return true
}

func (d *targetDoctor) addressAndRoute(context.Context, string) bool {
	rec := d.rec
	if rec.Observed {
		return true
	}
	addrs, _ := netops.Addrs(d.nsh, d.peer, netlink.FAMILY_V4)
	found := false
	for _, a := range addrs {
		if ones, _ := a.Mask.Size(); a.IP.Equal(rec.IPv4()) && ones == rec.Address.Bits() {
			found = true
		}
	}
	if found {
		d.r.add("address", CheckOK, rec.Address.String()+" on "+rec.IfName, "")
	} else {
		d.r.add("address", CheckFail, rec.Address.String()+" is missing on "+rec.IfName, "nsenter --net="+rec.NetnsPath+" ip addr add "+rec.Address.String()+" dev "+rec.IfName)
	}
	gw, idx, err := netops.DefaultRoute(d.nsh, netlink.FAMILY_V4)
	switch {
	case err != nil:
		d.r.add("route", CheckFail, err.Error(), "")
	case gw == nil || !gw.Equal(net.IP(rec.Gateway.AsSlice())) || idx != d.peer.Attrs().Index:
		d.r.add("route", CheckFail, fmt.Sprintf("default route is via %v (ifindex %d), want %s dev %s", gw, idx, rec.Gateway, rec.IfName), "nsenter --net="+rec.NetnsPath+" ip route replace default via "+rec.Gateway.String()+" dev "+rec.IfName)
	default:
		d.r.add("route", CheckOK, "default via "+rec.Gateway.String()+" dev "+rec.IfName, "")
	}
	return true
}

// programs checks the programs as recorded, and reads the counters before
// the ARP exchange of the gateway phase.
func (d *targetDoctor) programs(context.Context, string) bool {
	rec, pinDir := d.rec, d.m.cfg.PinDir
	want := rec.Hook.Installed()
	if !want && !pinned(pinDir) {
		return true
	}
	dp, err := datapath.OpenDatapathMaps(pinDir)
	if err != nil {
		d.r.add("programs", CheckFail, err.Error(), "")
		return true
	}
	d.dp = dp
	hook, installed := dp.Installed(rec.HostIf)
	switch {
	case !want && installed:
		d.r.add("programs", CheckFail, fmt.Sprintf("mode %s, but programs are installed (%s)", rec.Mode, hook), d.fix)
	case want && !installed:
		d.r.add("programs", CheckFail, fmt.Sprintf("mode %s recorded %s programs, none are installed", rec.Mode, rec.Hook), d.fix)
	case want && hook != rec.Hook:
		d.r.add("programs", CheckFail, fmt.Sprintf("installed with %s, recorded %s", hook, rec.Hook), d.fix)
	case want:
		if _, err := dp.Objects().Endpoint(rec.HostIfindex); err != nil {
			d.r.add("programs", CheckFail, "programs installed, but the endpoint map has no entry for "+rec.HostIf, d.fix)
		} else {
			d.r.add("programs", CheckOK, fmt.Sprintf("from_container and to_container installed with %s, endpoint slot %d", hook, rec.Slot), "")
		}
	default:
		d.r.add("programs", CheckOK, "mode off: no programs, as recorded", "")
	}
	if c, err := dp.ReadCounters(); err == nil {
		d.before = c[rec.Slot]
	}
	return true
}

func (d *targetDoctor) gateway(context.Context, string) bool {
	rec := d.rec
	if rec.Observed {
		return true
	}
	gw := net.IP(rec.Gateway.AsSlice())
	gwMAC, err := arpResolve(d.ns, d.peer.Attrs().Index, rec.MAC, rec.IPv4(), gw, 200*time.Millisecond)
	switch {
	case err != nil:
		d.r.add("gateway", CheckFail, "ARP for "+gw.String()+": "+err.Error(), "")
	case gwMAC == nil:
		d.r.add("gateway", CheckFail, gw.String()+" did not answer ARP within 200 ms", "check that "+rec.Bridge+" has address "+gw.String()+" and that nothing filters ARP on it")
	default:
		d.r.add("gateway", CheckOK, fmt.Sprintf("%s answered ARP (MAC %s)", gw, gwMAC), "")
	}
	return true
}

// counters checks that the counters moved with the gateway phase's ARP
// exchange.
func (d *targetDoctor) counters(context.Context, string) bool {
	rec := d.rec
	if !rec.Hook.Installed() || d.dp == nil || rec.Observed {
		return true
	}
	total := func(c datapath.Counters) uint64 {
		a, _ := c.Total(bpf.DirRX)
		b, _ := c.Total(bpf.DirTX)
		return a + b
	}
	moved := false
	deadline := time.Now().Add(200 * time.Millisecond)
	for !moved && time.Now().Before(deadline) {
		if c, err := d.dp.ReadCounters(); err == nil {
			moved = total(c[rec.Slot]) > total(d.before)
		}
		if !moved {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if moved {
		d.r.add("counters", CheckOK, "counters moved with doctor's own ARP exchange", "")
	} else {
		d.r.add("counters", CheckFail, "counters did not move while doctor's ARP exchange crossed "+rec.HostIf, d.fix)
	}
	return true
}
