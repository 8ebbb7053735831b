package bench

import (
	"net"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSNMPValue(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL InReceives InHdrErrors\nIp: 1 64 12345 0\nIcmp: InMsgs InErrors\nIcmp: 7 0\n"
	if v, err := snmpValue(snmp, "Ip:", "InReceives"); err != nil || v != 12345 {
		t.Errorf("Ip InReceives = %v, %v; want 12345", v, err)
	}
	if v, err := snmpValue(snmp, "Icmp:", "InMsgs"); err != nil || v != 7 {
		t.Errorf("Icmp InMsgs = %v, %v; want 7", v, err)
	}
	if _, err := snmpValue(snmp, "Ip:", "NoSuch"); err == nil || !strings.Contains(err.Error(), "no Ip: NoSuch") {
		t.Errorf("missing key: %v", err)
	}
	snmp6 := "Ip6InReceives                   	678\nIp6InHdrErrors                  	0\n"
	if v, err := snmp6Value(snmp6, "Ip6InReceives"); err != nil || v != 678 {
		t.Errorf("Ip6InReceives = %v, %v; want 678", v, err)
	}
	if _, err := snmp6Value(snmp6, "Ip6Nothing"); err == nil {
		t.Error("missing snmp6 key: no error")
	}
}

func TestSockaddr(t *testing.T) {
	for _, c := range []struct {
		ip     string
		domain int
	}{{"10.1.2.3", unix.AF_INET}, {"::ffff:10.1.2.3", unix.AF_INET}, {"fd00::5", unix.AF_INET6}, {"::1", unix.AF_INET6}} {
		ip := net.ParseIP(c.ip)
		sa := sockaddr(ip, 4242)
		if domain(ip) != c.domain || portOf(sa) != 4242 {
			t.Errorf("%s: domain %d port %d, want %d 4242", c.ip, domain(ip), portOf(sa), c.domain)
		}
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			if c.domain != unix.AF_INET || !net.IP(a.Addr[:]).Equal(ip) {
				t.Errorf("%s: %v", c.ip, a.Addr)
			}
		case *unix.SockaddrInet6:
			if c.domain != unix.AF_INET6 || !net.IP(a.Addr[:]).Equal(ip) {
				t.Errorf("%s: %v", c.ip, a.Addr)
			}
		}
	}
}
