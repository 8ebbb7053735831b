//go:build linux

package bpf

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// ErrNotPinned is wrapped by OpenMaps when pinDir holds no datapath maps.
// It wraps os.ErrNotExist.
var ErrNotPinned = fmt.Errorf("nothing is attached: %w", os.ErrNotExist)

// progPinPrefix starts the name of a directory holding one object version's
// pinned programs: <pinDir>/progs-<ObjectHash()>/{from_container,to_container}.
const progPinPrefix = "progs-"

// progTmpPrefix starts the name of a directory a loader fills with program
// pins before it renames it into place (bpffs allows no dot in names).
const progTmpPrefix = "tmp-progs-"

var objectHash = sync.OnceValue(func() string {
	sum := sha256.Sum256(_DatapathBytes)
	return hex.EncodeToString(sum[:])[:12]
})

// ObjectHash identifies the embedded eBPF object: the first 12 hex digits
// of the SHA-256 of its bytes.
func ObjectHash() string { return objectHash() }

// ProgPinDir returns where Load pins this version's programs under pinDir.
func ProgPinDir(pinDir string) string {
	return filepath.Join(pinDir, progPinPrefix+ObjectHash())
}

// mapSpecs are the properties of the pinned maps that MapSpec.Compatible
// checks, so adopting pins needs no parse of the ELF object (TestMapSpecs
// keeps them equal to the object's).
var mapSpecs = map[string]*ebpf.MapSpec{
	DatapathMapEndpoints: {
		Name: DatapathMapEndpoints, Type: ebpf.Hash, MaxEntries: MaxEndpoints,
		KeySize: 4, ValueSize: uint32(unsafe.Sizeof(Endpoint{})), Pinning: ebpf.PinByName,
	},
	DatapathMapEndpointsByIp: {
		Name: DatapathMapEndpointsByIp, Type: ebpf.Hash, MaxEntries: 2 * MaxEndpoints,
		KeySize: uint32(unsafe.Sizeof(IPKey{})), ValueSize: 4, Pinning: ebpf.PinByName,
	},
	DatapathMapEpCounters: {
		Name: DatapathMapEpCounters, Type: ebpf.PerCPUArray, MaxEntries: MaxEndpoints,
		KeySize: 4, ValueSize: uint32(unsafe.Sizeof(DatapathCounters{})), Pinning: ebpf.PinByName,
	},
	DatapathMapEpCountersExt: {
		Name: DatapathMapEpCountersExt, Type: ebpf.PerCPUArray, MaxEntries: MaxEndpoints,
		KeySize: 4, ValueSize: uint32(unsafe.Sizeof(DatapathCountersExt{})), Pinning: ebpf.PinByName,
	},
	DatapathMapFlows4: {
		Name: DatapathMapFlows4, Type: ebpf.LRUHash, MaxEntries: MaxFlows,
		KeySize: uint32(unsafe.Sizeof(FlowKey4{})), ValueSize: uint32(unsafe.Sizeof(FlowStats{})), Pinning: ebpf.PinByName,
	},
	DatapathMapFlows6: {
		Name: DatapathMapFlows6, Type: ebpf.LRUHash, MaxEntries: MaxFlows,
		KeySize: uint32(unsafe.Sizeof(FlowKey6{})), ValueSize: uint32(unsafe.Sizeof(FlowStats{})), Pinning: ebpf.PinByName,
	},
	DatapathMapDropEvents: {
		Name: DatapathMapDropEvents, Type: ebpf.RingBuf, MaxEntries: DropEventsRingSize, Pinning: ebpf.PinByName,
	},
	DatapathMapDpStats: {
		Name: DatapathMapDpStats, Type: ebpf.PerCPUArray, MaxEntries: 1,
		KeySize: 4, ValueSize: uint32(unsafe.Sizeof(DatapathStats{})), Pinning: ebpf.PinByName,
	},
	DatapathMapDpConfig: {
		Name: DatapathMapDpConfig, Type: ebpf.Array, MaxEntries: 1,
		KeySize: 4, ValueSize: uint32(unsafe.Sizeof(DatapathConfig{})), Pinning: ebpf.PinByName,
	},
}

// mapField is one datapath map and where DatapathMaps holds it. Core maps
// are pinned by every nswire version; the others were added later and are
// optional to OpenMaps.
type mapField struct {
	name string
	dst  **ebpf.Map
	core bool
}

func (m *DatapathMaps) fields() []mapField {
	return []mapField{
		{DatapathMapEndpoints, &m.Endpoints, true},
		{DatapathMapEndpointsByIp, &m.EndpointsByIp, true},
		{DatapathMapEpCounters, &m.EpCounters, true},
		{DatapathMapEpCountersExt, &m.EpCountersExt, false},
		{DatapathMapFlows4, &m.Flows4, false},
		{DatapathMapFlows6, &m.Flows6, false},
		{DatapathMapDropEvents, &m.DropEvents, false},
		{DatapathMapDpStats, &m.DpStats, false},
		{DatapathMapDpConfig, &m.DpConfig, false},
	}
}

// all returns the maps that are open.
func (m *DatapathMaps) all() []*ebpf.Map {
	var out []*ebpf.Map
	for _, f := range m.fields() {
		if *f.dst != nil {
			out = append(out, *f.dst)
		}
	}
	return out
}

func incompatibleErr(pinDir string, err error) error {
	return fmt.Errorf("load datapath: maps pinned in %s were made by another version of nswire; "+
		"detach all containers and run `nswire gc`, or remove %s: %w", pinDir, pinDir, err)
}

// openPinnedMaps opens the maps pinned under pinDir and checks them against
// mapSpecs. With optional, a missing non-core map is left nil (pins of an
// older nswire); otherwise any missing pin is an error wrapping
// os.ErrNotExist, and nothing is held open after an error.
func openPinnedMaps(pinDir string, optional bool) (DatapathMaps, error) {
	var m DatapathMaps
	for _, x := range m.fields() {
		mp, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, x.name), nil)
		if err != nil && optional && !x.core && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			m.Close()
			return DatapathMaps{}, fmt.Errorf("open pinned map %s: %w", x.name, err)
		}
		if err := mapSpecs[x.name].Compatible(mp); err != nil {
			mp.Close()
			m.Close()
			return DatapathMaps{}, fmt.Errorf("use pinned map %s: %w", x.name, err)
		}
		*x.dst = mp
	}
	return m, nil
}

// OpenMaps opens only the maps pinned under pinDir, for readers that need no
// programs (counters, endpoint records, flows, drop events): no object is
// parsed and no program is loaded. The returned Objects has nil programs.
// Maps that an older nswire did not pin (all but MapPinPaths) are nil then,
// and the readers that need them say so. If the maps are not pinned, the
// error says so and wraps ErrNotPinned (and so os.ErrNotExist).
func OpenMaps(pinDir string) (*Objects, error) {
	m, err := openPinnedMaps(pinDir, true)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no datapath pinned at %s: %w", pinDir, ErrNotPinned)
	}
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return nil, incompatibleErr(pinDir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open datapath maps: %w", err)
	}
	o := &Objects{PinDir: pinDir}
	o.DatapathMaps = m
	return o, nil
}

// Load opens the datapath: its maps pinned by name under pinDir and its
// programs pinned under ProgPinDir(pinDir), creating and pinning whatever is
// missing. When everything is pinned already (every process after the
// first), Load parses no ELF and verifies no program: it opens eleven
// pins (nine maps, two programs).
//
// Pinned programs are adopted only if they are tc programs using exactly
// the maps pinned now; otherwise (maps recreated, stale pins) the programs
// are loaded anew and replace the pinned ones. New pins are written to a
// temporary directory that is renamed into place, so concurrent loaders
// never see half a set: the first rename wins and the others adopt it.
//
// Maps pinned by an older nswire are adopted when their layout is this
// version's (endpoints, endpoints_by_ip and ep_counters have kept theirs);
// the maps it did not have are created and pinned next to them.
//
// If the pinned maps do not match this version's map specs, Load fails with
// an error wrapping ebpf.ErrMapIncompatible that names the pin directory.
func Load(pinDir string) (*Objects, error) {
	o := &Objects{PinDir: pinDir}
	var spec *ebpf.CollectionSpec
	for attempt := 0; ; attempt++ {
		m, err := openPinnedMaps(pinDir, false)
		if err == nil {
			o.DatapathMaps = m
			break
		}
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, incompatibleErr(pinDir, err)
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("load datapath: %w", err)
		}
		if spec == nil {
			if spec, err = LoadDatapath(); err != nil {
				return nil, err
			}
		}
		opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pinDir}}
		err = spec.LoadAndAssign(&o.DatapathMaps, opts)
		if err == nil {
			break
		}
		// Another loader pinned a map between our lookup and our pin:
		// start over and adopt it.
		if errors.Is(err, os.ErrExist) && attempt < 10 {
			continue
		}
		return nil, loadErr(pinDir, err)
	}

	progs, err := o.programs(spec)
	if err != nil {
		o.DatapathMaps.Close()
		return nil, err
	}
	o.DatapathPrograms = progs
	return o, nil
}

func loadErr(pinDir string, err error) error {
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return incompatibleErr(pinDir, err)
	}
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("load datapath: %+v", ve)
	}
	return fmt.Errorf("load datapath: %w", err)
}

// programs adopts the pinned programs, or loads, pins and adopts them.
func (o *Objects) programs(spec *ebpf.CollectionSpec) (DatapathPrograms, error) {
	dir := ProgPinDir(o.PinDir)
	var lastErr error
	for range 3 {
		p, err := o.adoptPrograms(dir)
		if err == nil {
			return p, nil
		}
		lastErr = err
		if spec == nil {
			if spec, err = LoadDatapath(); err != nil {
				return DatapathPrograms{}, err
			}
		}
		if err := o.loadAndPinPrograms(spec, dir); err != nil {
			return DatapathPrograms{}, err
		}
	}
	return DatapathPrograms{}, fmt.Errorf("load datapath: adopt pinned programs in %s: %w", dir, lastErr)
}

// adoptPrograms opens the programs pinned in dir and checks that they are
// this datapath's tc programs and use exactly o's maps.
func (o *Objects) adoptPrograms(dir string) (DatapathPrograms, error) {
	var p DatapathPrograms
	mapIDs, err := o.mapIDs()
	if err != nil {
		return p, err
	}
	for _, x := range []struct {
		name string
		dst  **ebpf.Program
	}{
		{DatapathProgFromContainer, &p.FromContainer},
		{DatapathProgToContainer, &p.ToContainer},
	} {
		prog, err := loadPinnedProgram(filepath.Join(dir, x.name), x.name, mapIDs)
		if err != nil {
			p.Close()
			return DatapathPrograms{}, err
		}
		*x.dst = prog
	}
	return p, nil
}

func loadPinnedProgram(path, name string, mapIDs []ebpf.MapID) (*ebpf.Program, error) {
	prog, err := ebpf.LoadPinnedProgram(path, nil)
	if err != nil {
		return nil, err
	}
	if err := checkProgram(prog, name, mapIDs); err != nil {
		prog.Close()
		return nil, fmt.Errorf("pinned program %s: %w", path, err)
	}
	return prog, nil
}

func checkProgram(prog *ebpf.Program, name string, mapIDs []ebpf.MapID) error {
	if prog.Type() != ebpf.SchedCLS {
		return fmt.Errorf("type %s, want %s", prog.Type(), ebpf.SchedCLS)
	}
	info, err := prog.Info()
	if err != nil {
		return err
	}
	if info.Name != name {
		return fmt.Errorf("name %q, want %q", info.Name, name)
	}
	used, ok := info.MapIDs()
	if !ok || len(used) == 0 {
		return errors.New("uses no maps")
	}
	for _, id := range used {
		if !slices.Contains(mapIDs, id) {
			return fmt.Errorf("uses map %d, not one of the pinned maps %v", id, mapIDs)
		}
	}
	return nil
}

func (o *Objects) mapIDs() ([]ebpf.MapID, error) {
	var ids []ebpf.MapID
	for _, m := range o.DatapathMaps.all() {
		info, err := m.Info()
		if err != nil {
			return nil, fmt.Errorf("map info: %w", err)
		}
		id, _ := info.ID()
		ids = append(ids, id)
	}
	return ids, nil
}

// loadAndPinPrograms loads the programs against o's maps and pins them at
// dir: in a temporary directory renamed to dir if dir does not exist, or
// exchanged with dir if dir holds pins that do not fit o's maps. If another
// process pinned fitting programs first, its pins are left alone.
func (o *Objects) loadAndPinPrograms(spec *ebpf.CollectionSpec, dir string) error {
	var p DatapathPrograms
	repl := map[string]*ebpf.Map{}
	for _, f := range o.DatapathMaps.fields() {
		if *f.dst != nil {
			repl[f.name] = *f.dst
		}
	}
	opts := &ebpf.CollectionOptions{MapReplacements: repl}
	if err := spec.LoadAndAssign(&p, opts); err != nil {
		return loadErr(o.PinDir, err)
	}
	defer p.Close()

	tmp, err := os.MkdirTemp(o.PinDir, progTmpPrefix)
	if err != nil {
		return fmt.Errorf("pin programs: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := p.FromContainer.Pin(filepath.Join(tmp, DatapathProgFromContainer)); err != nil {
		return fmt.Errorf("pin programs: %w", err)
	}
	if err := p.ToContainer.Pin(filepath.Join(tmp, DatapathProgToContainer)); err != nil {
		return fmt.Errorf("pin programs: %w", err)
	}
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTEMPTY) {
		return fmt.Errorf("pin programs: rename %s to %s: %w", tmp, dir, err)
	}
	// dir exists: another loader may just have won the race.
	if q, err := o.adoptPrograms(dir); err == nil {
		q.Close()
		return nil
	}
	// Stale: swap ours in; the deferred RemoveAll removes the old pins.
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE); err != nil {
		return fmt.Errorf("pin programs: replace %s: %w", dir, err)
	}
	return nil
}

// Close releases the file descriptors. Pins stay.
func (o *Objects) Close() error {
	return o.DatapathObjects.Close()
}

// Unpin removes the pinned maps and this version's pinned programs
// (ProgPinDir). Attached programs keep running, with these maps, until
// detached. Program pins of other versions are left to GCPrograms.
func (o *Objects) Unpin() error {
	var errs []error
	for _, m := range o.DatapathMaps.all() {
		errs = append(errs, m.Unpin())
	}
	if err := os.RemoveAll(ProgPinDir(o.PinDir)); err != nil {
		errs = append(errs, fmt.Errorf("remove program pins: %w", err))
	}
	return errors.Join(errs...)
}

// GCPrograms removes, under pinDir, the program pin directories of other
// object versions that no tcx link in the kernel runs, and temporary
// directories that loaders left behind more than a minute ago. It returns
// the directories removed (with dryRun, those it would remove, removing
// nothing). Removing a pin never detaches anything (links
// and tc filters hold their own reference); a directory still run by a link
// is kept so that the nswire version that made it can adopt it unchanged.
// Returns nil if pinDir does not exist.
func GCPrograms(pinDir string, dryRun bool) ([]string, error) {
	entries, err := os.ReadDir(pinDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gc programs: %w", err)
	}
	current := progPinPrefix + ObjectHash()
	var inUse map[ebpf.ProgramID]bool
	var removed []string
	var errs []error
	for _, e := range entries {
		name, path := e.Name(), filepath.Join(pinDir, e.Name())
		if !e.IsDir() || name == current {
			continue
		}
		switch {
		case strings.HasPrefix(name, progTmpPrefix):
			info, err := e.Info()
			if err != nil || time.Since(info.ModTime()) < time.Minute {
				continue
			}
		case strings.HasPrefix(name, progPinPrefix):
			if inUse == nil {
				if inUse, err = tcxProgramIDs(); err != nil {
					return removed, fmt.Errorf("gc programs: %w", err)
				}
			}
			if dirInUse(path, inUse) {
				continue
			}
		default:
			continue
		}
		if dryRun {
			removed = append(removed, path)
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			errs = append(errs, fmt.Errorf("gc programs: %w", err))
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}

// tcxProgramIDs returns the IDs of the programs that tcx links run.
func tcxProgramIDs() (map[ebpf.ProgramID]bool, error) {
	ids := make(map[ebpf.ProgramID]bool)
	var it link.Iterator
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil || info.Type != link.TCXType {
			continue
		}
		ids[info.Program] = true
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return ids, nil
}

// dirInUse reports whether a program pinned in dir is in inUse. A pin that
// cannot be opened is not in use.
func dirInUse(dir string, inUse map[ebpf.ProgramID]bool) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		prog, err := ebpf.LoadPinnedProgram(filepath.Join(dir, e.Name()), nil)
		if err != nil {
			continue
		}
		info, err := prog.Info()
		prog.Close()
		if err != nil {
			continue
		}
		if id, ok := info.ID(); ok && inUse[id] {
			return true
		}
	}
	return false
}
