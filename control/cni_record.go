package control

import "strings"

// CNIInfo is what a record of Kind "cni" keeps of the CNI call that made it:
// the runtime's container ID and interface name (the attachment's identity in
// the CNI spec), the network name, and the Kubernetes pod the runtime named
// in CNI_ARGS, if any.
type CNIInfo struct {
	ContainerID  string `json:"containerID"`
	IfName       string `json:"ifName"`
	Network      string `json:"network,omitempty"`
	PodNamespace string `json:"podNamespace,omitempty"`
	PodName      string `json:"podName,omitempty"`
}

// CNIRecordID is the record ID of a CNI attachment: "cni:" + container ID +
// "/" + interface name (one container may have several interfaces).
func CNIRecordID(containerID, ifName string) string {
	return "cni:" + containerID + "/" + ifName
}

// CNIDisplayName is the name `nswire ls` and the metrics show for a CNI
// attachment: "namespace/pod" when the runtime named the pod, else the
// first 12 characters of the container ID, with "/ifname" for any interface
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
