package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nswire/nswire/bpf"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/netops"
)

// findTombstone finds the tombstone of ref, matched as FindRecord matches
// records. Returns (nil, nil) when there is none.
func (m *Manager) findTombstone(ref string) (*state.Record, error) {
	recs, _, err := m.store.Tombstones()
	if err != nil {
		return nil, err
	}
	ref = strings.TrimPrefix(ref, "/")
	var matches []*state.Record
	for _, r := range recs {
		switch {
		case r.ID == ref, r.Name == ref, r.NetnsPath == ref && r.Kind == "netns":
			return r, nil
		case len(ref) >= 4 && r.Kind == "docker" && strings.HasPrefix(r.ID, ref):
			matches = append(matches, r)
		}
	}
	if len(matches) == 1 {
		return matches[0], nil
	}
	return nil, nil
}

// GCItem is one thing gc found that no live target owns.
type GCItem struct {
	Kind    string `json:"kind"` // record, tombstone, corrupt-record, veth, link-pins, map-entry
	Name    string `json:"name"`
	Reason  string `json:"reason"`
	Removed bool   `json:"removed"`
	Error   string `json:"error,omitempty"`
}

// GCReport is what gc found and did.
type GCReport struct {
	DryRun bool     `json:"dryRun"`
	Live   int      `json:"live"` // records of live targets, kept
	Items  []GCItem `json:"items"`
}

// Failed reports whether removing any item failed.
func (r *GCReport) Failed() bool {
	for _, it := range r.Items {
		if it.Error != "" {
			return true
		}
	}
	return false
}

// Staleness says why rec no longer describes a live attachment, or "" if
// it does: the target's namespace must still exist with the recorded inode
// (for a container or PID, /proc/PID/ns/net, so that a dead container or a
// reused PID is never taken for the recorded one) and the host veth must
// still exist with the recorded ifindex.
func (m *Manager) Staleness(rec *state.Record) string {
	var st unix.Stat_t
	if err := unix.Stat(rec.NetnsPath, &st); err != nil {
		if rec.PID != 0 {
			return fmt.Sprintf("its process %d is gone", rec.PID)
		}
		return fmt.Sprintf("its namespace %s is gone", rec.NetnsPath)
	}
	if st.Ino != rec.NetnsInode {
		if rec.PID != 0 {
			return fmt.Sprintf("process %d is now in another namespace (inode %d, recorded %d): the container is gone and its PID reused", rec.PID, st.Ino, rec.NetnsInode)
		}
		return fmt.Sprintf("%s is now another namespace (inode %d, recorded %d)", rec.NetnsPath, st.Ino, rec.NetnsInode)
	}
	if !m.hostLinkMatches(rec) {
		return fmt.Sprintf("its host veth %s (ifindex %d) is gone", rec.HostIf, rec.HostIfindex)
	}
	return ""
}

// GC finds and, unless dryRun, removes what no live target owns: records
// (and with them their address reservations) of containers or namespaces
// that are gone, interrupted detaches, nswire host veths without a record,
// tcx link pins of interfaces without a record, and endpoint map entries of
// no recorded interface. It touches only what nswire creates: veths named
// nsw+8 hex digits whose peer is in another namespace, files in the state
// directory and pins under the pin directory. Corrupt records are reported
// and kept, and so is the veth their file name stands for. The record of a
// stopped container that a running serve wires again when it starts is
// kept too (its address and counter slot stay reserved).
func (m *Manager) GC(ctx context.Context, dryRun bool) (*GCReport, error) {
	lock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	g := &gcRun{
		m: m, ctx: ctx, rep: &GCReport{DryRun: dryRun, Items: []GCItem{}},
		covered: map[string]bool{}, coveredIdx: map[uint32]bool{}, owned: map[string]bool{}, ownedIdx: map[uint32]bool{},
	}
	for _, phase := range []func() error{g.tombstones, g.records, g.veths, g.linkPins, g.mapEntries, g.programs} {
		if err := phase(); err != nil {
			return nil, err
		}
	}
	return g.rep, nil
}

// gcRun is one garbage collection: its report, and what its phases learn of
// which host interfaces are owned (a live record) or covered (a teardown this
// run does), so that later phases leave those alone.
type gcRun struct {
	m          *Manager
	ctx        context.Context
	rep        *GCReport
	covered    map[string]bool // host interfaces whose teardown gc runs
	coveredIdx map[uint32]bool // and their ifindexes
	owned      map[string]bool // host interfaces with a live record
	ownedIdx   map[uint32]bool // and their ifindexes
}

// do records it and, unless this is a dry run, removes it with f.
func (g *gcRun) do(it GCItem, f func() error) {
	if !g.rep.DryRun {
		if err := f(); err != nil {
			it.Error = err.Error()
		} else {
			it.Removed = true
		}
	}
	g.rep.Items = append(g.rep.Items, it)
}

func (g *gcRun) skip(name string) bool { return g.owned[name] || g.covered[name] }

func (g *gcRun) cover(r *state.Record) {
	g.covered[r.HostIf], g.coveredIdx[uint32(r.HostIfindex)] = true, true
}

// tombstones finishes interrupted detaches.
func (g *gcRun) tombstones() error {
	tombs, badTombs, err := g.m.store.Tombstones()
	if err != nil {
		return err
	}
	for _, r := range tombs {
		g.cover(r)
		g.do(GCItem{Kind: "tombstone", Name: r.DisplayName(), Reason: "its detach was interrupted: finishing it"}, func() error { return g.m.finishDetach(r) })
	}
	for _, p := range badTombs {
		g.do(GCItem{Kind: "tombstone", Name: p, Reason: "unreadable tombstone of an interrupted detach"}, func() error { return os.Remove(p) })
	}
	return nil
}

// records tears down the records of targets that are gone, and reports
// corrupt records (kept, with the veth their file name stands for).
func (g *gcRun) records() error {
	recs, bad, err := g.m.store.List()
	if err != nil {
		return err
	}
	for _, r := range recs {
		if why := g.m.Staleness(r); why != "" && !g.m.waitingForServe(g.ctx, r) {
			if !r.Observed {
				why += "; frees " + r.Address.String()
			}
			g.cover(r)
			g.do(GCItem{Kind: "record", Name: r.DisplayName(), Reason: why}, func() error { return g.m.teardown(r) })
			continue
		}
		g.rep.Live++
		g.owned[r.HostIf] = true
		g.ownedIdx[uint32(r.HostIfindex)] = true
	}
	for _, p := range bad {
		id := state.IDFromRecordFile(filepath.Base(p))
		reason := "damaged record: kept, not trusted; inspect it, delete it, then run `nswire gc` again"
		if id != "" {
			g.owned[netops.HostVethName(id)] = true
			reason = fmt.Sprintf("damaged record: kept, not trusted, and its veth %s too; `nswire detach %s` removes what nswire made for it and moves the file to %s/",
				netops.HostVethName(id), short12(id), filepath.Join(g.m.cfg.StateDir, state.DamagedDir))
		}
		g.rep.Items = append(g.rep.Items, GCItem{Kind: "corrupt-record", Name: p, Reason: reason})
	}
	return nil
}

// veths removes nswire host veths without a record: only nsw veths whose
// peer is in another namespace and that carry this state dir's tag.
func (g *gcRun) veths() error {
	m := g.m
	links, err := netops.LinkList(m.host)
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		if !netops.IsHostVethName(a.Name) || g.skip(a.Name) || l.Type() != "veth" || a.NetNsID < 0 || a.Alias != m.vethTag() {
			continue // not ours, or made by an nswire with another state dir
		}
		name, idx := a.Name, a.Index
		g.do(GCItem{Kind: "veth", Name: name, Reason: "no record owns it (an attach was interrupted)"}, func() error {
			if pinned(m.cfg.PinDir) {
				if err := m.dp.remove(&state.Record{HostIf: name, HostIfindex: idx}); err != nil {
					return err
				}
			}
			return netops.DeleteLink(m.host, name)
		})
	}
	return nil
}

// linkPins removes the link pins of interfaces without a record.
func (g *gcRun) linkPins() error {
	linkDir := filepath.Join(g.m.cfg.PinDir, "links")
	entries, err := os.ReadDir(linkDir)
	if err != nil {
		return nil // no pins
	}
	for _, e := range entries {
		if !e.IsDir() || g.skip(e.Name()) || netops.ValidateIfName(e.Name()) != nil {
			continue
		}
		p := filepath.Join(linkDir, e.Name())
		if !g.rep.DryRun {
			if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
				continue // removed with its veth by the veths phase
			}
		}
		g.do(GCItem{Kind: "link-pins", Name: p, Reason: "no record owns interface " + e.Name()}, func() error { return os.RemoveAll(p) })
	}
	return nil
}

// mapEntries removes endpoint and address map entries of no recorded
// interface.
func (g *gcRun) mapEntries() error {
	pinDir := g.m.cfg.PinDir
	if !pinned(pinDir) {
		return nil
	}
	objs, err := bpf.OpenMaps(pinDir)
	if err != nil {
		g.rep.Items = append(g.rep.Items, GCItem{Kind: "map-entry", Name: pinDir, Reason: "cannot open the pinned maps", Error: err.Error()})
		return nil
	}
	defer objs.Close()
	eps, err := objs.AllEndpoints()
	if err != nil {
		return err
	}
	var stale []uint32
	for idx := range eps {
		if !g.ownedIdx[idx] && !g.coveredIdx[idx] {
			stale = append(stale, idx)
		}
	}
	sort.Slice(stale, func(i, j int) bool { return stale[i] < stale[j] })
	for _, idx := range stale {
		g.do(GCItem{Kind: "map-entry", Name: fmt.Sprintf("endpoint ifindex %d", idx), Reason: "no record has this host ifindex"},
			func() error { return objs.DeleteEndpoint(int(idx), nil, nil) })
	}
	g.addressEntries(objs, eps)
	return nil
}

// addressEntries removes address map entries whose endpoint is gone.
func (g *gcRun) addressEntries(objs *bpf.Objects, eps map[uint32]bpf.Endpoint) {
	var (
		k     bpf.IPKey
		owner uint32
		keys  []bpf.IPKey
	)
	it := objs.EndpointsByIp.Iterate()
	for it.Next(&k, &owner) {
		if _, ok := eps[owner]; (!ok || !g.ownedIdx[owner]) && !g.coveredIdx[owner] {
			keys = append(keys, k)
		}
	}
	if err := it.Err(); err != nil {
		g.rep.Items = append(g.rep.Items, GCItem{Kind: "map-entry", Name: g.m.cfg.PinDir, Reason: "cannot list the address entries", Error: err.Error()})
	}
	for _, k := range keys {
		ip := net.IP(k.Addr[:4])
		if k.Family != 4 {
			ip = net.IP(k.Addr[:])
		}
		g.do(GCItem{Kind: "map-entry", Name: "address " + ip.String(), Reason: "its endpoint has no record"}, func() error {
			if err := objs.EndpointsByIp.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return err
			}
			return nil
		})
	}
}

// programs collects program pins of other nswire versions that no link runs
// any more.
func (g *gcRun) programs() error {
	dirs, err := bpf.GCPrograms(g.m.cfg.PinDir, g.rep.DryRun)
	for _, d := range dirs {
		g.rep.Items = append(g.rep.Items, GCItem{Kind: "programs", Name: d, Reason: "programs of another nswire version that no link runs", Removed: !g.rep.DryRun})
	}
	if err != nil {
		g.rep.Items = append(g.rep.Items, GCItem{Kind: "programs", Name: g.m.cfg.PinDir, Reason: "cannot collect old program pins", Error: err.Error()})
	}
	return nil
}

// pinned reports whether the datapath maps are pinned under pinDir.
func pinned(pinDir string) bool {
	for _, p := range bpf.MapPinPaths(pinDir) {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// finishDetach finishes the interrupted detach of tomb. If the target was
// attached again since (a record exists), only the tombstone goes.
func (m *Manager) finishDetach(tomb *state.Record) error {
	if r, err := m.store.Get(tomb.ID); err == nil && r != nil {
		return m.store.ClearDetaching(tomb.ID)
	}
	return m.teardown(tomb)
}

// alive checks that the target still is what was resolved: its namespace
// path (for a container or PID, /proc/PID/ns/net) still leads to the
// namespace held open, so a container that died during the attach, or whose
// PID was reused, is reported instead of recorded.
func (t *Target) alive() error {
	var st unix.Stat_t
	err := unix.Stat(t.NetnsPath, &st)
	switch {
	case err != nil && t.PID != 0:
		return fmt.Errorf("%s exited during the attach (its process %d is gone)", t.Name, t.PID)
	case err != nil:
		return fmt.Errorf("namespace %s was deleted during the attach", t.NetnsPath)
	case st.Ino != t.Inode && t.PID != 0:
		return fmt.Errorf("%s exited during the attach (process %d is now in another namespace)", t.Name, t.PID)
	case st.Ino != t.Inode:
		return fmt.Errorf("%s was replaced by another namespace during the attach", t.NetnsPath)
	}
	return nil
}

// vethTag is the alias attach gives its host veths: "nswire:" and the state
// dir, so that gc removes only veths made by an nswire sharing its state
// (tests run several with their own state dirs side by side).
func (m *Manager) vethTag() string {
	dir, err := filepath.Abs(m.cfg.StateDir)
	if err != nil {
		dir = m.cfg.StateDir
	}
	return "nswire:" + dir
}
