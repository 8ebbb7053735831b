package state

// KindCNI is the kind of a record made by the CNI plugin.
const KindCNI = "cni"

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
