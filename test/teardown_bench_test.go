//go:build linux

package test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/netops"
	"github.com/nswire/nswire/test/testenv"
)

// teardownStep is one kernel operation of a detach, timed on its own.
type teardownStep struct {
	name string
	do   func() error
}

// BenchmarkDetachSteps takes a detach apart: it wires a veth pair (peer in a
// throwaway netns, host end on a test bridge, up) with the datapath attached
// as tcx links or as legacy tc filters, then times each kernel operation of
// the teardown with the same calls control uses (link.LoadPinnedLink,
// Detach, Unpin; tc filter and qdisc deletes; the endpoint map entries;
// RTM_DELLINK). Two orders are compared: "programs-first" (nswire's today:
// detach the programs, then delete the veth) and "device-first" (delete the
// veth with the programs attached, then only unpin the now defunct links),
// plus the veth delete with nothing attached. Rounds interleave both
// rcu_expedited settings, restored at the end.
func BenchmarkDetachSteps(b *testing.B) {
	const rounds = 15
	rcu := testenv.UseRCUExpedited(b)
	ns := testenv.NewNetNS(b)
	h, err := netlink.NewHandle()
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	tag := fmt.Sprintf("%04x", os.Getpid()%0x10000)
	br := "nswtdb" + tag
	brAttrs := netlink.NewLinkAttrs()
	brAttrs.Name = br
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: brAttrs}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { netops.DeleteLink(h, br) })
	brLink, err := h.LinkByName(br)
	if err != nil {
		b.Fatal(err)
	}
	if err := h.LinkSetUp(brLink); err != nil {
		b.Fatal(err)
	}
	pinDir := "/sys/fs/bpf/nswire-test-" + strings.ToLower(testenv.ContainerName("td"))
	dp, err := datapath.OpenDatapath(pinDir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dp.Close(); os.RemoveAll(pinDir) })

	host := "nswtd" + tag
	b.Cleanup(func() { netops.DeleteLink(h, host) })
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0x7d, 0x01}
	ip4 := net.IPv4(10, 219, 0, 2).To4()
	// wire creates the veth, enslaves and ups it, and attaches the datapath
	// in attach mode am ("" for none); it returns the host ifindex.
	wire := func(am datapath.Hook) int {
		v, err := netops.CreateVeth(h, host, "nswtdp"+tag, ns, 1500, mac)
		if err != nil {
			b.Fatal(err)
		}
		if err := h.LinkSetMaster(v, brLink); err != nil {
			b.Fatal(err)
		}
		if err := h.LinkSetUp(v); err != nil {
			b.Fatal(err)
		}
		idx := v.Attrs().Index
		if am != datapath.HookNone {
			ep := datapath.EndpointSpec{HostIfName: host, HostIfindex: idx, MAC: mac, IP4: ip4, Slot: 7}
			if used, err := dp.Install(ep, datapath.Observe, am); err != nil || used != am {
				b.Fatalf("attach %s: used %q, %v", am, used, err)
			}
		}
		return idx
	}
	pin := func(dir string) string { return filepath.Join(dp.LinkPinDir(host), dir) }
	// detachLink is control's unpinLink: detach the pinned link, then unpin.
	detachLink := func(dir string) func() error {
		return func() error {
			l, err := link.LoadPinnedLink(pin(dir), nil)
			if err != nil {
				return err
			}
			defer l.Close()
			if err := l.Detach(); err != nil && !errors.Is(err, unix.ENOLINK) {
				return err
			}
			return l.Unpin()
		}
	}
	// unpinOnly drops the pin of a link whose device is gone.
	unpinOnly := func(dir string) func() error {
		return func() error {
			l, err := link.LoadPinnedLink(pin(dir), nil)
			if err != nil {
				return err
			}
			defer l.Close()
			return l.Unpin()
		}
	}
	rmPinDir := func() error { return os.Remove(dp.LinkPinDir(host)) }
	delEndpoint := func(idx int) func() error {
		return func() error { return dp.Objects().DeleteEndpoint(idx, ip4, nil) }
	}
	delVeth := func() error {
		l, err := h.LinkByName(host)
		if err != nil {
			return err
		}
		return h.LinkDel(l)
	}
	delTC := func(idx int) func() error {
		return func() error {
			for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
				f := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: parent, Handle: 1, Protocol: unix.ETH_P_ALL, Priority: 1}}
				if err := h.FilterDel(f); err != nil {
					return fmt.Errorf("filter del: %w", err)
				}
			}
			q := &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}, QdiscType: "clsact"}
			return h.QdiscDel(q)
		}
	}
	type variant struct {
		name  string
		am    datapath.Hook
		steps func(idx int) []teardownStep
	}
	variants := []variant{
		{"tcx programs-first", datapath.HookTCX, func(idx int) []teardownStep {
			return []teardownStep{{"link-detach ingress", detachLink("ingress")}, {"link-detach egress", detachLink("egress")},
				{"rm pin dir", rmPinDir}, {"endpoint entries", delEndpoint(idx)}, {"veth delete", delVeth}}
		}},
		{"tcx device-first", datapath.HookTCX, func(idx int) []teardownStep {
			return []teardownStep{{"veth delete", delVeth}, {"unpin ingress", unpinOnly("ingress")}, {"unpin egress", unpinOnly("egress")},
				{"rm pin dir", rmPinDir}, {"endpoint entries", delEndpoint(idx)}}
		}},
		{"tc programs-first", datapath.HookTC, func(idx int) []teardownStep {
			return []teardownStep{{"filters+qdisc", delTC(idx)}, {"endpoint entries", delEndpoint(idx)}, {"veth delete", delVeth}}
		}},
		{"tc device-first", datapath.HookTC, func(idx int) []teardownStep {
			return []teardownStep{{"veth delete", delVeth}, {"endpoint entries", delEndpoint(idx)}}
		}},
		{"none", datapath.HookNone, func(int) []teardownStep {
			return []teardownStep{{"veth delete", delVeth}}
		}},
	}
	type cell struct {
		rcu           bool
		variant, step string
	}
	times := map[cell][]time.Duration{}
	settings := []bool{rcu.Original(), !rcu.Original()}
	for r := range rounds {
		for i := range settings {
			on := settings[(i+r)%2]
			rcu.Set(on)
			for _, v := range variants {
				idx := wire(v.am)
				var total time.Duration
				for _, s := range v.steps(idx) {
					t0 := time.Now()
					if err := s.do(); err != nil {
						b.Fatalf("%s: %s: %v", v.name, s.name, err)
					}
					d := time.Since(t0)
					total += d
					times[cell{on, v.name, s.name}] = append(times[cell{on, v.name, s.name}], d)
				}
				times[cell{on, v.name, "TOTAL"}] = append(times[cell{on, v.name, "TOTAL"}], total)
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "teardown steps, medians over %d interleaved rounds\n%-20s %-20s %10s %10s\n", rounds, "variant", "step", "rcu_exp=1", "rcu_exp=0")
	for _, v := range variants {
		for _, s := range append(v.steps(0), teardownStep{name: "TOTAL"}) {
			on, off := median(times[cell{true, v.name, s.name}]), median(times[cell{false, v.name, s.name}])
			fmt.Fprintf(&tbl, "%-20s %-20s %9.2fms %9.2fms\n", v.name, s.name, ms(on), ms(off))
			if s.name == "TOTAL" {
				unit := strings.ReplaceAll(v.name, " ", "-")
				b.ReportMetric(ms(on), "ms/"+unit+"-rcu1")
				b.ReportMetric(ms(off), "ms/"+unit+"-rcu0")
			}
		}
	}
	b.Log("\n" + tbl.String())
}
