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
// control/dockerengine, which implements it with the SDK, is the CLI's.
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
	forbidden := []string{
		"github.com/docker/",
		"github.com/distribution/",
		"github.com/opencontainers/",
		"github.com/moby/",
		"github.com/containerd/errdefs",
		"github.com/nswire/nswire/control/dockerengine",
	}
	var bad []string
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				bad = append(bad, pkg)
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("nswire-cni links %d packages of the Docker SDK: %s", len(bad), strings.Join(bad, ", "))
	}
}
