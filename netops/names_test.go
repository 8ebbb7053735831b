package netops

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	id := "4f1c0c7b2d2e8d6b9a1e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f"
	h := HostVethName(id)
	if len(h) != 11 || !strings.HasPrefix(h, "nsw") || !IsHostVethName(h) {
		t.Fatalf("HostVethName = %q", h)
	}
	if h != HostVethName(id) || TempPeerName(id)[3:] != h[3:] {
		t.Fatal("names are not stable")
	}
	if IsHostVethName("nswXYZ") || IsHostVethName("eth0") || IsHostVethName("nsw0123456g") {
		t.Fatal("IsHostVethName accepts foreign names")
	}
	mac := StableMAC(id)
	if mac[0]&1 != 0 || mac[0]&2 == 0 || mac.String() != StableMAC(id).String() {
		t.Fatalf("StableMAC = %s: want stable, unicast, locally administered", mac)
	}
}

func TestValidateIfName(t *testing.T) {
	for _, ok := range []string{"eth0", "a", "abcdefghijklmno", "net-1_x.2"} {
		if err := ValidateIfName(ok); err != nil {
			t.Errorf("ValidateIfName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "abcdefghijklmnop", "a/b", "a:b", "a b", "a\tb", "a\x00"} {
		if err := ValidateIfName(bad); err == nil {
			t.Errorf("ValidateIfName(%q) accepted", bad)
		}
	}
}

func FuzzValidateIfName(f *testing.F) {
	for _, s := range []string{"eth0", "", "a/b", "abcdefghijklmnop", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateIfName(s) != nil {
			return
		}
		if len(s) == 0 || len(s) > 15 || strings.ContainsAny(s, "/: \t\n\x00") {
			t.Fatalf("accepted %q", s)
		}
	})
}
