package control

import (
	"strings"

	"github.com/nswire/nswire/control/state"
)

// CNIInfo is the identity of a CNI attachment (state.CNIInfo).
type CNIInfo = state.CNIInfo

// CNIRecordID is the record ID of a CNI attachment: "cni:" + container ID +
// "/" + interface name (one container may have several interfaces).
func CNIRecordID(containerID, ifName string) string {
	return "cni:" + containerID + "/" + ifName
}

// CNIDisplayName is the name `nswire ls` and the metrics show for a CNI
// attachment: "namespace/pod" when the runtime named the pod, else the
// first 12 characters of the container ID, with ":ifname" for any interface
// but eth0.
func CNIDisplayName(c *CNIInfo) string {
	var b strings.Builder
	switch {
	case c.PodName != "" && c.PodNamespace != "":
		b.WriteString(c.PodNamespace + "/" + c.PodName)
	case c.PodName != "":
		b.WriteString(c.PodName)
	case len(c.ContainerID) > 12:
		b.WriteString(c.ContainerID[:12])
	default:
		b.WriteString(c.ContainerID)
	}
	if c.IfName != "eth0" {
		b.WriteString(":" + c.IfName)
	}
	return b.String()
}
