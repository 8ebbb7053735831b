package state

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// The state directory, its records, tombstones, temp files and lock are
// opened without following symlinks and must be what nswire made: a
// directory or regular file owned by the user nswire runs as (root; nswire
// needs root's capabilities). A symlink planted at one of these paths would
// otherwise make nswire write, truncate or trust a file of someone else's
// choosing.

// ErrUnsafePath is wrapped by the errors about a state path that is a
// symlink, not of the expected type, or not owned by nswire's user.
var ErrUnsafePath = errors.New("unsafe state path")

func unsafePath(path, what string) error {
	return fmt.Errorf("%w: %s %s: nswire keeps its state only in files and directories of its own user (uid %d), never through symlinks; inspect it and remove it",
		ErrUnsafePath, path, what, os.Geteuid())
}

// checkOwned checks the result of an lstat or fstat of path: the wanted
// type, owned by the effective user.
func checkOwned(path string, st *unix.Stat_t, wantType uint32) error {
	switch typ := st.Mode & unix.S_IFMT; {
	case typ == unix.S_IFLNK:
		return unsafePath(path, "is a symlink")
	case typ != wantType && wantType == unix.S_IFDIR:
		return unsafePath(path, "is not a directory")
	case typ != wantType:
		return unsafePath(path, "is not a regular file")
	}
	if int(st.Uid) != os.Geteuid() {
		return unsafePath(path, fmt.Sprintf("is owned by uid %d", st.Uid))
	}
	return nil
}

// checkDir checks that dir is a directory (not a symlink to one) owned by
// the effective user. A missing dir is an error satisfying
// errors.Is(err, os.ErrNotExist).
func checkDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: dir, Err: err}
	}
	return checkOwned(dir, &st, unix.S_IFDIR)
}

// openNoFollow opens path with flags and O_NOFOLLOW, and checks that what
// it opened is a regular file owned by the effective user. A missing file is
// an error satisfying errors.Is(err, os.ErrNotExist).
func openNoFollow(path string, flags int, perm uint32) (*os.File, error) {
	fd, err := unix.Open(path, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if errors.Is(err, unix.ELOOP) {
		return nil, unsafePath(path, "is a symlink")
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if err := checkOwned(path, &st, unix.S_IFREG); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// readNoFollow reads the regular file at path without following a symlink.
func readNoFollow(path string) ([]byte, error) {
	f, err := openNoFollow(path, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// createTemp creates a new temp file in dir for an atomic write: O_EXCL,
// so nothing existing (a symlink included) is ever opened.
func createTemp(dir string) (*os.File, error) {
	for i := 0; ; i++ {
		p := filepath.Join(dir, fmt.Sprintf(".tmp-%d-%d", os.Getpid(), time.Now().UnixNano()))
		f, err := openNoFollow(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) && i < 10 {
			continue
		}
		return f, err
	}
}

// writeAtomic writes data to path through a temp file in dir (created
// without following symlinks) and a rename, so a reader, or a process killed
// at any point, sees the old file or the new one, never a part. With sync
// the data reaches the disk before the rename (for state that must survive
// a reboot).
func writeAtomic(dir, path string, data []byte, sync bool) error {
	f, err := createTemp(dir)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	return err
}

// DamagedDir is the subdirectory of the state dir where damaged records
// are moved aside for inspection.
const DamagedDir = "damaged"

// MoveAside moves the record file at path (one of this store's files) into
// <Dir>/damaged/, under its own name with the time appended, and returns
// the new path. It never deletes: the file stays there for inspection.
func (s Store) MoveAside(path string) (string, error) {
	if filepath.Dir(path) != filepath.Clean(s.Dir) {
		return "", fmt.Errorf("move aside %s: not a file of the state dir %s", path, s.Dir)
	}
	d := filepath.Join(s.Dir, DamagedDir)
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create %s: %w", d, err)
	}
	if err := checkDir(d); err != nil {
		return "", err
	}
	dst := filepath.Join(d, filepath.Base(path)+"."+time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(path, dst); err != nil {
		return "", fmt.Errorf("move %s aside: %w", path, err)
	}
	return dst, nil
}
