//go:build linux

// CNI plugin tests with real clients: cnitool v1.3.1 and libcni (what
// containerd and Podman link), the reference host-local IPAM plugin and,
// for chaining, the reference bridge plugin v1.10.0.
package test

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/dockerengine"
	"github.com/nswire/nswire/control/metrics"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/test/testenv"
)

var (
	cniPluginOnce sync.Once
	cniPluginBin  string
	cniPluginErr  error
)

// cniPlugin builds cmd/nswire-cni once, next to the nswire binary TestMain
// built (and removes); $NSWIRE_CNI_PLUGIN names a prebuilt one instead
// (e.g. to benchmark another build).
func cniPlugin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("NSWIRE_CNI_PLUGIN"); p != "" {
		return p
	}
	cniPluginOnce.Do(func() {
		cniPluginBin = filepath.Join(filepath.Dir(nswireBin), "nswire-cni")
		build := exec.Command("go", "build", "-o", cniPluginBin, "../cmd/nswire-cni")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			cniPluginErr = fmt.Errorf("build nswire-cni: %v: %s", err, out)
		}
	})
	if cniPluginErr != nil {
		t.Fatal(cniPluginErr)
	}
	return cniPluginBin
}

// cniTest is a CNINet with the standalone nswire conflist written.
func cniTest(t *testing.T, extra map[string]any) *testenv.CNINet {
	t.Helper()
	n := testenv.NewCNINet(t, cniPlugin(t))
	n.WriteConflist(t, n.NswireConf(extra))
	return n
}

// newCNINetns makes a named netns for cnitool (which takes a path) and
// returns its path.
func newCNINetns(t testing.TB) (string, netns.NsHandle) {
	t.Helper()
	name := "nswcni-" + strings.ToLower(testenv.ContainerName("n"))
	if len(name) > 40 {
		name = name[:40]
	}
	ns := testenv.NewNamedNetNS(t, name)
	return filepath.Join("/run/netns", name), ns
}

func cnitoolID(path string) string {
	// cnitool's container ID: "cnitool-" + hex of the first 10 bytes of
	// sha512(netns path).
	return control.CNIRecordID(cnitoolContainerID(path), "eth0")
}

func parseResult(t *testing.T, out string) *current.Result {
	t.Helper()
	var r current.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("decode result %q: %v", out, err)
	}
	return &r
}

// cniRecords lists nswire's records in the network's state dir.
func cniRecords(t testing.TB, n *testenv.CNINet) []*state.Record {
	t.Helper()
	recs, bad, err := state.Store{Dir: n.StateDir}.List()
	if err != nil || len(bad) > 0 {
		t.Fatalf("list records: %v (corrupt: %v)", err, bad)
	}
	return recs
}

// nothingLeft checks that the network holds no record, lease, veth, link pin
// or eth0 in the namespaces given.
func nothingLeft(t *testing.T, n *testenv.CNINet, nss ...netns.NsHandle) {
	t.Helper()
	if r := cniRecords(t, n); len(r) != 0 {
		t.Errorf("records left: %v", r[0].ID)
	}
	if l := n.Leases(t); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
	if v := n.HostVeths(t); len(v) != 0 {
		t.Errorf("veths left: %v", v)
	}
	if p := n.LinkPins(t); len(p) != 0 {
		t.Errorf("link pins left: %v", p)
	}
	for _, ns := range nss {
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.LinkByName("eth0"); err == nil {
			t.Errorf("eth0 left in the namespace")
		}
		h.Close()
	}
}

func eth0Addrs(t *testing.T, ns netns.NsHandle) []string {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatalf("no eth0: %v", err)
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.IPNet.String())
	}
	return out
}

// TestCNIStandalone: VERSION, ADD, CHECK, DEL, DEL again through cnitool and
// the plugin itself; the container gets the lease's address and a default
// route via the bridge, which nswire creates with the gateway address.
func TestCNIStandalone(t *testing.T) {
	n := cniTest(t, nil)
	path, ns := newCNINetns(t)

	out, err := n.ExecPlugin("nswire", []string{"CNI_COMMAND=VERSION"}, []byte(`{"cniVersion":"1.1.0"}`))
	if err != nil {
		t.Fatalf("VERSION: %v %s", err, out)
	}
	var vi struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal([]byte(out), &vi); err != nil || strings.Join(vi.SupportedVersions, ",") != "1.0.0,1.1.0" {
		t.Fatalf("VERSION said %s (%v)", out, err)
	}

	env := []string{"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=web-1"}
	out, err = n.Cnitool(env, "add", n.Name, path)
	if err != nil {
		t.Fatal(err)
	}
	res := parseResult(t, out)
	if res.CNIVersion != "1.1.0" {
		t.Errorf("result version %s, want 1.1.0 (cnitool 1.3.1 picks it from cniVersions)", res.CNIVersion)
	}
	want := n.Prefix + "2/24" // host-local's first address
	if len(res.IPs) != 1 || res.IPs[0].Address.String() != want || res.IPs[0].Gateway.String() != n.Gateway {
		t.Fatalf("result IPs %+v, want %s via %s", res.IPs, want, n.Gateway)
	}
	if len(res.Interfaces) != 3 || res.Interfaces[0].Name != n.Bridge || res.Interfaces[2].Name != "eth0" ||
		res.Interfaces[2].Sandbox != path || *res.IPs[0].Interface != 2 {
		t.Fatalf("result interfaces %s", out)
	}
	if got := eth0Addrs(t, ns); strings.Join(got, ",") != want {
		t.Errorf("eth0 has %v, want %s", got, want)
	}
	if l := n.Leases(t); strings.Join(l, ",") != n.Prefix+"2" {
		t.Errorf("leases %v", l)
	}
	br, nets := bridgeAddrs(t, n.Bridge)
	if br == nil || strings.Join(nets, ",") != n.Gateway+"/24" {
		t.Errorf("bridge %s has %v, want %s/24", n.Bridge, nets, n.Gateway)
	}
	recs := cniRecords(t, n)
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if r.ID != cnitoolID(path) || r.Kind != "cni" || r.Name != "team-a/web-1" || r.CNI == nil ||
		r.CNI.PodNamespace != "team-a" || r.CNI.PodName != "web-1" || r.CNI.Network != n.Name || r.Address.String() != want || r.Mode != "observe" {
		t.Errorf("record %+v cni %+v", r, r.CNI)
	}
	if !r.Hook.Installed() {
		t.Errorf("record hook %q: no program installed", r.Hook)
	}
	if r.HostIf != res.Interfaces[1].Name || r.MAC.String() != res.Interfaces[2].Mac {
		t.Errorf("record %s/%s, result %s/%s", r.HostIf, r.MAC, res.Interfaces[1].Name, res.Interfaces[2].Mac)
	}
	// nswire ls shows it, with the pod.
	ls, err := exec.Command(nswireBin, "ls", "--state-dir", n.StateDir, "--pin-dir", n.PinDir).CombinedOutput()
	if err != nil || !strings.Contains(string(ls), "team-a/web-1") || !strings.Contains(string(ls), want) {
		t.Errorf("nswire ls: %v\n%s", err, ls)
	}
	// Traffic to the gateway (an address this test made) is counted, exactly.
	if out, err := exec.Command("ip", "netns", "exec", filepath.Base(path), "busybox", "ping", "-c", "2", "-W", "2", n.Gateway).CombinedOutput(); err != nil {
		t.Errorf("ping the gateway: %v\n%s", err, out)
	}
	st, err := exec.Command(nswireBin, "stats", "-o", "json", "--state-dir", n.StateDir, "--pin-dir", n.PinDir).Output()
	var stats []control.EndpointStats
	if err != nil || json.Unmarshal(st, &stats) != nil || len(stats) != 1 {
		t.Fatalf("nswire stats: %v\n%s", err, st)
	}
	if tx, rx := stats[0].TXByProto["ipv4/icmp"], stats[0].RXByProto["ipv4/icmp"]; tx.Packets != 2 || rx.Packets != 2 || stats[0].Name != "team-a/web-1" {
		t.Errorf("stats of %s: icmp tx %d rx %d packets, want 2 and 2", stats[0].Name, tx.Packets, rx.Packets)
	}

	// /metrics labels the endpoint with the container ID and the pod.
	m, err := control.NewManager(control.Config{StateDir: n.StateDir, PinDir: n.PinDir, NewEngine: dockerengine.New})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.NewCollector(m))
	mfs, err := reg.Gather()
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	for _, mf := range mfs {
		if mf.GetName() == "nswire_endpoint_info" && len(mf.Metric) == 1 {
			for _, lp := range mf.Metric[0].Label {
				labels[lp.GetName()] = lp.GetValue()
			}
		}
	}
	if labels["cni_container_id"] != cnitoolContainerID(path) || labels["pod_namespace"] != "team-a" || labels["pod_name"] != "web-1" || labels["container"] != "team-a/web-1" {
		t.Errorf("nswire_endpoint_info labels %v", labels)
	}

	if _, err := n.Cnitool(nil, "check", n.Name, path); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if _, err := n.Cnitool(nil, "status", n.Name, path); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	if _, err := n.Cnitool(nil, "del", n.Name, path); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	nothingLeft(t, n, ns)
	if _, err := n.Cnitool(nil, "del", n.Name, path); err != nil {
		t.Fatalf("second DEL: %v", err)
	}
	nothingLeft(t, n, ns)
}

func bridgeAddrs(t *testing.T, name string) (netlink.Link, []string) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, nil
	}
	addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
	var out []string
	for _, a := range addrs {
		out = append(out, a.IPNet.String())
	}
	return l, out
}

// TestCNIAddTwice: a second ADD of the same container and interface
// changes nothing and returns the same address; one lease, one record.
func TestCNIAddTwice(t *testing.T) {
	n := cniTest(t, nil)
	path, ns := newCNINetns(t)
	out1, err := n.Cnitool(nil, "add", n.Name, path)
	if err != nil {
		t.Fatal(err)
	}
	out2, err := n.Cnitool(nil, "add", n.Name, path)
	if err != nil {
		t.Fatal(err)
	}
	r1, r2 := parseResult(t, out1), parseResult(t, out2)
	if r1.IPs[0].Address.String() != r2.IPs[0].Address.String() || r1.Interfaces[1].Name != r2.Interfaces[1].Name {
		t.Errorf("second ADD gave %s on %s, first %s on %s", r2.IPs[0].Address.String(), r2.Interfaces[1].Name, r1.IPs[0].Address.String(), r1.Interfaces[1].Name)
	}
	if l := n.Leases(t); len(l) != 1 {
		t.Errorf("leases %v, want one", l)
	}
	if got := eth0Addrs(t, ns); len(got) != 1 {
		t.Errorf("eth0 has %v", got)
	}
	if _, err := n.Cnitool(nil, "check", n.Name, path); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if _, err := n.Cnitool(nil, "del", n.Name, path); err != nil {
		t.Fatal(err)
	}
	nothingLeft(t, n, ns)
}

// libcniNet loads the network's conflist for libcni with a private cache.
func libcniNet(t *testing.T, n *testenv.CNINet) (*libcni.CNIConfig, *libcni.NetworkConfigList) {
	t.Helper()
	list, err := libcni.LoadNetworkConf(n.ConfDir, n.Name)
	if err != nil {
		t.Fatal(err)
	}
	return libcni.NewCNIConfigWithCacheDir([]string{n.BinDir}, n.CacheDir, nil), list
}

// TestCNIDelWithoutNetns: DEL without CNI_NETNS (as containerd sends it
// after the task is gone) removes everything and releases the lease.
func TestCNIDelWithoutNetns(t *testing.T) {
	n := cniTest(t, nil)
	path, ns := newCNINetns(t)
	c, list := libcniNet(t, n)
	rt := &libcni.RuntimeConf{ContainerID: "nowns-" + strings.ToLower(testenv.ContainerName("c")), NetNS: path, IfName: "eth0"}
	if _, err := c.AddNetworkList(context.Background(), list, rt); err != nil {
		t.Fatal(err)
	}
	if len(cniRecords(t, n)) != 1 || len(n.Leases(t)) != 1 {
		t.Fatal("ADD left no record or lease")
	}
	rt.NetNS = ""
	if err := c.DelNetworkList(context.Background(), list, rt); err != nil {
		t.Fatalf("DEL without netns: %v", err)
	}
	nothingLeft(t, n, ns)
	if err := c.DelNetworkList(context.Background(), list, rt); err != nil {
		t.Fatalf("second DEL without netns: %v", err)
	}
}

// TestCNIDelAfterNetnsGone: the namespace is deleted first (the container
// died); DEL still removes the host side, the record and the lease.
func TestCNIDelAfterNetnsGone(t *testing.T) {
	n := cniTest(t, nil)
	path, ns := newCNINetns(t)
	if _, err := n.Cnitool(nil, "add", n.Name, path); err != nil {
		t.Fatal(err)
	}
	hostIf := cniRecords(t, n)[0].HostIf
	ns.Close()
	if err := netns.DeleteNamed(filepath.Base(path)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Cnitool(nil, "del", n.Name, path); err != nil {
		t.Fatalf("DEL after the netns is gone: %v", err)
	}
	nothingLeft(t, n)
	if _, err := netlink.LinkByName(hostIf); err == nil {
		t.Errorf("host veth %s left", hostIf)
	}
}

// cniAddSteps is the number of steps of a standalone ADD: ipam, bridge,
// veth, master, host-up, rename, no-ra, up, address, route, datapath, record.
const cniAddSteps = 12

// TestCNIRollback: a fault injected after each step of ADD leaves nothing:
// no record, lease, veth, link pin, container interface, nor the bridge the
// ADD created; the error is the spec's JSON with code 999.
func TestCNIRollback(t *testing.T) {
	n := cniTest(t, nil)
	conf, err := os.ReadFile(filepath.Join(n.ConfDir, "10-"+n.Name+".conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var list map[string]any
	json.Unmarshal(conf, &list)
	plugin := list["plugins"].([]any)[0].(map[string]any)
	plugin["cniVersion"], plugin["name"] = "1.1.0", n.Name
	single, _ := json.Marshal(plugin)
	path, ns := newCNINetns(t)
	for k := 1; k <= cniAddSteps+1; k++ {
		env := []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=rollback", "CNI_NETNS=" + path, "CNI_IFNAME=eth0",
			fmt.Sprintf("NSWIRE_FAIL_AFTER_STEP=%d", k)}
		out, err := n.ExecPlugin("nswire", env, single)
		if k == cniAddSteps+1 { // past the last step: no fault, a normal ADD
			if err != nil {
				t.Fatalf("ADD without a fault: %v %s", err, out)
			}
			break
		}
		var e types.Error
		if err == nil || json.Unmarshal([]byte(out), &e) != nil || e.Code != types.ErrInternal || !strings.Contains(e.Details, "injected fault") {
			t.Fatalf("fault after step %d: err %v, output %s", k, err, out)
		}
		nothingLeft(t, n, ns)
		if l, _ := bridgeAddrs(t, n.Bridge); l != nil {
			t.Errorf("fault after step %d: bridge %s left", k, n.Bridge)
		}
	}
	env := []string{"CNI_COMMAND=DEL", "CNI_CONTAINERID=rollback", "CNI_IFNAME=eth0"}
	if out, err := n.ExecPlugin("nswire", env, single); err != nil {
		t.Fatalf("DEL: %v %s", err, out)
	}
	nothingLeft(t, n, ns)
}

// TestCNIParallelAdd: 20 ADDs at once get 20 distinct addresses; 20 DELs
// at once leave nothing.
func TestCNIParallelAdd(t *testing.T) {
	n := cniTest(t, nil)
	const N = 20
	paths := make([]string, N)
	nss := make([]netns.NsHandle, N)
	for i := range paths {
		paths[i], nss[i] = newCNINetns(t)
	}
	var wg sync.WaitGroup
	outs, errs := make([]string, N), make([]error, N)
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = n.Cnitool(nil, "add", n.Name, paths[i])
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range outs {
		if errs[i] != nil {
			t.Fatalf("ADD %d: %v", i, errs[i])
		}
		a := parseResult(t, outs[i]).IPs[0].Address.String()
		if seen[a] {
			t.Errorf("address %s given twice", a)
		}
		seen[a] = true
		if got := eth0Addrs(t, nss[i]); len(got) != 1 || got[0] != a {
			t.Errorf("netns %d has %v, result says %s", i, got, a)
		}
	}
	if len(cniRecords(t, n)) != N || len(n.Leases(t)) != N || len(n.HostVeths(t)) != N {
		t.Errorf("%d records, %d leases, %d veths; want %d each", len(cniRecords(t, n)), len(n.Leases(t)), len(n.HostVeths(t)), N)
	}
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = n.Cnitool(nil, "del", n.Name, paths[i])
		}()
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil {
			t.Errorf("DEL %d: %v", i, errs[i])
		}
	}
	nothingLeft(t, n, nss...)
}

// TestCNIGC: GC with cni.dev/valid-attachments (through libcni) removes
// the attachments not listed, with their leases, and keeps the listed one.
func TestCNIGC(t *testing.T) {
	n := cniTest(t, nil)
	c, list := libcniNet(t, n)
	var rts []*libcni.RuntimeConf
	for i := 0; i < 3; i++ {
		path, _ := newCNINetns(t)
		rt := &libcni.RuntimeConf{ContainerID: fmt.Sprintf("gc-%d", i), NetNS: path, IfName: "eth0"}
		if _, err := c.AddNetworkList(context.Background(), list, rt); err != nil {
			t.Fatal(err)
		}
		rts = append(rts, rt)
	}
	keep := cniRecords(t, n)
	var kept *state.Record
	for _, r := range keep {
		if r.ID == control.CNIRecordID("gc-1", "eth0") {
			kept = r
		}
	}
	if kept == nil {
		t.Fatal("no record of gc-1")
	}
	err := c.GCNetworkList(context.Background(), list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: "gc-1", IfName: "eth0"}}})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	recs := cniRecords(t, n)
	if len(recs) != 1 || recs[0].ID != kept.ID {
		t.Errorf("after GC: %d records", len(recs))
	}
	if l := n.Leases(t); len(l) != 1 || l[0] != kept.IP().String() {
		t.Errorf("after GC: leases %v, want only %s", l, kept.IP())
	}
	if v := n.HostVeths(t); len(v) != 1 || v[0] != kept.HostIf {
		t.Errorf("after GC: veths %v, want only %s", v, kept.HostIf)
	}
	if err := c.DelNetworkList(context.Background(), list, rts[1]); err != nil {
		t.Fatal(err)
	}
	nothingLeft(t, n)
}

// TestCNICheckAfterAddressChange: CHECK passes on a fresh attachment and
// fails, naming the address, once someone replaced the container's
// address; DEL still cleans up.
func TestCNICheckAfterAddressChange(t *testing.T) {
	n := cniTest(t, nil)
	path, ns := newCNINetns(t)
	out, err := n.Cnitool(nil, "add", n.Name, path)
	if err != nil {
		t.Fatal(err)
	}
	a := parseResult(t, out).IPs[0].Address
	if _, err := n.Cnitool(nil, "check", n.Name, path); err != nil {
		t.Fatalf("CHECK of a fresh attachment: %v", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrDel(l, &netlink.Addr{IPNet: &a}); err != nil {
		t.Fatal(err)
	}
	other := &net.IPNet{IP: net.ParseIP(n.Prefix + "200").To4(), Mask: a.Mask}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: other}); err != nil {
		t.Fatal(err)
	}
	_, err = n.Cnitool(nil, "check", n.Name, path)
	if err == nil || !strings.Contains(err.Error(), a.String()) {
		t.Fatalf("CHECK after the address changed: %v (want an error naming %s)", err, a.String())
	}
	if _, err := n.Cnitool(nil, "del", n.Name, path); err != nil {
		t.Fatal(err)
	}
	nothingLeft(t, n, ns)
}

// TestCNIBadConfig: a configuration nswire refuses is the spec's error 7.
func TestCNIBadConfig(t *testing.T) {
	n := testenv.NewCNINet(t, cniPlugin(t))
	path, _ := newCNINetns(t)
	conf, _ := json.Marshal(n.NswireConf(map[string]any{"cniVersion": "1.0.0", "name": n.Name, "mode": "bogus"}))
	out, err := n.ExecPlugin("nswire", []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=bad", "CNI_NETNS=" + path, "CNI_IFNAME=eth0"}, conf)
	var e types.Error
	if err == nil || json.Unmarshal([]byte(out), &e) != nil || e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Details, "bogus") {
		t.Fatalf("ADD with mode bogus: err %v, output %s", err, out)
	}
	if l := n.Leases(t); len(l) != 0 {
		t.Errorf("leases %v", l)
	}
}

// TestCNIErrorCodes: STATUS with an IPAM plugin that is not installed is
// error 50 (plugin not available); CHECK of a container nswire never
// attached is error 3 (unknown container).
func TestCNIErrorCodes(t *testing.T) {
	n := testenv.NewCNINet(t, cniPlugin(t))
	path, _ := newCNINetns(t)
	ipam := n.IPAM()
	ipam["type"] = "no-such-ipam"
	conf, _ := json.Marshal(n.NswireConf(map[string]any{"cniVersion": "1.1.0", "name": n.Name, "ipam": ipam}))
	out, err := n.ExecPlugin("nswire", []string{"CNI_COMMAND=STATUS"}, conf)
	var e types.Error
	if err == nil || json.Unmarshal([]byte(out), &e) != nil || e.Code != types.ErrPluginNotAvailable {
		t.Errorf("STATUS without the IPAM plugin: err %v, output %s", err, out)
	}
	conf, _ = json.Marshal(n.NswireConf(map[string]any{"cniVersion": "1.1.0", "name": n.Name,
		"prevResult": map[string]any{"cniVersion": "1.1.0", "interfaces": []any{map[string]any{"name": "eth0", "sandbox": path}}}}))
	out, err = n.ExecPlugin("nswire", []string{"CNI_COMMAND=CHECK", "CNI_CONTAINERID=never", "CNI_NETNS=" + path, "CNI_IFNAME=eth0"}, conf)
	e = types.Error{}
	if err == nil || json.Unmarshal([]byte(out), &e) != nil || e.Code != types.ErrUnknownContainer {
		t.Errorf("CHECK of an unknown container: err %v, output %s", err, out)
	}
}

// TestCNIChainedObserve: after the reference bridge plugin, chained nswire
// counts the bridge plugin's veth, passes prevResult on unchanged, and its
// DEL removes only its counters (the bridge plugin removes the veth).
func TestCNIChainedObserve(t *testing.T) {
	n := testenv.NewCNINet(t, cniPlugin(t))
	n.WriteConflist(t,
		map[string]any{"type": "bridge", "bridge": n.Bridge, "isGateway": true, "ipMasq": false, "ipam": n.IPAM()},
		map[string]any{"type": "nswire", "mode": "observe", "stateDir": n.StateDir, "pinDir": n.PinDir},
	)
	path, ns := newCNINetns(t)
	out, err := n.Cnitool([]string{"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p1"}, "add", n.Name, path)
	if err != nil {
		t.Fatal(err)
	}
	res := parseResult(t, out)
	var hostIf string
	for _, in := range res.Interfaces {
		if in.Sandbox == "" && in.Name != n.Bridge {
			hostIf = in.Name
		}
	}
	if hostIf == "" || len(res.IPs) != 1 {
		t.Fatalf("bridge plugin result %s", out)
	}
	recs := cniRecords(t, n)
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if !r.Observed || r.HostIf != hostIf || r.ID != cnitoolID(path) || r.Name != "ns1/p1" || r.Address.String() != res.IPs[0].Address.String() || r.Bridge != n.Bridge {
		t.Errorf("record %+v, want observed %s with %s", r, hostIf, res.IPs[0].Address.String())
	}
	if !r.Hook.Installed() {
		t.Errorf("hook %q", r.Hook)
	}
	if _, err := n.Cnitool(nil, "check", n.Name, path); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	// Counted exactly, and guarded with prevResult's address: packets from
	// another source address are dropped and counted as src-ipv4.
	nsName := filepath.Base(path)
	if out, err := exec.Command("ip", "netns", "exec", nsName, "busybox", "ping", "-c", "2", "-W", "2", n.Gateway).CombinedOutput(); err != nil {
		t.Fatalf("ping the gateway: %v\n%s", err, out)
	}
	spoof := n.Prefix + "250"
	if out, err := exec.Command("ip", "netns", "exec", nsName, "ip", "addr", "add", spoof+"/32", "dev", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("add %s: %v %s", spoof, err, out)
	}
	if out, err := exec.Command("ip", "netns", "exec", nsName, "busybox", "ping", "-c", "2", "-W", "1", "-I", spoof, n.Gateway).CombinedOutput(); err == nil {
		t.Errorf("ping from the spoofed %s got through:\n%s", spoof, out)
	}
	st := statsByName(t, n)["ns1/p1"]
	if st.TXByProto["ipv4/icmp"].Packets != 2 || st.RXByProto["ipv4/icmp"].Packets != 2 || st.Drops["src-ipv4"] != 2 {
		t.Errorf("chained counts: icmp tx %d rx %d, src-ipv4 drops %d; want 2, 2, 2", st.TXByProto["ipv4/icmp"].Packets, st.RXByProto["ipv4/icmp"].Packets, st.Drops["src-ipv4"])
	}
	// nswire's DEL alone (the bridge plugin's not run): the veth stays.
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": n.Name, "type": "nswire", "stateDir": n.StateDir, "pinDir": n.PinDir})
	if out, err := n.ExecPlugin("nswire", []string{"CNI_COMMAND=DEL", "CNI_CONTAINERID=" + cnitoolContainerID(path), "CNI_IFNAME=eth0"}, conf); err != nil {
		t.Fatalf("nswire DEL: %v %s", err, out)
	}
	if len(cniRecords(t, n)) != 0 || len(n.LinkPins(t)) != 0 {
		t.Errorf("nswire DEL left its record or pins")
	}
	if _, err := netlink.LinkByName(hostIf); err != nil {
		t.Errorf("nswire DEL removed the bridge plugin's veth %s", hostIf)
	}
	if _, err := n.Cnitool(nil, "del", n.Name, path); err != nil {
		t.Fatal(err)
	}
	nothingLeft(t, n, ns)
}

// cnitoolContainerID is the container ID cnitool gives the namespace at
// path: "cnitool-" + hex of the first 10 bytes of sha512(path).
func cnitoolContainerID(path string) string {
	s := sha512.Sum512([]byte(path))
	return fmt.Sprintf("cnitool-%x", s[:10])
}
