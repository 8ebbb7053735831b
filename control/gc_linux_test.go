package control

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nswire/nswire/control/state"
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
	for k := 1; k <= 9; k++ { // veth … datapath: the record step checks
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
	rec := &state.Record{ID: "0123456789abcdef", Name: "web", Kind: state.KindDocker, HostIf: "nsw0011aabb", HostIfindex: 7}
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
