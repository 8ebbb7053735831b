package control

import (
	"net"
	"testing"

	"github.com/nswire/nswire/netops"
)

// FuzzAttachFlags: every user-given flag value is either accepted with a
// well-formed result or rejected with an error; never a panic.
func FuzzAttachFlags(f *testing.F) {
	f.Add("web", "172.17.0.10/16", "172.17.0.1", "02:42:ac:11:00:0a", "eth0")
	f.Add("/x", "172.17.0.10", "", "", "a:b")
	f.Add("", "1.2.3.4/33", "::1", "ff:ff:ff:ff:ff:ff", "0123456789abcdef")
	_, sn, _ := net.ParseCIDR("172.17.0.0/16")
	f.Fuzz(func(t *testing.T, container, ip, gw, mac, ifname string) {
		r, err := AttachFlags{Target: TargetSpec{Container: container}, IP: ip, Gateway: gw, MAC: mac, IfName: ifname}.Parse()
		if err != nil {
			return
		}
		if netops.ValidateIfName(r.IfName) != nil {
			t.Fatalf("accepted bad ifname %q", r.IfName)
		}
		got, err := ResolveAddress(r.IP, Subnet{Net: sn, Gateway: net.IPv4(172, 17, 0, 1).To4()}, noneUsed)
		if err == nil && (!sn.Contains(got.IP) || got.IP.Equal(sn.IP)) {
			t.Fatalf("ResolveAddress(%q) = %v outside or at the network address", r.IP, got)
		}
		if mac != "" && (len(r.MAC) != 6 || r.MAC[0]&1 != 0) {
			t.Fatalf("accepted bad mac %q", mac)
		}
	})
}
