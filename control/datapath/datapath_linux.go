package datapath

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/nswire/nswire/bpf"
	"github.com/nswire/nswire/netops"
)

// Counters are one endpoint's counters, summed over CPUs.
type Counters = bpf.Counters

// Legacy tc filter identity: the same on ingress and egress.
const (
	tcFilterPrio   = 1
	tcFilterHandle = 1
	tcFilterName   = "nswire"
)

func tcFilter(ifindex int, parent uint32) netops.BPFFilter {
	return netops.BPFFilter{Ifindex: ifindex, Parent: parent, Priority: tcFilterPrio, Handle: tcFilterHandle, Name: tcFilterName}
}

// EndpointSpec describes one container endpoint: its host veth, the
// container's MAC and addresses, and its counter slot.
type EndpointSpec struct {
	HostIfName  string
	HostIfindex int
	MAC         net.HardwareAddr
	IP4         net.IP // may be nil
	IP6         net.IP // may be nil
	Guard       bool   // drop frames with a source MAC/IP that is not the container's
	NoFlows     bool   // count the endpoint's traffic, but keep no per-flow entries
	Slot        uint32 // < bpf.MaxEndpoints, unique per endpoint
	// KeepCounters attaches a new device to the slot without zeroing its
	// counters: the same container wired again after a restart.
	KeepCounters bool
}

// Datapath manages the eBPF datapath: the loaded programs, the pinned maps,
// and the programs' attachments to host veths. All interface names and
// indexes are in the calling thread's network namespace.
type Datapath struct {
	pinDir string
	objs   *bpf.Objects
}

// OpenDatapath mounts bpffs if needed and opens the datapath pinned under
// pinDir (bpf.DefaultPinDir normally): maps and programs pinned there by an
// earlier process are adopted (no program is loaded or verified), missing
// ones are loaded and pinned (see bpf.Load).
func OpenDatapath(pinDir string) (*Datapath, error) {
	if err := bpf.EnsureBPFFS(pinDir); err != nil {
		return nil, fmt.Errorf("open datapath: %w", err)
	}
	objs, err := bpf.Load(pinDir)
	if err != nil {
		return nil, fmt.Errorf("open datapath: %w", err)
	}
	return &Datapath{pinDir: pinDir, objs: objs}, nil
}

// OpenDatapathMaps opens only the maps pinned under pinDir, for read-only
// use (ReadCounters, Objects().AllEndpoints): it loads no program and mounts
// nothing. Install and SetMode on the result fail; Remove works. If nothing
// is pinned there the error reads "no datapath pinned at <pinDir>: nothing
// is attached" and wraps bpf.ErrNotPinned (and os.ErrNotExist).
func OpenDatapathMaps(pinDir string) (*Datapath, error) {
	objs, err := bpf.OpenMaps(pinDir)
	if err != nil {
		return nil, err
	}
	return &Datapath{pinDir: pinDir, objs: objs}, nil
}

// errReadOnly is returned by Install and SetMode on a Datapath from
// OpenDatapathMaps.
var errReadOnly = errors.New("datapath opened read-only (maps only): use OpenDatapath to install programs")

func (d *Datapath) readOnly() bool { return d.objs.FromContainer == nil || d.objs.ToContainer == nil }

// Close releases the file descriptors. Pinned maps and links, and legacy tc
// filters, stay: the datapath keeps working after the process exits.
func (d *Datapath) Close() error {
	return d.objs.Close()
}

// Objects gives access to the loaded programs and maps.
func (d *Datapath) Objects() *bpf.Objects { return d.objs }

func (d *Datapath) linkDir(ifName string) string {
	return filepath.Join(d.pinDir, "links", ifName)
}

func (d *Datapath) linkPin(ifName, dir string) string {
	return filepath.Join(d.linkDir(ifName), dir)
}

// bpfMode is the map value of a mode that runs programs.
func bpfMode(m Mode) (uint8, error) {
	switch m {
	case Off:
		return bpf.ModeOff, nil
	case Observe:
		return bpf.ModeObserve, nil
	case Fastpath:
		return bpf.ModeFastpath, nil
	}
	return 0, fmt.Errorf("datapath mode %q is not one of %s", m, joinNames(Modes))
}

func checkHook(h Hook) error {
	switch h {
	case HookAuto, HookTCX, HookTC:
		return nil
	}
	return fmt.Errorf("hook %q is not one of %s", h, joinNames(Hooks))
}

// Install makes ep's host veth run the datapath in mode.
//
// Mode off attaches nothing and writes nothing; if programs were attached
// they are removed (as Remove). Otherwise Install writes the endpoint record
// (zeroing the slot's counters when the endpoint is new), then attaches
// from_container on ingress and to_container on egress. It is idempotent: on
// an already attached device the record is updated in place and the
// attachments are updated to the current programs without a gap.
//
// Hook "auto" keeps an existing installation's kind; otherwise it uses
// AutoHook's choice, and legacy tc where tcx is unsupported. An explicit "tcx" or
// "tc" on a device attached the other way switches it (never both at once).
// Returns the hook used ("tcx" or "tc"; "" for mode off).
func (d *Datapath) Install(ep EndpointSpec, mode Mode, am Hook) (used Hook, err error) {
	m, err := bpfMode(mode)
	if err != nil {
		return HookNone, err
	}
	if err := checkHook(am); err != nil {
		return HookNone, err
	}
	if m == bpf.ModeOff {
		return HookNone, d.Remove(ep.HostIfName, ep.HostIfindex, ep.IP4, ep.IP6)
	}
	if d.readOnly() {
		return HookNone, fmt.Errorf("install datapath on %s: %w", ep.HostIfName, errReadOnly)
	}
	if err := d.checkDevice(ep.HostIfName, ep.HostIfindex); err != nil {
		return HookNone, fmt.Errorf("install datapath: %w", err)
	}
	var flags uint8
	if ep.Guard {
		flags |= bpf.FlagGuard
	}
	if ep.NoFlows {
		flags |= bpf.FlagNoFlows
	}
	rec, err := bpf.NewEndpoint(ep.HostIfindex, ep.Slot, ep.MAC, ep.IP4, ep.IP6, m, flags)
	if err != nil {
		return HookNone, fmt.Errorf("install datapath on %s: %w", ep.HostIfName, err)
	}

	old, oldErr := d.objs.Endpoint(ep.HostIfindex)
	isNew := oldErr != nil || old.Slot != ep.Slot
	if isNew && !ep.KeepCounters {
		if err := d.objs.ZeroCounters(ep.Slot); err != nil {
			return HookNone, fmt.Errorf("install datapath on %s: %w", ep.HostIfName, err)
		}
	}
	if err := d.objs.PutEndpoint(rec); err != nil {
		return HookNone, fmt.Errorf("install datapath on %s: %w", ep.HostIfName, err)
	}
	defer func() {
		if err != nil && isNew {
			d.objs.DeleteEndpoint(ep.HostIfindex, ep.IP4, ep.IP6)
		}
	}()

	cur, attached := d.Installed(ep.HostIfName)
	want := am
	if want == HookAuto {
		if attached {
			want = cur
		} else {
			want, _ = AutoHook()
		}
	}
	if attached && cur != want {
		if err := d.removePrograms(ep.HostIfName, ep.HostIfindex); err != nil {
			return HookNone, fmt.Errorf("install datapath on %s: switch from %s to %s: %w", ep.HostIfName, cur, want, err)
		}
	}
	if want == HookTCX {
		err = d.installTCX(ep.HostIfName, ep.HostIfindex)
		if err == nil {
			return HookTCX, nil
		}
		if am != HookAuto || !errors.Is(err, link.ErrNotSupported) {
			return HookNone, fmt.Errorf("install datapath on %s with tcx: %w", ep.HostIfName, err)
		}
		want = HookTC
	}
	if err = d.installTC(ep.HostIfindex); err != nil {
		return HookNone, fmt.Errorf("install datapath on %s with tc: %w", ep.HostIfName, err)
	}
	return HookTC, nil
}

// checkDevice makes sure ifindex is the device named ifName, so a stale
// record never attaches to a device that reused the index.
func (d *Datapath) checkDevice(ifName string, ifindex int) error {
	if ifName == "" || ifindex <= 0 {
		return fmt.Errorf("endpoint needs a host interface name and index (got %q, %d)", ifName, ifindex)
	}
	l, err := netops.LinkByIndex(netops.ThreadHandle(), ifindex)
	if err != nil {
		return fmt.Errorf("host interface %s (index %d): %w", ifName, ifindex, err)
	}
	if l.Attrs().Name != ifName {
		return fmt.Errorf("interface index %d is %s, not %s", ifindex, l.Attrs().Name, ifName)
	}
	return nil
}

// installTCX attaches (or updates in place) both programs with tcx links
// pinned under links/<ifName>/.
func (d *Datapath) installTCX(ifName string, ifindex int) error {
	if err := os.MkdirAll(d.linkDir(ifName), 0o700); err != nil {
		return fmt.Errorf("create link pin dir: %w", err)
	}
	for _, a := range []struct {
		dir  string
		prog *ebpf.Program
		typ  ebpf.AttachType
	}{
		{"ingress", d.objs.FromContainer, ebpf.AttachTCXIngress},
		{"egress", d.objs.ToContainer, ebpf.AttachTCXEgress},
	} {
		pin := d.linkPin(ifName, a.dir)
		if updated, err := updatePinnedTCX(pin, ifindex, a.prog); err != nil {
			return err
		} else if updated {
			continue
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: a.prog, Attach: a.typ})
		if err != nil {
			if a.dir == "egress" {
				unpinLink(d.linkPin(ifName, "ingress"))
			}
			os.Remove(d.linkDir(ifName))
			return fmt.Errorf("%s: %w", a.dir, err)
		}
		err = l.Pin(pin)
		l.Close()
		if err != nil {
			return fmt.Errorf("pin %s link: %w", a.dir, err)
		}
	}
	return nil
}

// updatePinnedTCX replaces the program of the tcx link pinned at pin, if
// there is one and it is still attached to ifindex. A stale pin (device gone
// or index reused) is removed and reported as not updated.
func updatePinnedTCX(pin string, ifindex int, prog *ebpf.Program) (bool, error) {
	l, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		os.Remove(pin)
		return false, nil
	}
	defer l.Close()
	info, err := l.Info()
	if err == nil {
		if tcx := info.TCX(); tcx != nil && int(tcx.Ifindex) == ifindex {
			if err := l.Update(prog); err != nil {
				return false, fmt.Errorf("update pinned link %s: %w", pin, err)
			}
			return true, nil
		}
	}
	if err := l.Unpin(); err != nil {
		return false, fmt.Errorf("remove stale link pin %s: %w", pin, err)
	}
	return false, nil
}

func unpinLink(pin string) error {
	l, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		if rmErr := os.Remove(pin); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			return fmt.Errorf("remove link pin %s: %w", pin, err)
		}
		return nil
	}
	defer l.Close()
	// Detach first so the device is clean even if some other process
	// still holds the link open.
	if err := l.Detach(); err != nil && !errors.Is(err, unix.ENOLINK) && !errors.Is(err, link.ErrNotSupported) {
		return fmt.Errorf("detach link %s: %w", pin, err)
	}
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin link %s: %w", pin, err)
	}
	return nil
}

// attachTC attaches both programs as cls_bpf direct-action filters (prio 1,
// handle 1, named nswire) on a clsact qdisc; FilterReplace swaps the program
// of an existing filter in place.
func (d *Datapath) installTC(ifindex int) error {
	if err := netops.AddClsact(ifindex); err != nil {
		return err
	}
	for _, f := range []struct {
		parent uint32
		prog   *ebpf.Program
	}{{netops.TCIngress, d.objs.FromContainer}, {netops.TCEgress, d.objs.ToContainer}} {
		if err := netops.ReplaceBPFFilter(tcFilter(ifindex, f.parent), f.prog.FD()); err != nil {
			d.removeTC(ifindex)
			return err
		}
	}
	return nil
}

// tcInstalled reports whether ifindex carries nswire's legacy filters.
func tcInstalled(ifindex int) bool {
	for _, parent := range []uint32{netops.TCIngress, netops.TCEgress} {
		if ours, _, _, err := netops.FilterCount(tcFilter(ifindex, parent)); err == nil && ours > 0 {
			return true
		}
	}
	return false
}

// removeTC removes nswire's legacy filters from ifindex, and the clsact
// qdisc when no other filter is left on it. Returns nil if the device or
// the filters are gone.
func (d *Datapath) removeTC(ifindex int) error {
	var errs []error
	others := 0
	for _, parent := range []uint32{netops.TCIngress, netops.TCEgress} {
		f := tcFilter(ifindex, parent)
		ours, n, _, err := netops.FilterCount(f)
		if netops.IsNotFound(err) {
			return nil // the device is gone, and its filters with it
		}
		if err != nil {
			errs = append(errs, err)
			others++
			continue
		}
		others += n
		if ours > 0 {
			errs = append(errs, netops.DelBPFFilter(f))
		}
	}
	if others == 0 {
		errs = append(errs, netops.DelClsact(ifindex))
	}
	return errors.Join(errs...)
}

// removePrograms removes tcx links (pins) and legacy filters of a device,
// leaving the maps alone.
func (d *Datapath) removePrograms(ifName string, ifindex int) error {
	var errs []error
	if ifName != "" {
		for _, dir := range []string{"ingress", "egress"} {
			errs = append(errs, unpinLink(d.linkPin(ifName, dir)))
		}
		if err := os.Remove(d.linkDir(ifName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove link pin dir: %w", err))
		}
	}
	if ifindex > 0 {
		errs = append(errs, d.removeTC(ifindex))
	}
	return errors.Join(errs...)
}

// SetMode switches an endpoint between off, observe and fastpath at run
// time. Between observe and fastpath only the endpoint record changes (the
// attached programs read the mode per packet), so there is no gap. Going to
// off detaches the programs and removes the record; coming from off
// installs (as Install).
func (d *Datapath) SetMode(ep EndpointSpec, mode Mode, am Hook) error {
	m, err := bpfMode(mode)
	if err != nil {
		return err
	}
	if m == bpf.ModeOff {
		return d.Remove(ep.HostIfName, ep.HostIfindex, ep.IP4, ep.IP6)
	}
	if d.readOnly() {
		return fmt.Errorf("set mode of %s: %w", ep.HostIfName, errReadOnly)
	}
	if _, attached := d.Installed(ep.HostIfName); attached {
		if _, err := d.objs.Endpoint(ep.HostIfindex); err == nil {
			if err := d.objs.SetMode(ep.HostIfindex, m); err != nil {
				return fmt.Errorf("set mode of %s: %w", ep.HostIfName, err)
			}
			return nil
		}
	}
	_, err = d.Install(ep, mode, am)
	return err
}

// Detach removes a host veth's tcx links (and their pins), its legacy tc
// filters, and its endpoint and address entries. ip4/ip6 may be nil; they
// help remove address entries when the record is already gone. Returns nil
// if nothing is there (device, pins or entries already gone).
func (d *Datapath) Remove(hostIfName string, hostIfindex int, ip4, ip6 net.IP) error {
	var errs []error
	// Only touch tc filters on ifindex if it is still the named device.
	tcIndex := hostIfindex
	if hostIfindex > 0 && hostIfName != "" {
		if l, err := netops.LinkByIndex(netops.ThreadHandle(), hostIfindex); err != nil || l.Attrs().Name != hostIfName {
			tcIndex = 0
		}
	}
	errs = append(errs, d.removePrograms(hostIfName, tcIndex))
	if hostIfindex > 0 {
		errs = append(errs, d.objs.DeleteEndpoint(hostIfindex, ip4, ip6))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detach datapath from %s: %w", hostIfName, err)
	}
	return nil
}

// ReadCounters returns the counters of every endpoint with a record, by
// slot, summed over CPUs (two batch syscalls).
func (d *Datapath) ReadCounters() (map[uint32]Counters, error) {
	return d.objs.ReadAllCounters()
}

// Installed reports how hostIfName's programs are hooked in: "tcx" when its
// link pins exist, "tc" when the device carries nswire's legacy filters.
func (d *Datapath) Installed(hostIfName string) (Hook, bool) {
	if hostIfName == "" {
		return HookNone, false
	}
	for _, dir := range []string{"ingress", "egress"} {
		if _, err := os.Stat(d.linkPin(hostIfName, dir)); err == nil {
			return HookTCX, true
		}
	}
	if l, err := netops.LinkByName(netops.ThreadHandle(), hostIfName); err == nil && tcInstalled(l.Attrs().Index) {
		return HookTC, true
	}
	return HookNone, false
}

// LinkPinDir returns where the tcx links of hostIfName are pinned.
func (d *Datapath) LinkPinDir(hostIfName string) string { return d.linkDir(hostIfName) }

// TCXSupported probes whether the kernel can attach tcx links (Linux ≥ 6.6).
// A non-nil error means the probe itself could not run (e.g. no privilege).
func TCXSupported() (bool, error) {
	prog, err := probeProgram()
	if err != nil {
		return false, err
	}
	defer prog.Close()
	// No device has this index: a kernel with tcx answers ENODEV.
	_, err = link.AttachTCX(link.TCXOptions{Interface: math.MaxUint32, Program: prog, Attach: ebpf.AttachTCXIngress})
	if errors.Is(err, link.ErrNotSupported) {
		return false, nil
	}
	return true, nil
}

// NetkitSupported probes whether the kernel has netkit devices' link
// attachment (Linux ≥ 6.7 with CONFIG_NETKIT); nswire's netkit datapath is
// not implemented yet.
func NetkitSupported() (bool, error) {
	prog, err := probeProgram()
	if err != nil {
		return false, err
	}
	defer prog.Close()
	_, err = link.AttachNetkit(link.NetkitOptions{Interface: math.MaxUint32, Program: prog, Attach: ebpf.AttachNetkitPrimary})
	if errors.Is(err, link.ErrNotSupported) {
		return false, nil
	}
	return true, nil
}

func probeProgram() (*ebpf.Program, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		License:      "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
	})
	if err != nil {
		return nil, fmt.Errorf("load probe program: %w", err)
	}
	return prog, nil
}
