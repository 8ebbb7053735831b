package netops

import (
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nswire/nswire/test/testenv"
)

// TestSetIPv6Conf: the setting is written inside the given namespace only,
// read back exactly, and a bad name is refused before any write.
func TestSetIPv6Conf(t *testing.T) {
	testenv.RequireRoot(t)
	ns := testenv.NewNetNS(t)
	h, err := HandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "ra0"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "ra1"}); err != nil {
		t.Fatal(err)
	}
	before, ok, err := IPv6Conf(ns, "ra0", "accept_ra")
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		testenv.Unavailable(t, "the kernel has no IPv6")
	}
	if before != "1" {
		t.Fatalf("accept_ra of a new interface is %q, want the kernel default 1", before)
	}
	for _, key := range []string{"accept_ra", "autoconf"} {
		applied, err := SetIPv6Conf(ns, "ra0", key, "0")
		if err != nil || !applied {
			t.Fatalf("SetIPv6Conf %s: applied %v, %v", key, applied, err)
		}
		if v, _, err := IPv6Conf(ns, "ra0", key); err != nil || v != "0" {
			t.Fatalf("%s after SetIPv6Conf: %q, %v; want 0", key, v, err)
		}
	}
	if _, err := SetIPv6Conf(ns, "nosuchif", "accept_ra", "0"); err == nil {
		t.Fatal("SetIPv6Conf of a missing interface succeeded")
	}
	for _, bad := range [][2]string{{"..", "accept_ra"}, {"ra0", "../all/forwarding"}, {"ra0", ""}} {
		if _, err := SetIPv6Conf(ns, bad[0], bad[1], "0"); err == nil {
			t.Fatalf("SetIPv6Conf(%q, %q) was accepted", bad[0], bad[1])
		}
	}
}
