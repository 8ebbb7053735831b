//go:build linux

package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/test/testenv"
)

// TestCNITwoNodes: two network namespaces act as nodes, joined by a veth
// underlay (192.168.77.0/30). The plugin runs inside each node (nsenter
// --net: the node's namespace is its host) with its own bridge, pod CIDR
// (10.244.1.0/24, 10.244.2.0/24), IPAM data and state; each node routes the
// other's pod CIDR via the other's underlay address. A pod on node A reaches
// a pod on node B, and both nodes count the exchange exactly.
func TestCNITwoNodes(t *testing.T) {
	nsenter := testenv.RequireTool(t, "nsenter")
	type node struct {
		name, path, underlay, peerUnderlay, podCIDR, otherCIDR string
		net                                                    *testenv.CNINet
		pod                                                    string // pod netns path
	}
	suffix := strings.ToLower(testenv.ContainerName("x"))[2:8]
	nodes := []*node{
		{name: "nswnodea-" + suffix, underlay: "192.168.77.1/30", peerUnderlay: "192.168.77.2", podCIDR: "10.244.1", otherCIDR: "10.244.2.0/24"},
		{name: "nswnodeb-" + suffix, underlay: "192.168.77.2/30", peerUnderlay: "192.168.77.1", podCIDR: "10.244.2", otherCIDR: "10.244.1.0/24"},
	}
	handles := map[string]*netlink.Handle{}
	for _, nd := range nodes {
		ns := testenv.NewNamedNetNS(t, nd.name)
		nd.path = filepath.Join("/run/netns", nd.name)
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		handles[nd.name] = h
		nd.net = testenv.NewCNINet(t, cniPlugin(t))
		// The node's own subnet; its bridge lives in the node, so the
		// names may repeat across nodes and never meet the host's.
		nd.net.Prefix, nd.net.Subnet, nd.net.Gateway = nd.podCIDR+".", nd.podCIDR+".0/24", nd.podCIDR+".1"
		nd.net.WriteConflist(t, nd.net.NswireConf(nil))
		nd.pod, _ = newCNINetns(t)
	}
	// The underlay: a veth pair, one end in each node.
	la := netlink.NewLinkAttrs()
	la.Name = "ul0"
	if err := handles[nodes[0].name].LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "ul1"}); err != nil {
		t.Fatal(err)
	}
	peer, err := handles[nodes[0].name].LinkByName("ul1")
	if err != nil {
		t.Fatal(err)
	}
	nsB, err := os.Open(nodes[1].path)
	if err != nil {
		t.Fatal(err)
	}
	defer nsB.Close()
	if err := handles[nodes[0].name].LinkSetNsFd(peer, int(nsB.Fd())); err != nil {
		t.Fatal(err)
	}
	for i, nd := range nodes {
		h := handles[nd.name]
		l, err := h.LinkByName(fmt.Sprintf("ul%d", i))
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := netlink.ParseAddr(nd.underlay)
		if err := h.AddrAdd(l, addr); err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	in := func(nd *node, name string, args ...string) (string, error) {
		cmd := exec.Command(nsenter, append([]string{"--net=" + nd.path, name}, args...)...)
		cmd.Env = append(os.Environ(), "NETCONFPATH="+nd.net.ConfDir, "CNI_PATH="+nd.net.BinDir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, stderr.String())
		}
		return string(out), err
	}
	ips := map[string]string{}
	for _, nd := range nodes {
		out, err := in(nd, filepath.Join(nd.net.Tools, "cnitool"), "add", nd.net.Name, nd.pod)
		if err != nil {
			t.Fatalf("ADD on %s: %v\n%s", nd.name, err, out)
		}
		ips[nd.name] = parseResult(t, out).IPs[0].Address.IP.String()
		if !strings.HasPrefix(ips[nd.name], nd.podCIDR+".") {
			t.Fatalf("pod on %s got %s", nd.name, ips[nd.name])
		}
		if fwd, _ := in(nd, "cat", "/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(fwd) != "1" {
			t.Errorf("node %s does not forward (isGateway): %q", nd.name, fwd)
		}
		// Route the other node's pods via the other node.
		if out, err := in(nd, "ip", "route", "add", nd.otherCIDR, "via", nd.peerUnderlay); err != nil {
			t.Fatalf("route on %s: %v %s", nd.name, err, out)
		}
	}
	out, err := exec.Command(nsenter, "--net="+nodes[0].pod, "busybox", "ping", "-c", "3", "-W", "2", ips[nodes[1].name]).CombinedOutput()
	if err != nil {
		t.Fatalf("pod A to pod B: %v\n%s", err, out)
	}
	for _, nd := range nodes {
		out, err := in(nd, nswireBin, "stats", "-o", "json", "--state-dir", nd.net.StateDir, "--pin-dir", nd.net.PinDir)
		var stats []control.EndpointStats
		if err != nil || json.Unmarshal([]byte(out), &stats) != nil || len(stats) != 1 {
			t.Fatalf("stats on %s: %v\n%s", nd.name, err, out)
		}
		s := stats[0]
		if s.TXByProto["ipv4/icmp"].Packets != 3 || s.RXByProto["ipv4/icmp"].Packets != 3 {
			t.Errorf("node %s counted icmp tx %d rx %d, want 3 and 3", nd.name, s.TXByProto["ipv4/icmp"].Packets, s.RXByProto["ipv4/icmp"].Packets)
		}
	}
	for _, nd := range nodes {
		if out, err := in(nd, filepath.Join(nd.net.Tools, "cnitool"), "del", nd.net.Name, nd.pod); err != nil {
			t.Fatalf("DEL on %s: %v\n%s", nd.name, err, out)
		}
		if r := cniRecords(t, nd.net); len(r) != 0 || len(nd.net.Leases(t)) != 0 {
			t.Errorf("node %s: %d records, leases %v left", nd.name, len(r), nd.net.Leases(t))
		}
	}
}
