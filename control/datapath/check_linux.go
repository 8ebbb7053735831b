package datapath

import (
	"fmt"

	"github.com/cilium/ebpf/link"
)

// Missing lists what of ep's installation with hook is not in place, each
// as a phrase for a user ("the ingress program (tcx link pin …)"): for tcx
// both link pins, each still attached to ep's device; for legacy tc the
// filters on the device; and the endpoint map entry with ep's slot. An empty
// list means everything is there. It changes nothing and needs only the
// maps (OpenDatapathMaps).
func (d *Datapath) Missing(ep EndpointSpec, hook Hook) []string {
	var miss []string
	switch hook {
	case HookTCX:
		for _, dir := range []string{"ingress", "egress"} {
			pin := d.linkPin(ep.HostIfName, dir)
			if !tcxAttachedTo(pin, ep.HostIfindex) {
				miss = append(miss, fmt.Sprintf("the %s program (tcx link pinned at %s)", dir, pin))
			}
		}
	case HookTC:
		if !tcInstalled(ep.HostIfindex) {
			miss = append(miss, "the tc filters on "+ep.HostIfName)
		}
	}
	switch e, err := d.objs.Endpoint(ep.HostIfindex); {
	case err != nil:
		miss = append(miss, fmt.Sprintf("the endpoint map entry of %s (ifindex %d)", ep.HostIfName, ep.HostIfindex))
	case e.Slot != ep.Slot:
		miss = append(miss, fmt.Sprintf("the endpoint map entry of %s with slot %d (it has %d)", ep.HostIfName, ep.Slot, e.Slot))
	}
	return miss
}

// tcxAttachedTo reports whether the tcx link pinned at pin exists and is
// attached to ifindex.
func tcxAttachedTo(pin string, ifindex int) bool {
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		return false
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return false
	}
	tcx := info.TCX()
	return tcx != nil && int(tcx.Ifindex) == ifindex
}
