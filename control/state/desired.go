// Package state holds what nswire must remember. This file is the desired
// state: which containers should be wired, and with which settings, kept
// where it survives a reboot (DefaultDesiredDir), apart from the run state
// of /run/nswire. `nswire attach` adds an entry, `nswire detach` removes it,
// and `nswire serve` wires every entry's container again whenever it starts
// with a new network namespace. An address or MAC nswire chose itself is
// written here once chosen, so the container keeps it across restarts.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// DefaultDesiredDir is where the desired state lives by default.
const DefaultDesiredDir = "/var/lib/nswire"

// desiredVersion is the format version of the entries this build writes.
const desiredVersion = 1

// Sources of a desired entry.
const (
	SourceAttach = "attach" // `nswire attach`
	SourceLabel  = "label"  // the nswire.* labels of the container, seen by serve
)

// Desired is one container that should be wired, with its settings. Empty
// fields take attach's defaults.
type Desired struct {
	Version int    `json:"version"`
	ID      string `json:"id"` // full Docker container ID
	Name    string `json:"name,omitempty"`
	Source  string `json:"source"` // attach or label
	Bridge  string `json:"bridge,omitempty"`
	IfName  string `json:"ifName,omitempty"`
	Address string `json:"address,omitempty"` // CIDR, the one in use (chosen or given)
	// Address6 is its IPv6 address (CIDR), when its bridge has IPv6.
	Address6 string `json:"address6,omitempty"`
	// Chosen is true when nswire chose the address (none was given): it
	// may move the container to another one if a foreign host takes it.
	Chosen  bool      `json:"chosen,omitempty"`
	Gateway string    `json:"gateway,omitempty"`
	MAC     string    `json:"mac,omitempty"`
	MTU     int       `json:"mtu,omitempty"`
	Mode    string    `json:"mode,omitempty"`
	Updated time.Time `json:"updated"`
}

// DesiredStore is the directory of desired entries, one JSON file per
// container ID. Writes are atomic (temp file, fsync, rename), so a reader
// never sees half an entry. It does not lock: nswire's state lock orders
// read-modify-writes.
type DesiredStore struct {
	Dir string // "" means DefaultDesiredDir
}

func (s DesiredStore) dir() string {
	if s.Dir == "" {
		return DefaultDesiredDir
	}
	return s.Dir
}

// containers is the subdirectory of the entries.
func (s DesiredStore) path(id string) string {
	return filepath.Join(s.dir(), "containers", id+".json")
}

// validID accepts Docker container IDs: 64 lowercase hex digits.
func validID(id string) error {
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		return fmt.Errorf("desired state: %q is not a full Docker container ID", id)
	}
	return nil
}

// Put writes d atomically, replacing any entry of d.ID.
func (s DesiredStore) Put(d *Desired) error {
	if err := validID(d.ID); err != nil {
		return err
	}
	dir := filepath.Dir(s.path(d.ID))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create desired state dir: %w", err)
	}
	d.Version = desiredVersion
	if d.Updated.IsZero() {
		d.Updated = time.Now().UTC()
	}
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("encode desired state: %w", err)
	}
	if err := writeAtomic(dir, s.path(d.ID), append(data, '\n'), true); err != nil {
		return fmt.Errorf("write desired state of %.12s: %w", d.ID, err)
	}
	return nil
}

// Get returns the entry of id, or (nil, nil) when there is none.
func (s DesiredStore) Get(id string) (*Desired, error) {
	if validID(id) != nil {
		return nil, nil
	}
	data, err := os.ReadFile(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read desired state: %w", err)
	}
	return decodeDesired(data, id)
}

func decodeDesired(data []byte, id string) (*Desired, error) {
	var d Desired
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decode desired state of %.12s: %w", id, err)
	}
	if d.Version != desiredVersion {
		return nil, fmt.Errorf("desired state of %.12s has version %d, this nswire reads %d", id, d.Version, desiredVersion)
	}
	if d.ID != id {
		return nil, fmt.Errorf("desired state file of %.12s holds id %.12s", id, d.ID)
	}
	return &d, nil
}

// Delete removes the entry of id. Returns nil when there is none.
func (s DesiredStore) Delete(id string) error {
	if validID(id) != nil {
		return nil
	}
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete desired state of %.12s: %w", id, err)
	}
	return nil
}

// List returns every readable entry sorted by ID, and an error per file that
// could not be read or decoded (those are skipped, not trusted). A missing
// directory is an empty list.
func (s DesiredStore) List() ([]*Desired, []error, error) {
	dir := filepath.Join(s.dir(), "containers")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list desired state: %w", err)
	}
	var out []*Desired
	var bad []error
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if e.IsDir() || !ok || validID(id) != nil {
			continue
		}
		d, err := s.Get(id)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		if d != nil {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, bad, nil
}
