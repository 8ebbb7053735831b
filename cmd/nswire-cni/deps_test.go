package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/nswire/nswire/test/testenv"
)

// TestNoDockerSDK: the plugin does not link the Docker SDK (nor the image
// reference and digest packages it brings): their package init alone cost
// ~4 ms of every ADD. control asks an engine only through control.Engine;
// control/dockerengine, which implements it with the SDK, is the CLI's. Nor
// does it link go-iptables and knftables (through containernetworking/
// plugins' pkg/ipam), another ~1.5 ms.
func TestNoDockerSDK(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		testenv.Unavailable(t, "no go command to list the plugin's dependencies: %v", err)
	}
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(cmd.Environ(), "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []struct{ prefix, what string }{
		{"github.com/docker/", "the Docker SDK"},
		{"github.com/distribution/", "the Docker SDK"},
		{"github.com/opencontainers/", "the Docker SDK"},
		{"github.com/moby/", "the Docker SDK"},
		{"github.com/containerd/errdefs", "the Docker SDK"},
		{"github.com/nswire/nswire/control/dockerengine", "the Docker SDK"},
		{"github.com/containernetworking/plugins/", "iptables and nftables libraries"},
		{"github.com/coreos/go-iptables", "iptables and nftables libraries"},
		{"sigs.k8s.io/knftables", "iptables and nftables libraries"},
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f.prefix) {
				t.Errorf("nswire-cni links %s (%s)", pkg, f.what)
			}
		}
	}
}
