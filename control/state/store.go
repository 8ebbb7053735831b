package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nswire/nswire/netops"
)

// DefaultStateDir holds one JSON record per attached container.
const DefaultStateDir = "/run/nswire"

// recordVersion is the version of the record format written by this build.
const recordVersion = 1

// Record is what nswire remembers of one attached container. It is written
// atomically (temp file + rename) after the attach has fully succeeded, so a
// record on disk always describes a complete attach.
type Record struct {
	Version     int       `json:"version"`
	ID          string    `json:"id"`             // Docker container ID, or "pid:N" / "netns:INODE"
	Name        string    `json:"name,omitempty"` // container name, without the leading '/'
	Kind        string    `json:"kind"`           // "docker", "pid" or "netns"
	PID         int       `json:"pid,omitempty"`
	NetnsPath   string    `json:"netnsPath,omitempty"`
	NetnsInode  uint64    `json:"netnsInode"`
	HostIf      string    `json:"hostIf"`
	HostIfindex int       `json:"hostIfindex"`
	IfName      string    `json:"ifName"`
	Address     string    `json:"address"` // CIDR
	Gateway     string    `json:"gateway"`
	MAC         string    `json:"mac"`
	MTU         int       `json:"mtu"`
	Bridge      string    `json:"bridge"`
	Mode        string    `json:"mode"`                 // off, observe, fastpath
	AttachMode  string    `json:"attachMode,omitempty"` // tcx or tc, when a program is attached
	Slot        uint32    `json:"slot"`
	Observed    bool      `json:"observed,omitempty"` // counters only, wiring not ours
	Created     time.Time `json:"created"`
}

// IP returns the record's address without its prefix.
func (r *Record) IP() net.IP {
	ip, _, _ := net.ParseCIDR(r.Address)
	return ip
}

// DisplayName is the container name when there is one, else the ID.
func (r *Record) DisplayName() string {
	if r.Name != "" {
		return r.Name
	}
	return r.ID
}

// Validate checks a decoded record, so that a corrupted or truncated file is
// reported rather than trusted.
func (r *Record) Validate() error {
	if r.Version != recordVersion {
		return fmt.Errorf("record version %d, this nswire reads version %d", r.Version, recordVersion)
	}
	if r.ID == "" {
		return errors.New("record has no id")
	}
	switch r.Kind {
	case "docker", "pid", "netns":
	default:
		return fmt.Errorf("record kind %q is not docker, pid or netns", r.Kind)
	}
	if !netops.IsHostVethName(r.HostIf) && !r.Observed {
		return fmt.Errorf("record host interface %q is not an nswire veth name", r.HostIf)
	}
	if r.HostIfindex <= 0 {
		return fmt.Errorf("record host ifindex %d is not positive", r.HostIfindex)
	}
	if !r.Observed {
		if err := netops.ValidateIfName(r.IfName); err != nil {
			return fmt.Errorf("record: %w", err)
		}
		if _, _, err := net.ParseCIDR(r.Address); err != nil {
			return fmt.Errorf("record address: %w", err)
		}
		if net.ParseIP(r.Gateway) == nil {
			return fmt.Errorf("record gateway %q is not an IP address", r.Gateway)
		}
		if _, err := net.ParseMAC(r.MAC); err != nil {
			return fmt.Errorf("record mac: %w", err)
		}
	}
	if err := checkModeName(r.Mode); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// DecodeRecord parses and validates one record.
func DecodeRecord(data []byte) (*Record, error) {
	var r Record
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode record: trailing data after the record")
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Store is the directory of records. Its methods do not lock; callers hold
// the Lock for any read-modify-write.
type Store struct {
	Dir string
}

func recordFile(id string) string {
	// IDs are hex (Docker) or "pid:N"/"netns:N": keep file names tame.
	return strings.NewReplacer("/", "_", ":", "_").Replace(id) + ".json"
}

func (s Store) path(id string) string { return filepath.Join(s.Dir, recordFile(id)) }

// Ensure creates the state directory, readable by root only.
func (s Store) Ensure() error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	return os.Chmod(s.Dir, 0o700)
}

// Put writes r atomically: a temp file in the same directory, fsync, rename.
func (s Store) Put(r *Record) error {
	if err := s.Ensure(); err != nil {
		return err
	}
	r.Version = recordVersion
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	f, err := os.CreateTemp(s.Dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write record: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync record: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close record: %w", err)
	}
	if err := os.Rename(tmp, s.path(r.ID)); err != nil {
		return fmt.Errorf("install record: %w", err)
	}
	return nil
}

// Get returns the record of id, or (nil, nil) if there is none.
func (s Store) Get(id string) (*Record, error) {
	r, err := readRecord(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return r, err
}

// Delete removes the record of id. Returns nil if there is none.
func (s Store) Delete(id string) error {
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete record: %w", err)
	}
	return nil
}

// List returns every valid record sorted by name, and the paths of files
// that could not be decoded (for gc and doctor to report).
func (s Store) List() ([]*Record, []string, error) {
	recs, bad, err := s.scan(func(name string) bool { return !strings.HasPrefix(name, ".") })
	sort.Slice(recs, func(i, j int) bool { return recs[i].DisplayName() < recs[j].DisplayName() })
	return recs, bad, err
}

// scan decodes every *.json file of the directory whose name match accepts,
// returning the valid records and the paths of the files that could not be
// decoded. A file removed while scanning is skipped.
func (s Store) scan(match func(name string) bool) ([]*Record, []string, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list records: %w", err)
	}
	var recs []*Record
	var bad []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") || !match(name) {
			continue
		}
		p := filepath.Join(s.Dir, name)
		r, err := readRecord(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		var derr decodeError
		if errors.As(err, &derr) {
			bad = append(bad, p)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, r)
	}
	return recs, bad, nil
}

// decodeError marks a record file that exists but does not decode.
type decodeError struct{ err error }

func (e decodeError) Error() string { return e.err.Error() }
func (e decodeError) Unwrap() error { return e.err }

// readRecord reads and decodes the record file at path. A missing file is
// an error satisfying errors.Is(err, os.ErrNotExist); one that does not
// decode is a decodeError naming the path.
func readRecord(path string) (*Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read record: %w", err)
	}
	r, err := DecodeRecord(data)
	if err != nil {
		return nil, decodeError{fmt.Errorf("%s: %w", path, err)}
	}
	return r, nil
}
