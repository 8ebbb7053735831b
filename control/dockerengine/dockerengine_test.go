package dockerengine

import (
	"errors"
	"net/netip"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/nswire/nswire/control"
)

func TestBridgeName(t *testing.T) {
	for _, tc := range []struct {
		name, id, driver string
		opts             map[string]string
		want             string
	}{
		{"bridge", "abc", "bridge", nil, "docker0"},
		{"net1", "0123456789abcdef", "bridge", nil, "br-0123456789ab"},
		{"net2", "0123456789abcdef", "bridge", map[string]string{"com.docker.network.bridge.name": "nswbr"}, "nswbr"},
		{"over", "0123456789abcdef", "overlay", nil, ""},
		{"short", "0123", "bridge", nil, ""},
	} {
		if got := bridgeName(tc.name, tc.id, tc.driver, tc.opts); got != tc.want {
			t.Errorf("bridgeName(%s) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestNotFound: Docker's "no such" errors match control.ErrNotFound and
// keep their text; others are left alone.
func TestNotFound(t *testing.T) {
	nf := cerrdefs.ErrNotFound.WithMessage("No such container: web")
	err := wrap(nf)
	if !errors.Is(err, control.ErrNotFound) || !cerrdefs.IsNotFound(err) || err.Error() != nf.Error() {
		t.Errorf("wrap(not found) = %v", err)
	}
	other := errors.New("connection refused")
	if err := wrap(other); err != other || errors.Is(err, control.ErrNotFound) {
		t.Errorf("wrap(other) = %v", err)
	}
}

func TestConversions(t *testing.T) {
	n := fromNetwork(network.Inspect{Name: "n6", ID: "0123456789abcdef", Driver: "bridge",
		Options: map[string]string{"com.docker.network.bridge.enable_icc": "false"},
		IPAM:    network.IPAM{Config: []network.IPAMConfig{{Subnet: "10.9.0.0/24", Gateway: "10.9.0.1"}, {Subnet: "fd00:9::/64"}, {Subnet: "bad"}}}})
	want := []control.NetworkSubnet{{Subnet: netip.MustParsePrefix("10.9.0.0/24"), Gateway: netip.MustParseAddr("10.9.0.1")}, {Subnet: netip.MustParsePrefix("fd00:9::/64")}}
	if n.Bridge != "br-0123456789ab" || n.ICC || len(n.Subnets) != 2 || n.Subnets[0] != want[0] || n.Subnets[1] != want[1] {
		t.Errorf("fromNetwork = %+v", n)
	}
	c := fromInspect(container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: "abc", Name: "/web", Created: "2026-12-03T18:00:00.123456789Z",
			State:      &container.State{Status: "running", Running: true, Pid: 42},
			HostConfig: &container.HostConfig{NetworkMode: "none"}},
		Config: &container.Config{Labels: map[string]string{"a": "b"}},
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			"bridge": {IPAddress: "172.17.0.2", GlobalIPv6Address: "fd00::2"}, "nil": nil}},
	})
	if c.ID != "abc" || c.Name != "web" || !c.Running || c.PID != 42 || c.State != "running" || c.NetworkMode != "none" ||
		c.Created != 1796320800 || c.Labels["a"] != "b" || c.Networks["bridge"].IPv4 != netip.MustParseAddr("172.17.0.2") ||
		c.Networks["bridge"].IPv6 != netip.MustParseAddr("fd00::2") || len(c.Networks) != 1 {
		t.Errorf("fromInspect = %+v", c)
	}
	if c := fromInspect(container.InspectResponse{}); c.ID != "" || c.Running {
		t.Errorf("fromInspect of an empty answer = %+v", c)
	}
}
