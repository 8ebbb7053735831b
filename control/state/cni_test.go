package state

import (
	"encoding/json"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nswire/nswire/control/datapath"
)

func TestCNIRecordRoundTrip(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:03")
	r := &Record{
		ID: "cni:abc/eth0", Name: "team-a/web-1", Kind: KindCNI, NetnsPath: "/run/netns/x", NetnsInode: 7,
		HostIf: "nsw01234567", HostIfindex: 9, IfName: "eth0", Address: netip.MustParsePrefix("10.1.0.5/24"),
		Gateway: netip.MustParseAddr("10.1.0.1"), MAC: mac, MTU: 1500, Bridge: "cni0", Mode: datapath.Observe,
		Hook: datapath.HookTCX, Created: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC),
		CNI: &CNIInfo{ContainerID: "abc", IfName: "eth0", Network: "net", PodNamespace: "team-a", PodName: "web-1"},
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(data)
	if err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	if got.Kind != KindCNI || got.CNI == nil || *got.CNI != *r.CNI || got.Address != r.Address {
		t.Errorf("round trip: %+v (cni %+v)", got, got.CNI)
	}
	// A record of an unknown kind is still refused.
	var w map[string]any
	json.Unmarshal(data, &w)
	w["kind"] = "podman"
	bad, _ := json.Marshal(w)
	if _, err := DecodeRecord(bad); err == nil {
		t.Error("kind podman accepted")
	}
}
