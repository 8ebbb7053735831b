package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDesiredStore(t *testing.T) {
	s := DesiredStore{Dir: t.TempDir()}
	id := strings.Repeat("ab", 32)
	id2 := strings.Repeat("cd", 32)
	if d, err := s.Get(id); d != nil || err != nil {
		t.Fatalf("Get on empty store = %v, %v; want nil, nil", d, err)
	}
	if l, bad, err := s.List(); len(l) != 0 || len(bad) != 0 || err != nil {
		t.Fatalf("List on missing dir = %v, %v, %v", l, bad, err)
	}
	want := &Desired{ID: id, Name: "web", Source: SourceLabel, Address: "172.17.0.10/16", MAC: "02:42:ac:11:00:0a", Mode: "observe"}
	if err := s.Put(want); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(&Desired{ID: id2, Source: SourceAttach}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(id)
	if err != nil || got == nil {
		t.Fatalf("Get = %v, %v", got, err)
	}
	if got.Address != want.Address || got.MAC != want.MAC || got.Source != SourceLabel || got.Version != desiredVersion || got.Updated.IsZero() {
		t.Fatalf("Get = %+v, want %+v", got, want)
	}
	l, bad, err := s.List()
	if err != nil || len(bad) != 0 || len(l) != 2 || l[0].ID != id || l[1].ID != id2 {
		t.Fatalf("List = %v, %v, %v", l, bad, err)
	}
	// No temp file is left, and files are root-only.
	entries, _ := os.ReadDir(filepath.Join(s.Dir, "containers"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temp file %s left behind", e.Name())
		}
		if fi, _ := e.Info(); fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: want no group/other access", e.Name(), fi.Mode().Perm())
		}
	}
	// A corrupt entry is reported and skipped, not trusted.
	if err := os.WriteFile(s.path(id2), []byte(`{"version":1,"id":"`), 0o600); err != nil {
		t.Fatal(err)
	}
	l, bad, err = s.List()
	if err != nil || len(bad) != 1 || len(l) != 1 {
		t.Fatalf("List with a corrupt entry = %v, %v, %v: want one entry, one error", l, bad, err)
	}
	if err := s.Delete(id); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(id); err != nil {
		t.Fatalf("second Delete = %v, want nil", err)
	}
	if d, _ := s.Get(id); d != nil {
		t.Fatal("entry still there after Delete")
	}
	if err := s.Put(&Desired{ID: "web"}); err == nil {
		t.Fatal("Put with a non-ID accepted")
	}
}
