// Command nswire-cni is nswire's CNI plugin: install it as /opt/cni/bin/nswire
// and name it with "type": "nswire" in a network configuration. It is a
// binary of its own, apart from the nswire CLI, so that each ADD and DEL
// (one process per call) starts without the CLI's cobra, Prometheus,
// plotting and TUI packages: smaller, and faster to start.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/nswire/nswire/control/cni"
)

var buildVersion = "dev" // set with -ldflags -X main.buildVersion=…

func main() {
	skel.PluginMainFuncs(cni.Funcs(), version.PluginSupports(cni.SupportedVersions...), "nswire CNI plugin "+buildVersion)
}
