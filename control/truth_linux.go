package control

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nswire/nswire/control/state"
)

// RecordState is what is true now of a record: whether the attachment it
// describes is still there.
type RecordState string

// The states of a record. Only a live record's counters are current.
const (
	// StateLive: the target's namespace is the recorded one and the host
	// veth is there with the recorded ifindex.
	StateLive RecordState = "live"
	// StateRestarted: the container is running, but in a new namespace
	// (docker restart): the recorded wiring went with the old one.
	StateRestarted RecordState = "restarted"
	// StateStopped: the container exists but is not running.
	StateStopped RecordState = "stopped"
	// StateGone: the container was removed, or the process or namespace no
	// longer exists (a PID now in another namespace was reused).
	StateGone RecordState = "gone"
	// StateBroken: the namespace is the recorded one but the host veth is
	// missing or another: `nswire attach` repairs it.
	StateBroken RecordState = "broken"
	// StateDamaged: the record file cannot be read or trusted.
	StateDamaged RecordState = "damaged"
)

// RecordStatus is a record's state and, unless live, why and what to do.
type RecordStatus struct {
	State  RecordState `json:"state"`
	Reason string      `json:"reason,omitempty"`
}

// Live reports whether the record describes a working attachment.
func (s RecordStatus) Live() bool { return s.State == StateLive }

// DamagedRecord is a record file that could not be read or trusted.
type DamagedRecord struct {
	File  string `json:"file"`
	ID    string `json:"id,omitempty"` // the target ID its file name stands for, if any
	Error string `json:"error"`
}

// truth is what one command learns of the machine to tell the state of
// records: Docker's containers from one ContainerList(all) (never one inspect
// per record), or why the engine could not be asked.
type truth struct {
	m          *Manager
	containers map[string]Container // nil when the engine was not asked or did not answer
	engineErr  error                // why containers is nil although a record is a container's
}

// newTruth lists Docker's containers once when a record is a container's.
// An engine that is absent or does not answer in time is not an error here:
// the states are then told from local facts, and say so.
func (m *Manager) newTruth(ctx context.Context, recs []*state.Record) *truth {
	t := &truth{m: m}
	for _, r := range recs {
		if r.Kind != state.KindDocker {
			continue
		}
		// A watch (stats -w, top, metrics) asks every interval: after the
		// engine ran out of time once, do not wait for it again for a while.
		if m.engineTimeout != nil && time.Since(m.engineTimeoutAt) < engineRetryAfter {
			t.engineErr = m.engineTimeout
			break
		}
		t.containers, t.engineErr = m.containersByID(ctx)
		if isTimeout(t.engineErr) {
			m.engineTimeout, m.engineTimeoutAt = t.engineErr, time.Now()
		}
		break
	}
	return t
}

// engineRetryAfter is how long states are told from local facts alone
// after the engine did not answer in time.
const engineRetryAfter = 30 * time.Second

// nsInode is the inode of the namespace at path, or 0 when there is none.
func nsInode(path string) uint64 {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return 0
	}
	return st.Ino
}

// status tells what is true now of rec.
func (t *truth) status(rec *state.Record) RecordStatus {
	ino := nsInode(rec.NetnsPath)
	sameNS := ino != 0 && ino == rec.NetnsInode
	name := rec.DisplayName()
	if sameNS {
		if !t.m.hostLinkMatches(rec) {
			return RecordStatus{StateBroken, fmt.Sprintf("its host veth %s (ifindex %d) is missing: `nswire attach %s` repairs it", rec.HostIf, rec.HostIfindex, name)}
		}
		return RecordStatus{State: StateLive}
	}
	switch rec.Kind {
	case state.KindDocker:
		if t.containers == nil {
			why := "the Docker engine was not asked"
			if t.engineErr != nil {
				why = "the Docker engine did not answer (" + t.engineErr.Error() + ")"
			}
			return RecordStatus{StateStopped, fmt.Sprintf("its namespace is gone; %s, so whether the container still exists is unknown", why)}
		}
		c, ok := t.containers[rec.ID]
		if !ok {
			return RecordStatus{StateGone, fmt.Sprintf("container %.12s was removed: `nswire detach %s` or `nswire gc` clears the record", rec.ID, name)}
		}
		if c.State == "running" || c.State == "paused" {
			return RecordStatus{StateRestarted, fmt.Sprintf("the container was restarted and runs in a new namespace without nswire's wiring: `nswire attach %s` wires it again", name)}
		}
		return RecordStatus{StateStopped, fmt.Sprintf("the container is %s: `docker start %s` and `nswire attach %s` wire it again, `nswire detach %s` clears the record", c.State, name, name, name)}
	case state.KindPID:
		if ino == 0 {
			return RecordStatus{StateGone, fmt.Sprintf("process %d exited: `nswire detach %s` or `nswire gc` clears the record", rec.PID, rec.ID)}
		}
		return RecordStatus{StateGone, fmt.Sprintf("process %d is now in another namespace (the PID was reused): `nswire detach %s` or `nswire gc` clears the record", rec.PID, rec.ID)}
	default:
		if ino == 0 {
			return RecordStatus{StateGone, fmt.Sprintf("namespace %s no longer exists: `nswire detach %s` or `nswire gc` clears the record", rec.NetnsPath, rec.ID)}
		}
		return RecordStatus{StateGone, fmt.Sprintf("%s is now another namespace: `nswire detach %s` or `nswire gc` clears the record", rec.NetnsPath, rec.ID)}
	}
}

// damaged describes the record files of the store that could not be read
// or trusted.
func (m *Manager) damaged(paths []string) []DamagedRecord {
	out := make([]DamagedRecord, 0, len(paths))
	for _, p := range paths {
		d := DamagedRecord{File: p, ID: state.IDFromRecordFile(filepath.Base(p)), Error: "unreadable"}
		if _, err := m.store.ReadFile(p); err != nil {
			d.Error = err.Error()
		}
		out = append(out, d)
	}
	return out
}

// DamagedHint is what to do about a damaged record.
func (d DamagedRecord) Hint() string {
	if d.ID == "" {
		return "inspect it; nswire does not use it"
	}
	return fmt.Sprintf("`nswire detach %s` removes what nswire made for that target and moves the file to %s/", short12(d.ID), filepath.Join(filepath.Dir(d.File), state.DamagedDir))
}

func short12(id string) string {
	if len(id) > 12 && !strings.Contains(id, ":") {
		return id[:12]
	}
	return id
}

// isTimeout reports whether err is the Docker deadline's.
func isTimeout(err error) bool { return errors.Is(err, ErrDockerTimeout) }
