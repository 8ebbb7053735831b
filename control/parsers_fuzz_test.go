package control

import (
	"net"
	"strings"
	"testing"
)

// FuzzTargetSpec: target strings (container refs, --pid, --netns) are
// accepted only in their documented shape, exactly one target, with an
// explicit --pid 0 or --netns "" refused; never a panic.
func FuzzTargetSpec(f *testing.F) {
	f.Add("web", 0, "", false, false)
	f.Add("", 42, "", true, false)
	f.Add("", 0, "/run/netns/x", false, true)
	f.Add("/a.b-c_d", -1, "", true, false)
	f.Add("-x", 0, "", false, false)
	f.Add("", 0, "", true, false)
	f.Add("", 0, "", false, true)
	f.Add("web", 0, "", true, false)
	f.Fuzz(func(t *testing.T, container string, pid int, netnsPath string, pidGiven, netnsGiven bool) {
		spec := TargetSpec{Container: container, PID: pid, NetnsPath: netnsPath, PIDGiven: pidGiven, NetnsGiven: netnsGiven}
		if spec.Validate() != nil {
			return
		}
		_ = spec.String()
		if pid < 0 || (pidGiven && pid == 0) {
			t.Fatalf("accepted --pid %d", pid)
		}
		if netnsGiven && netnsPath == "" {
			t.Fatal(`accepted --netns ""`)
		}
		kinds := 0
		for _, given := range []bool{container != "", pid != 0 || pidGiven, netnsPath != "" || netnsGiven} {
			if given {
				kinds++
			}
		}
		if kinds != 1 {
			t.Fatalf("accepted %d targets: %+v", kinds, spec)
		}
		if container != "" {
			s := strings.TrimPrefix(container, "/")
			if s == "" || len(s) > 255 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "" || strings.ContainsAny(s[:1], "_.-") {
				t.Fatalf("accepted container %q", container)
			}
		}
	})
}

// FuzzIPFlags: --ip and --mac values parse or fail, and what parses is an
// IPv4 address with a prefix in 0…32 (or -1: the bridge's) and a unicast
// MAC; an IPv4-mapped IPv6 CIDR is refused.
func FuzzIPFlags(f *testing.F) {
	for _, s := range []string{"172.17.0.10/16", "172.17.0.10", "::1", "1.2.3.4/33", "1.2.3.4/-1", "0.0.0.0/0", "::ffff:1.2.3.4/120", ""} {
		f.Add(s, "02:42:ac:11:00:0a")
	}
	f.Add("10.0.0.1", "ff:ff:ff:ff:ff:ff")
	f.Add("10.0.0.1", "00:00:00:00:00:00")
	f.Add("10.0.0.1", "0000.5e00.5301")
	_, sn, _ := net.ParseCIDR("1.2.0.0/16")
	f.Fuzz(func(t *testing.T, ip, mac string) {
		if spec, err := ParseIPFlag(ip); err == nil {
			if !spec.Addr.Is4() || spec.Bits < -1 || spec.Bits > 32 {
				t.Fatalf("ParseIPFlag(%q) = %v /%d", ip, spec.Addr, spec.Bits)
			}
			if got, err := ResolveAddress(spec, Subnet{Net: sn, Gateway: net.IPv4(1, 2, 0, 1).To4()}, noneUsed); err == nil && !sn.Contains(got.IP) {
				t.Fatalf("ResolveAddress(%q) = %v, outside %s", ip, got, sn)
			}
		}
		if m, err := ParseMAC(mac); err == nil {
			if len(m) != 6 || m[0]&1 != 0 {
				t.Fatalf("ParseMAC(%q) = %v: not a unicast Ethernet MAC", mac, m)
			}
		}
	})
}
