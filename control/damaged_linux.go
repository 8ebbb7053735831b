package control

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/netops"
)

// findDamaged finds the damaged record file of ref among paths: ref is the
// ID its file name stands for, an abbreviation (≥ 4 hex digits) of a Docker
// ID, a netns path or "pid:N"; a container name is resolved to its ID through
// Docker (one bounded call, only when there are damaged files to match).
// Returns nil when none matches.
func (m *Manager) findDamaged(ctx context.Context, ref string, paths []string) (*DamagedRecord, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	ds := m.damaged(paths)
	path := ref
	ref = strings.TrimPrefix(ref, "/")
	ids := []string{ref}
	if strings.Contains(path, "/") { // a netns path: its ID is its inode
		if ino := nsInode(path); ino != 0 {
			ids = append(ids, "netns:"+strconv.FormatUint(ino, 10))
		}
	}
	match := func() *DamagedRecord {
		var found []*DamagedRecord
		for i := range ds {
			d := &ds[i]
			if d.ID == "" {
				continue
			}
			for _, id := range ids {
				if d.ID == id || (len(id) >= 4 && len(d.ID) == 64 && strings.HasPrefix(d.ID, id)) {
					found = append(found, d)
					break
				}
			}
		}
		if len(found) == 1 {
			return found[0]
		}
		return nil
	}
	if d := match(); d != nil {
		return d, nil
	}
	if ValidateContainerRef(ref) != nil {
		return nil, nil
	}
	c, err := m.inspect(ctx, ref)
	if isTimeout(err) {
		return nil, err
	}
	if err != nil {
		return nil, nil // not a container Docker knows (or no engine)
	}
	ids = []string{c.ID}
	return match(), nil
}

// detachDamaged removes what nswire made for the target of a damaged
// record — the host veth named after its ID (and with it the peer, address
// and route), its link pins and endpoint map entries — and moves the file
// aside into the state dir's damaged/ directory for inspection. The caller
// holds the state lock.
func (m *Manager) detachDamaged(d *DamagedRecord) (*DetachResult, error) {
	left := &state.Record{ID: d.ID, HostIf: netops.HostVethName(d.ID)}
	var did []string
	l, err := netops.LinkByName(m.host, left.HostIf)
	switch {
	case err == nil:
		left.HostIfindex = l.Attrs().Index
	case !netops.IsNotFound(err):
		return nil, fmt.Errorf("look for %s: %w", left.HostIf, err)
	}
	if pinned(m.cfg.PinDir) {
		if err := m.dp.remove(left); err != nil {
			return nil, fmt.Errorf("remove the datapath of %s: %w", left.HostIf, err)
		}
	} else if _, err := os.Stat(m.cfg.PinDir + "/links/" + left.HostIf); err == nil {
		os.RemoveAll(m.cfg.PinDir + "/links/" + left.HostIf)
	}
	if left.HostIfindex > 0 {
		if err := netops.DeleteLink(m.host, left.HostIf); err != nil {
			return nil, fmt.Errorf("remove %s: %w", left.HostIf, err)
		}
		did = append(did, "removed its host veth "+left.HostIf+" and datapath entries")
	} else {
		did = append(did, "its host veth "+left.HostIf+" was already gone")
	}
	kept, err := m.store.MoveAside(d.File)
	if err != nil {
		return nil, err
	}
	return &DetachResult{Message: fmt.Sprintf("detached %s, whose record was damaged (%s): %s; the damaged record is kept at %s",
		short12(d.ID), d.Error, strings.Join(did, ", "), kept)}, nil
}

// detachUnrecorded is detach of a ref with neither a record nor a
// tombstone: a damaged record of it is cleared, else there is nothing to do.
func (m *Manager) detachUnrecorded(ctx context.Context, ref string) (*DetachResult, error) {
	_, bad, err := m.store.List()
	if err != nil {
		return nil, err
	}
	d, err := m.findDamaged(ctx, ref, bad)
	if err != nil {
		return nil, err
	}
	if d != nil {
		return m.detachDamaged(d)
	}
	msg := fmt.Sprintf("%s is not attached: nothing to do", ref)
	if len(bad) > 0 {
		msg += fmt.Sprintf(" (%d damaged records in %s: `nswire ls` lists them; detach them by ID)", len(bad), m.cfg.StateDir)
	}
	return &DetachResult{Message: msg}, nil
}
