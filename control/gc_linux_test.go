package control

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/nswire/nswire/netops"
	"github.com/nswire/nswire/test/testenv"
)

// TestTargetDiesDuringAttach: the target's process dies after each of the
// steps before the record in turn (its namespace still held open by the
// attach); the attach fails with a clear error and leaves nothing behind.
func TestTargetDiesDuringAttach(t *testing.T) {
	testenv.RequireRoot(t)
	pinDir := filepath.Join("/sys/fs/bpf", "nswire-test-dies-"+filepath.Base(t.TempDir()))
	t.Cleanup(func() { os.RemoveAll(pinDir) })
	stateDir := t.TempDir()
	m, err := NewManager(Config{StateDir: stateDir, PinDir: pinDir})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for k := 1; k <= 8; k++ { // veth … datapath: the record step checks
		proc := exec.Command("sleep", "300")
		proc.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
		if err := proc.Start(); err != nil {
			t.Fatal(err)
		}
		m.afterStep = func(step int) {
			if step == k {
				proc.Process.Kill()
				proc.Wait()
			}
		}
		req := AttachRequest{Target: TargetSpec{PID: proc.Process.Pid}}
		_, err := m.Attach(context.Background(), req, false)
		m.afterStep = nil
		proc.Process.Kill()
		proc.Wait()
		if err == nil || !strings.Contains(err.Error(), "exited during the attach (its process") || !strings.Contains(err.Error(), "every step done was undone") {
			t.Fatalf("process killed after step %d: err = %v", k, err)
		}
		links, _ := netops.LinkList(m.host)
		for _, l := range links {
			if l.Attrs().Alias == m.vethTag() {
				t.Fatalf("killed after step %d: veth %s left", k, l.Attrs().Name)
			}
		}
		if recs, bad, _ := m.store.List(); len(recs)+len(bad) != 0 {
			t.Fatalf("killed after step %d: records left", k)
		}
		if entries, _ := os.ReadDir(filepath.Join(pinDir, "links")); len(entries) != 0 {
			t.Fatalf("killed after step %d: link pins left: %v", k, entries)
		}
		if objs, err := m.dp.(*lazyDatapath).open(); err == nil {
			if eps, _ := objs.Objects().AllEndpoints(); len(eps) != 0 {
				t.Fatalf("killed after step %d: endpoints left: %v", k, eps)
			}
		}
	}
}

// TestStalenessUsesNamespaceIdentity: a record is live only while its
// namespace path leads to the recorded inode.
func TestStalenessUsesNamespaceIdentity(t *testing.T) {
	testenv.RequireRoot(t)
	m, err := NewManager(Config{StateDir: t.TempDir(), PinDir: "/sys/fs/bpf/nswire-test-unused"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rec := sampleRecord()
	rec.PID = os.Getpid()
	rec.NetnsPath = "/proc/self/ns/net"
	rec.NetnsInode = m.hostInode + 1
	if why := m.Staleness(rec); !strings.Contains(why, "now in another namespace") {
		t.Fatalf("Staleness = %q", why)
	}
	rec.NetnsPath = "/nonexistent"
	if why := m.Staleness(rec); !strings.Contains(why, "is gone") {
		t.Fatalf("Staleness = %q", why)
	}
}

func TestIDFromRecordFile(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	for name, want := range map[string]string{
		id + ".json":                   id,
		tombstonePrefix + id + ".json": id,
		"netns_4026532251.json":        "netns:4026532251",
		"pid_42.json":                  "pid:42",
		"netns_.json":                  "",
		"netns_12a.json":               "",
		"lock":                         "",
		".tmp-123.json":                "",
		strings.ToUpper(id) + ".json":  "",
		id[:63] + ".json":              "",
		recordFile("netns:4026532251"): "netns:4026532251",
		recordFile(id):                 id,
	} {
		if got := IDFromRecordFile(name); got != want {
			t.Errorf("IDFromRecordFile(%q) = %q, want %q", name, got, want)
		}
	}
}

// FuzzIDFromRecordFile: any file name maps to "" or to an ID whose record
// file name is that name (gc protects the veth of a corrupt record by it).
func FuzzIDFromRecordFile(f *testing.F) {
	f.Add("netns_4026532251.json")
	f.Add(strings.Repeat("ab", 32) + ".json")
	f.Add(".detaching-pid_1.json")
	f.Fuzz(func(t *testing.T, name string) {
		id := IDFromRecordFile(name)
		if id == "" {
			return
		}
		if got := recordFile(id); got != strings.TrimPrefix(name, tombstonePrefix) {
			t.Fatalf("IDFromRecordFile(%q) = %q, whose file is %q", name, id, got)
		}
	})
}

// TestCorruptRecordsAreReportedNotTrusted: every hand-made corrupt or
// truncated record of the fuzz corpus is refused by DecodeRecord and listed
// as bad by Store.List, never returned as a record.
func TestCorruptRecordsAreReportedNotTrusted(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeRecord")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	store := Store{Dir: t.TempDir()}
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "seed-") || e.Name() == "seed-valid" {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		lines := strings.SplitN(string(b), "\n", 2)
		data, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(lines[1]), "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		if r, err := DecodeRecord([]byte(data)); err == nil {
			t.Errorf("%s: decoded as %+v", e.Name(), r)
		}
		os.WriteFile(filepath.Join(store.Dir, fmt.Sprintf("%064x.json", n)), []byte(data), 0o600)
		n++
	}
	recs, bad, err := store.List()
	if err != nil || len(recs) != 0 || len(bad) != n || n < 8 {
		t.Fatalf("List: %d records, %d bad of %d, %v", len(recs), len(bad), n, err)
	}
}
