package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Store is the directory of records. Its methods do not lock; callers hold
// the Lock for any read-modify-write.
type Store struct {
	Dir string
}

func recordFile(id string) string {
	// IDs are hex (Docker) or "pid:N"/"netns:N": keep file names tame.
	return strings.NewReplacer("/", "_", ":", "_").Replace(id) + ".json"
}

// Path is the file that holds the record of id.
func (s Store) Path(id string) string { return filepath.Join(s.Dir, recordFile(id)) }

// Ensure creates the state directory, readable by root only, and refuses
// one that is a symlink or not owned by nswire's user.
func (s Store) Ensure() error {
	return EnsureDir(s.Dir)
}

// EnsureDir creates dir with mode 0700 when missing and checks that it is a
// directory (not a symlink) owned by the effective user.
func EnsureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	if err := checkDir(dir); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// Put writes r atomically: a temp file in the same directory, then rename,
// so a reader or a process killed at any point sees the old record or the new
// one, never a part. There is no fsync: the run state lives on /run, a tmpfs
// on every distribution, and means nothing after a reboot (serve rebuilds it
// from the desired state); an fsync cost 0.3-1 ms per write where /run is on
// disk (/run on ext4 here: 0.4-1.2 ms against 0.17 ms, medians of 50).
func (s Store) Put(r *Record) error {
	if err := s.Ensure(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	if err := writeAtomic(s.Dir, s.Path(r.ID), append(data, '\n'), false); err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	return nil
}

// Get returns the record of id, or (nil, nil) if there is none.
func (s Store) Get(id string) (*Record, error) {
	r, err := readRecord(s.Path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return r, err
}

// Delete removes the record of id. Returns nil if there is none.
func (s Store) Delete(id string) error {
	if err := os.Remove(s.Path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
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
	if err := checkDir(s.Dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
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
		if errors.As(err, &derr) || errors.Is(err, ErrUnsafePath) {
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

// readRecord reads and decodes the record file at path, without following
// a symlink. A missing file is an error satisfying errors.Is(err,
// os.ErrNotExist); one that is not a regular file of nswire's user wraps
// ErrUnsafePath; one that does not decode is a decodeError naming the path.
func readRecord(path string) (*Record, error) {
	data, err := readNoFollow(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrUnsafePath) {
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

// MarkDetaching moves the record of rec aside as its tombstone. When there
// is no record file (a tombstone being finished, or a record already gone),
// it writes rec as the tombstone unless one exists.
func (s Store) MarkDetaching(rec *Record) error {
	err := os.Rename(s.Path(rec.ID), s.tombstonePath(rec.ID))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		if err != nil {
			return fmt.Errorf("mark %s detaching: %w", rec.DisplayName(), err)
		}
		return nil
	}
	if _, err := os.Lstat(s.tombstonePath(rec.ID)); err == nil {
		return nil
	}
	if err := s.Ensure(); err != nil {
		return err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode tombstone: %w", err)
	}
	if err := writeAtomic(s.Dir, s.tombstonePath(rec.ID), data, false); err != nil {
		return fmt.Errorf("write tombstone: %w", err)
	}
	return nil
}

// ClearDetaching removes the tombstone of id. Returns nil if there is none.
func (s Store) ClearDetaching(id string) error {
	if err := os.Remove(s.tombstonePath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove tombstone: %w", err)
	}
	return nil
}

// Tombstones returns the records of every interrupted detach, and the paths
// of tombstones that could not be decoded.
func (s Store) Tombstones() ([]*Record, []string, error) {
	return s.scan(func(name string) bool { return strings.HasPrefix(name, tombstonePrefix) })
}

// GetTombstone returns the tombstone of id, or (nil, nil) if there is none.
func (s Store) GetTombstone(id string) (*Record, error) {
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

// ReadFile reads and checks the record file at path (a file of this store,
// a tombstone or one moved aside), without following a symlink: what
// damaged records report.
func (s Store) ReadFile(path string) (*Record, error) { return readRecord(path) }

// IsDamaged reports whether err says a record file exists but cannot be
// read or trusted (it does not decode, or is a symlink or another user's).
func IsDamaged(err error) bool {
	var derr decodeError
	return errors.As(err, &derr) || errors.Is(err, ErrUnsafePath)
}
