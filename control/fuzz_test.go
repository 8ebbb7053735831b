package control

import (
	"encoding/json"
	"net"
	"testing"

	"github.com/nswire/nswire/netops"
)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
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
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted record is invalid: %v", err)
		}
		if _, err := DecodeRecord(mustJSON(t, r)); err != nil {
			t.Fatalf("accepted record does not round-trip: %v", err)
		}
	})
}

// FuzzAttachFlags: every user-given flag value is either accepted with a
// well-formed result or rejected with an error; never a panic.
func FuzzAttachFlags(f *testing.F) {
	f.Add("web", "172.17.0.10/16", "172.17.0.1", "02:42:ac:11:00:0a", "eth0")
	f.Add("/x", "172.17.0.10", "", "", "a:b")
	f.Add("", "1.2.3.4/33", "::1", "ff:ff:ff:ff:ff:ff", "0123456789abcdef")
	_, sn, _ := net.ParseCIDR("172.17.0.0/16")
	f.Fuzz(func(t *testing.T, container, ip, gw, mac, ifname string) {
		r := AttachRequest{Target: TargetSpec{Container: container}, IP: ip, Gateway: gw, MAC: mac, IfName: ifname}
		r.Defaults()
		if r.Validate() != nil {
			return
		}
		if netops.ValidateIfName(r.IfName) != nil {
			t.Fatalf("accepted bad ifname %q", r.IfName)
		}
		got, err := ResolveAddress(r.IP, Subnet{Net: sn, Gateway: net.IPv4(172, 17, 0, 1).To4()}, noneUsed)
		if err == nil && (!sn.Contains(got.IP) || got.IP.Equal(sn.IP)) {
			t.Fatalf("ResolveAddress(%q) = %v outside or at the network address", r.IP, got)
		}
		if r.MAC != "" {
			m, err := ParseMAC(r.MAC)
			if err != nil || m[0]&1 != 0 {
				t.Fatalf("accepted bad mac %q", r.MAC)
			}
		}
	})
}
