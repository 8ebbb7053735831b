package state

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nswire/nswire/control/datapath"
)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLegacyRecordLoads: a record file exactly as nswire before the typed
// record wrote it (testdata/legacy-record.json) loads into the typed fields,
// and writing it back gives the same JSON.
func TestLegacyRecordLoads(t *testing.T) {
	data, err := os.ReadFile("testdata/legacy-record.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeRecord(data)
	if err != nil {
		t.Fatalf("legacy record refused: %v", err)
	}
	if r.Address != netip.MustParsePrefix("172.17.0.10/16") || r.Gateway != netip.MustParseAddr("172.17.0.1") ||
		r.MAC.String() != "02:42:ac:11:00:0a" || r.Mode != datapath.Fastpath || r.Hook != datapath.HookTCX ||
		r.Slot != 3 || r.HostIf != "nsw1a2b3c4d" || r.Name != "web" {
		t.Fatalf("legacy record parsed as %+v", r)
	}
	var want, got map[string]any
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(mustJSON(t, r), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("re-encoded record differs:\n got %v\nwant %v", got, want)
	}
	// An observed record has no gateway and may have no address.
	obs := []byte(`{"version":1,"id":"` + strings.Repeat("ab", 32) + `","kind":"docker","netnsInode":5,"hostIf":"veth123","hostIfindex":9,"ifName":"eth0","address":"","gateway":"","mac":"02:42:ac:11:00:02","mtu":1500,"bridge":"docker0","mode":"observe","attachMode":"tc","slot":1,"observed":true,"created":"2026-01-01T00:00:00Z"}`)
	o, err := DecodeRecord(obs)
	if err != nil {
		t.Fatalf("observed record refused: %v", err)
	}
	if o.Address.IsValid() || o.Gateway.IsValid() || o.Hook != datapath.HookTC || !o.Observed {
		t.Fatalf("observed record parsed as %+v", o)
	}
}

func sampleRecord() *Record {
	return &Record{
		ID: "0123456789abcdef", Name: "web", Kind: "docker", PID: 42,
		NetnsInode: 4026532000, HostIf: "nsw0011aabb", HostIfindex: 7, IfName: "eth0",
		Address: netip.MustParsePrefix("172.17.0.10/16"), Gateway: netip.MustParseAddr("172.17.0.1"),
		MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, MTU: 1500,
		Bridge: "docker0", Mode: datapath.Observe, Hook: datapath.HookTCX, Created: time.Unix(1700000000, 0).UTC(),
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
	if !reflect.DeepEqual(got, rec) {
		t.Fatalf("round trip: got %+v, want %+v", got, rec)
	}
	st, err := os.Stat(s.Dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode = %v, %v; want 0700", st.Mode().Perm(), err)
	}
	fst, _ := os.Stat(s.Path(rec.ID))
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
	for name, mutate := range map[string]func(*wireRecord){
		"version": func(r *wireRecord) { r.Version = 9 },
		"no id":   func(r *wireRecord) { r.ID = "" },
		"kind":    func(r *wireRecord) { r.Kind = "vm" },
		"host if": func(r *wireRecord) { r.HostIf = "eth0" },
		"ifindex": func(r *wireRecord) { r.HostIfindex = 0 },
		"ifname":  func(r *wireRecord) { r.IfName = "a/b" },
		"address": func(r *wireRecord) { r.Address = "1.2.3.4" },
		"gateway": func(r *wireRecord) { r.Gateway = "x" },
		"mac":     func(r *wireRecord) { r.MAC = "nope" },
		"mode":    func(r *wireRecord) { r.Mode = "turbo" },
		"hook":    func(r *wireRecord) { r.AttachMode = "xdp" },
	} {
		var w wireRecord
		if err := json.Unmarshal(mustJSON(t, sampleRecord()), &w); err != nil {
			t.Fatal(err)
		}
		mutate(&w)
		if _, err := DecodeRecord(mustJSON(t, w)); err == nil {
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

// FuzzDecodeRecord: a record file of any content is decoded without panic,
// and whatever is accepted is valid and survives a round trip.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(mustJSON(f, sampleRecord()))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRecord(data)
		if err != nil {
			return
		}
		again, err := DecodeRecord(mustJSON(t, r))
		if err != nil {
			t.Fatalf("accepted record does not round-trip: %v", err)
		}
		if string(mustJSON(t, again)) != string(mustJSON(t, r)) {
			t.Fatalf("round trip changed the record: %+v -> %+v", r, again)
		}
	})
}
