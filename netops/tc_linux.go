package netops

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TC filter directions on a clsact qdisc.
const (
	TCIngress = netlink.HANDLE_MIN_INGRESS
	TCEgress  = netlink.HANDLE_MIN_EGRESS
)

func clsact(ifindex int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
}

// AddClsact adds a clsact qdisc to ifindex (`tc qdisc add dev DEV clsact`).
// One already there is success.
func AddClsact(ifindex int) error {
	if err := netlink.QdiscAdd(clsact(ifindex)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add clsact qdisc: %w", err)
	}
	return nil
}

// DelClsact removes the clsact qdisc of ifindex, and with it every filter on
// it (`tc qdisc del dev DEV clsact`). Returns nil if there is none.
func DelClsact(ifindex int) error {
	if err := netlink.QdiscDel(clsact(ifindex)); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("delete clsact qdisc: %w", err)
	}
	return nil
}

// BPFFilter identifies a cls_bpf direct-action filter on a clsact qdisc.
type BPFFilter struct {
	Ifindex  int
	Parent   uint32 // TCIngress or TCEgress
	Priority uint16
	Handle   uint32
	Name     string
}

func (f BPFFilter) netlink(fd int) *netlink.BpfFilter {
	return &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: f.Ifindex,
			Parent:    f.Parent,
			Handle:    f.Handle,
			Protocol:  unix.ETH_P_ALL,
			Priority:  f.Priority,
		},
		Name:         f.Name,
		DirectAction: true,
		Fd:           fd,
	}
}

// ReplaceBPFFilter installs the program progFD as the filter f, or swaps the
// program of an existing f in place (`tc filter replace dev DEV ingress|egress
// prio P handle H bpf da fd FD name NAME`).
func ReplaceBPFFilter(f BPFFilter, progFD int) error {
	if err := netlink.FilterReplace(f.netlink(progFD)); err != nil {
		return fmt.Errorf("replace bpf filter on ifindex %d: %w", f.Ifindex, err)
	}
	return nil
}

// DelBPFFilter deletes the filter f (`tc filter del dev DEV ingress|egress
// prio P handle H bpf`). Returns nil if it is not there.
func DelBPFFilter(f BPFFilter) error {
	if err := netlink.FilterDel(f.netlink(-1)); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete bpf filter: %w", err)
	}
	return nil
}

// FilterCount says which filters a clsact parent holds: how many are like f
// (same priority and handle, a bpf filter whose name starts with f.Name) and
// how many are others (`tc filter show dev DEV ingress|egress`). A device
// without a clsact qdisc has none (ok false, nil error); a device that is gone
// is reported by the error.
func FilterCount(f BPFFilter) (ours, others int, ok bool, err error) {
	l, err := netlink.LinkByIndex(f.Ifindex)
	if err != nil {
		return 0, 0, false, err
	}
	filters, err := retryDump(func() ([]netlink.Filter, error) { return netlink.FilterList(l, f.Parent) })
	if err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return 0, 0, false, nil // no clsact qdisc
		}
		return 0, 0, false, fmt.Errorf("list filters: %w", err)
	}
	for _, x := range filters {
		bf, isBPF := x.(*netlink.BpfFilter)
		if isBPF && bf.Attrs().Priority == f.Priority && bf.Attrs().Handle == f.Handle && strings.HasPrefix(bf.Name, f.Name) {
			ours++
		} else {
			others++
		}
	}
	return ours, others, true, nil
}
