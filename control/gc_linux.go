package control

import (
	"context"
	"encoding/json"
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
	"github.com/nswire/nswire/netops"
)

// tombstonePrefix marks a record whose detach has begun. Detach first
// renames the record to its tombstone (one atomic rename), then removes the
// programs, the veth and finally the tombstone, so a detach killed at any
// point leaves a tombstone that gc, or the next attach or detach of that
// target, finishes. Store.List ignores dot files: a tombstone is never taken
// for an attached target.
const tombstonePrefix = ".detaching-"

func (s Store) tombstonePath(id string) string {
	return filepath.Join(s.Dir, tombstonePrefix+recordFile(id))
}

// markDetaching moves the record of rec aside as its tombstone. When there
// is no record file (a tombstone being finished, or a record already gone),
// it writes rec as the tombstone unless one exists.
func (s Store) markDetaching(rec *Record) error {
	err := os.Rename(s.path(rec.ID), s.tombstonePath(rec.ID))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		if err != nil {
			return fmt.Errorf("mark %s detaching: %w", rec.DisplayName(), err)
		}
		return nil
	}
	if _, err := os.Stat(s.tombstonePath(rec.ID)); err == nil {
		return nil
	}
	if err := s.Ensure(); err != nil {
		return err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode tombstone: %w", err)
	}
	f, err := os.CreateTemp(s.Dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("write tombstone: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), s.tombstonePath(rec.ID))
	}
	if werr != nil {
		return fmt.Errorf("write tombstone: %w", werr)
	}
	return nil
}

// clearDetaching removes the tombstone of id. Returns nil if there is none.
func (s Store) clearDetaching(id string) error {
	if err := os.Remove(s.tombstonePath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove tombstone: %w", err)
	}
	return nil
}

// tombstones returns the records of every interrupted detach, and the paths
// of tombstones that could not be decoded.
func (s Store) tombstones() ([]*Record, []string, error) {
	return s.scan(func(name string) bool { return strings.HasPrefix(name, tombstonePrefix) })
}

// getTombstone returns the tombstone of id, or (nil, nil) if there is none.
func (s Store) getTombstone(id string) (*Record, error) {
	r, err := readRecord(s.tombstonePath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return r, err
}

// IDFromRecordFile returns the target ID a record (or tombstone) file name
// stands for, or "" when the name is not one nswire writes. Docker IDs are 64
// hex digits; "pid:N" and "netns:N" IDs are stored with '_' for ':'.
func IDFromRecordFile(name string) string {
	name = strings.TrimPrefix(name, tombstonePrefix)
	base, ok := strings.CutSuffix(name, ".json")
	if !ok || base == "" {
		return ""
	}
	for _, kind := range []string{"pid_", "netns_"} {
		if n, ok := strings.CutPrefix(base, kind); ok {
			if n == "" || strings.Trim(n, "0123456789") != "" {
				return ""
			}
			return strings.TrimSuffix(kind, "_") + ":" + n
		}
	}
	if len(base) != 64 || strings.Trim(base, "0123456789abcdef") != "" {
		return ""
	}
	return base
}

// findTombstone finds the tombstone of ref, matched as FindRecord matches
// records. Returns (nil, nil) when there is none.
func (m *Manager) findTombstone(ref string) (*Record, error) {
	recs, _, err := m.store.tombstones()
	if err != nil {
		return nil, err
	}
	ref = strings.TrimPrefix(ref, "/")
	var matches []*Record
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
func (m *Manager) Staleness(rec *Record) string {
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
	lock, err := AcquireLock(m.cfg.StateDir, "lock", lockTimeout)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	rep := &GCReport{DryRun: dryRun, Items: []GCItem{}}
	do := func(it GCItem, f func() error) {
		if !dryRun {
			if err := f(); err != nil {
				it.Error = err.Error()
			} else {
				it.Removed = true
			}
		}
		rep.Items = append(rep.Items, it)
	}

	// 1. Interrupted detaches.
	tombs, badTombs, err := m.store.tombstones()
	if err != nil {
		return nil, err
	}
	covered := map[string]bool{}    // host interfaces whose teardown gc runs
	coveredIdx := map[uint32]bool{} // and their ifindexes
	for _, r := range tombs {
		covered[r.HostIf], coveredIdx[uint32(r.HostIfindex)] = true, true
		do(GCItem{Kind: "tombstone", Name: r.DisplayName(), Reason: "its detach was interrupted: finishing it"}, func() error { return m.finishDetach(r) })
	}
	for _, p := range badTombs {
		do(GCItem{Kind: "tombstone", Name: p, Reason: "unreadable tombstone of an interrupted detach"}, func() error { return os.Remove(p) })
	}

	// 2. Records of targets that are gone.
	recs, bad, err := m.store.List()
	if err != nil {
		return nil, err
	}
	owned := map[string]bool{}     // host interfaces with a live record
	ifindexes := map[uint32]bool{} // their ifindexes
	for _, r := range recs {
		if why := m.Staleness(r); why != "" && !m.waitingForServe(ctx, r) {
			if !r.Observed {
				why += "; frees " + r.Address
			}
			covered[r.HostIf], coveredIdx[uint32(r.HostIfindex)] = true, true
			do(GCItem{Kind: "record", Name: r.DisplayName(), Reason: why}, func() error { return m.teardown(r) })
			continue
		}
		rep.Live++
		owned[r.HostIf] = true
		ifindexes[uint32(r.HostIfindex)] = true
	}
	for _, p := range bad {
		id := IDFromRecordFile(filepath.Base(p))
		reason := "corrupt or truncated record: kept, not trusted; inspect it, delete it, then run `nswire gc` again"
		if id != "" {
			owned[netops.HostVethName(id)] = true
			reason += fmt.Sprintf(" (its veth %s is kept too)", netops.HostVethName(id))
		}
		rep.Items = append(rep.Items, GCItem{Kind: "corrupt-record", Name: p, Reason: reason})
	}
	skip := func(name string) bool { return owned[name] || covered[name] }

	// 3. nswire host veths without a record.
	links, err := netops.LinkList(m.host)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		if !netops.IsHostVethName(a.Name) || skip(a.Name) || l.Type() != "veth" || a.NetNsID < 0 {
			continue // not ours: only nsw veths whose peer is in another namespace
		}
		if a.Alias != m.vethTag() {
			continue // made by an nswire with another state dir
		}
		name, idx := a.Name, a.Index
		do(GCItem{Kind: "veth", Name: name, Reason: "no record owns it (an attach was interrupted)"}, func() error {
			if pinned(m.cfg.PinDir) {
				if err := m.dp.detach(&Record{HostIf: name, HostIfindex: idx}); err != nil {
					return err
				}
			}
			return netops.DeleteLink(m.host, name)
		})
	}

	// 4. Link pins of interfaces without a record.
	linkDir := filepath.Join(m.cfg.PinDir, "links")
	if entries, err := os.ReadDir(linkDir); err == nil {
		for _, e := range entries {
			if !e.IsDir() || skip(e.Name()) || netops.ValidateIfName(e.Name()) != nil {
				continue
			}
			p := filepath.Join(linkDir, e.Name())
			if !dryRun {
				if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
					continue // removed with its veth above
				}
			}
			do(GCItem{Kind: "link-pins", Name: p, Reason: "no record owns interface " + e.Name()}, func() error { return os.RemoveAll(p) })
		}
	}

	// 5. Endpoint map entries of no recorded interface.
	if pinned(m.cfg.PinDir) {
		objs, err := bpf.OpenMaps(m.cfg.PinDir)
		if err == nil {
			defer objs.Close()
		}
		if err != nil {
			rep.Items = append(rep.Items, GCItem{Kind: "map-entry", Name: m.cfg.PinDir, Reason: "cannot open the pinned maps", Error: err.Error()})
		} else {
			eps, err := objs.AllEndpoints()
			if err != nil {
				return nil, err
			}
			var stale []uint32
			for idx := range eps {
				if !ifindexes[idx] && !coveredIdx[idx] {
					stale = append(stale, idx)
				}
			}
			sort.Slice(stale, func(i, j int) bool { return stale[i] < stale[j] })
			for _, idx := range stale {
				do(GCItem{Kind: "map-entry", Name: fmt.Sprintf("endpoint ifindex %d", idx), Reason: "no record has this host ifindex"},
					func() error { return objs.DeleteEndpoint(int(idx), nil, nil) })
			}
			// Address entries whose endpoint is gone.
			var (
				k     bpf.IPKey
				owner uint32
				keys  []bpf.IPKey
			)
			it := objs.EndpointsByIp.Iterate()
			for it.Next(&k, &owner) {
				if _, ok := eps[owner]; (!ok || !ifindexes[owner]) && !coveredIdx[owner] {
					keys = append(keys, k)
				}
			}
			if err := it.Err(); err != nil {
				rep.Items = append(rep.Items, GCItem{Kind: "map-entry", Name: m.cfg.PinDir, Reason: "cannot list the address entries", Error: err.Error()})
			}
			for _, k := range keys {
				ip := net.IP(k.Addr[:4])
				if k.Family != 4 {
					ip = net.IP(k.Addr[:])
				}
				do(GCItem{Kind: "map-entry", Name: "address " + ip.String(), Reason: "its endpoint has no record"}, func() error {
					if err := objs.EndpointsByIp.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
						return err
					}
					return nil
				})
			}
		}
	}

	// 6. Program pins of other nswire versions that no link runs any more.
	dirs, err := bpf.GCPrograms(m.cfg.PinDir, dryRun)
	for _, d := range dirs {
		rep.Items = append(rep.Items, GCItem{Kind: "programs", Name: d, Reason: "programs of another nswire version that no link runs", Removed: !dryRun})
	}
	if err != nil {
		rep.Items = append(rep.Items, GCItem{Kind: "programs", Name: m.cfg.PinDir, Reason: "cannot collect old program pins", Error: err.Error()})
	}
	return rep, nil
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
func (m *Manager) finishDetach(tomb *Record) error {
	if r, err := m.store.Get(tomb.ID); err == nil && r != nil {
		return m.store.clearDetaching(tomb.ID)
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
