package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStateFilesNeverFollowSymlinks: a symlink planted at the lock's path,
// at a record's path, or as the state dir itself is refused with an error
// naming the path, and the file it points to is left exactly as it was.
func TestStateFilesNeverFollowSymlinks(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "victim")
	const content = "do not touch\n"
	if err := os.WriteFile(victim, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	untouched := func(when string) {
		t.Helper()
		if b, err := os.ReadFile(victim); err != nil || string(b) != content {
			t.Fatalf("%s: the symlink's target now holds %q (%v)", when, b, err)
		}
	}
	wantUnsafe := func(when string, err error, path string) {
		t.Helper()
		if !errors.Is(err, ErrUnsafePath) || !strings.Contains(err.Error(), path) {
			t.Fatalf("%s: error %v, want an unsafe-path error naming %s", when, err, path)
		}
	}

	// The lock.
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "lock")
	if err := os.Symlink(victim, lockPath); err != nil {
		t.Fatal(err)
	}
	_, err := AcquireLock(dir, "lock", time.Second)
	wantUnsafe("lock through a symlink", err, lockPath)
	untouched("lock")

	// A record.
	s := Store{Dir: t.TempDir()}
	rec := sampleRecord()
	if err := os.Symlink(victim, s.Path(rec.ID)); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(rec.ID)
	wantUnsafe("Get through a symlink", err, s.Path(rec.ID))
	recs, bad, err := s.List()
	if err != nil || len(recs) != 0 || len(bad) != 1 || bad[0] != s.Path(rec.ID) {
		t.Fatalf("List with a symlinked record: %v, bad %v, %v; want it listed as bad", recs, bad, err)
	}
	// Put replaces the symlink by a file of its own (rename), never writes
	// through it.
	if err := s.Put(rec); err != nil {
		t.Fatal(err)
	}
	untouched("Put over a symlink")
	if fi, err := os.Lstat(s.Path(rec.ID)); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("after Put: %v, %v", fi, err)
	}

	// A tombstone path that is a symlink is not taken for an existing one.
	if err := os.Symlink(victim, s.tombstonePath(rec.ID)); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetTombstone(rec.ID)
	wantUnsafe("GetTombstone through a symlink", err, s.tombstonePath(rec.ID))
	untouched("tombstone")

	// The state dir itself.
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "state")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	ls := Store{Dir: link}
	wantUnsafe("Put into a symlinked dir", ls.Put(rec), link)
	_, _, err = ls.List()
	wantUnsafe("List of a symlinked dir", err, link)
	_, err = AcquireLock(link, "lock", time.Second)
	wantUnsafe("lock in a symlinked dir", err, link)
	if entries, _ := os.ReadDir(real); len(entries) != 0 {
		t.Fatalf("the symlinked dir's target got %d files", len(entries))
	}
}

// TestStateFilesOfOtherUsersRefused: a record or lock that is not owned by
// nswire's user, or is not a regular file, is refused.
func TestStateFilesOfOtherUsersRefused(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	rec := sampleRecord()
	if err := os.Mkdir(s.Path(rec.ID), 0o700); err != nil { // a directory where a record goes
		t.Fatal(err)
	}
	if _, err := s.Get(rec.ID); err == nil || !strings.Contains(err.Error(), s.Path(rec.ID)) {
		t.Fatalf("Get of a directory: %v", err)
	}
	if err := os.Remove(s.Path(rec.ID)); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Log("not root: the owner checks need chown")
		return
	}
	if err := s.Put(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(s.Path(rec.ID), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(rec.ID)
	if !errors.Is(err, ErrUnsafePath) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("Get of another user's record: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(dir, "lock"), 65534, 65534)
	if _, err := AcquireLock(dir, "lock", time.Second); !errors.Is(err, ErrUnsafePath) {
		t.Fatalf("lock owned by another user: %v", err)
	}
	other := t.TempDir()
	os.Chown(other, 65534, 65534)
	if err := (Store{Dir: other}).Put(rec); !errors.Is(err, ErrUnsafePath) {
		t.Fatalf("Put into another user's dir: %v", err)
	}
}

// TestMoveAside: a damaged file is moved into damaged/, never deleted.
func TestMoveAside(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	p := s.Path(sampleRecord().ID)
	if err := os.WriteFile(p, []byte(`{"version":1,"id":`), 0o600); err != nil {
		t.Fatal(err)
	}
	dst, err := s.MoveAside(p)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dst) != filepath.Join(s.Dir, DamagedDir) || !strings.HasPrefix(filepath.Base(dst), filepath.Base(p)+".") {
		t.Fatalf("moved to %s", dst)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != `{"version":1,"id":` {
		t.Fatalf("moved file holds %q, %v", b, err)
	}
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the damaged file is still at %s", p)
	}
	if recs, bad, err := s.List(); err != nil || len(recs)+len(bad) != 0 {
		t.Fatalf("List after MoveAside: %v %v %v", recs, bad, err)
	}
	if _, err := s.MoveAside("/etc/passwd"); err == nil {
		t.Fatal("MoveAside of a file outside the state dir succeeded")
	}
}
