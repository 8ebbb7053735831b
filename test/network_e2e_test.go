//go:build linux

package test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"

	"github.com/nswire/nswire/test/testenv"
)

// TestAttachToDockerNetwork: --network NAME (or its ID) wires the container
// into that user-defined Docker network's bridge with an address of its
// subnet, reachable from the host, and never one a Docker container of the
// network holds; an unknown network, a network of another driver, and
// --network with --bridge are clear errors that change nothing.
func TestAttachToDockerNetwork(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	ctx := context.Background()
	name := testenv.ContainerName("nswnet")
	resp, err := cli.NetworkCreate(ctx, name, network.CreateOptions{
		Driver: "bridge",
		IPAM:   &network.IPAM{Config: []network.IPAMConfig{{Subnet: "10.234.9.0/29", Gateway: "10.234.9.1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.NetworkRemove(context.Background(), resp.ID) })
	// Docker makes the bridge when the first container joins; that
	// container takes the lowest address, .2.
	testenv.RunOn(t, cli, name, "netpeer", "sleep", "300")
	idA, _ := testenv.RunNone(t, cli, "neta") // the image's httpd
	idB, _ := testenv.RunNone(t, cli, "netb")
	hostHasNothing := hostSnapshot(t)
	e.fails([]string{"attach", idA, "--network", "nswire-no-such-net"}, "--network nswire-no-such-net: no such Docker network", "docker network ls")
	e.fails([]string{"attach", idA, "--network", "host"}, `--network host uses Docker's "host" driver`, "bridge networks only")
	e.fails([]string{"attach", idA, "--network", name, "--bridge", "docker0"}, "both name the bridge")
	if now := hostSnapshot(t); now != hostHasNothing {
		t.Fatalf("a refused attach changed the host:\n%s", now)
	}
	subnet := netip.MustParsePrefix("10.234.9.0/29")
	for _, tc := range []struct{ id, ref string }{{idA, name}, {idB, resp.ID[:12]}} {
		rec := e.attachJSON(tc.id, "--network", tc.ref)
		if rec.Bridge != "br-"+resp.ID[:12] || !subnet.Contains(rec.IP()) || rec.Address.Bits() != 29 || rec.Gateway != netip.MustParseAddr("10.234.9.1") {
			t.Fatalf("--network %s: bridge %s, address %s, gateway %s", tc.ref, rec.Bridge, rec.Address, rec.Gateway)
		}
		if rec.IP() == netip.MustParseAddr("10.234.9.2") {
			t.Fatalf("--network %s took the Docker container's address %s", tc.ref, rec.IP())
		}
		if body := httpGet(t, "http://"+rec.IP().String()+"/"); !strings.Contains(body, "hello from nswire") {
			t.Fatalf("the page from %s: %q", rec.IP(), body)
		}
	}
	e.ok("detach", idA, idB)
}
