package control

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleRecord() *Record {
	return &Record{
		Version: recordVersion, ID: "0123456789abcdef", Name: "web", Kind: "docker", PID: 42,
		NetnsInode: 4026532000, HostIf: "nsw0011aabb", HostIfindex: 7, IfName: "eth0",
		Address: "172.17.0.10/16", Gateway: "172.17.0.1", MAC: "02:00:00:00:00:01", MTU: 1500,
		Bridge: "docker0", Mode: ModeObserve, AttachMode: "tcx", Created: time.Unix(1700000000, 0).UTC(),
	}
}

func TestStoreRoundTrip(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "state")}
	if r, err := s.Get("nope"); r != nil || err != nil {
		t.Fatalf("Get of missing = %v, %v", r, err)
	}
	rec := sampleRecord()
	if err := s.Put(rec); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *rec {
		t.Fatalf("round trip: got %+v, want %+v", got, rec)
	}
	st, err := os.Stat(s.Dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode = %v, %v; want 0700", st.Mode().Perm(), err)
	}
	fst, _ := os.Stat(s.path(rec.ID))
	if fst.Mode().Perm() != 0o600 {
		t.Fatalf("record mode = %v, want 0600", fst.Mode().Perm())
	}
	// A corrupt file is reported by List, not trusted.
	os.WriteFile(filepath.Join(s.Dir, "broken.json"), []byte(`{"version":1,"id":"x"`), 0o600)
	recs, bad, err := s.List()
	if err != nil || len(recs) != 1 || len(bad) != 1 || !strings.HasSuffix(bad[0], "broken.json") {
		t.Fatalf("List = %d records, bad %v, err %v", len(recs), bad, err)
	}
	if err := s.Delete(rec.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(rec.ID); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Fatalf("temp file left behind: %s", e.Name())
		}
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	for name, mutate := range map[string]func(*Record){
		"version": func(r *Record) { r.Version = 9 },
		"no id":   func(r *Record) { r.ID = "" },
		"kind":    func(r *Record) { r.Kind = "vm" },
		"host if": func(r *Record) { r.HostIf = "eth0" },
		"ifindex": func(r *Record) { r.HostIfindex = 0 },
		"ifname":  func(r *Record) { r.IfName = "a/b" },
		"address": func(r *Record) { r.Address = "1.2.3.4" },
		"gateway": func(r *Record) { r.Gateway = "x" },
		"mac":     func(r *Record) { r.MAC = "nope" },
		"mode":    func(r *Record) { r.Mode = "turbo" },
	} {
		r := sampleRecord()
		mutate(r)
		if _, err := DecodeRecord(mustJSON(t, r)); err == nil {
			t.Errorf("%s: bad record accepted", name)
		}
	}
	if _, err := DecodeRecord([]byte(`{"version":1} {}`)); err == nil {
		t.Error("trailing data accepted")
	}
	good := mustJSON(t, sampleRecord())
	for i := 0; i < len(good)-1; i += 7 {
		if _, err := DecodeRecord(good[:i]); err == nil {
			t.Errorf("record truncated at %d bytes accepted", i)
		}
	}
}
