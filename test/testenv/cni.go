//go:build linux

package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// DefaultCNITools is where test/setup.sh installs the real CNI clients and
// reference plugins the CNI tests use: cnitool v1.3.1 and, from
// containernetworking/plugins v1.10.0, host-local and bridge.
const DefaultCNITools = "/opt/nswire-test/cni"

// CNITools returns the directory of cnitool, host-local and bridge
// ($NSWIRE_CNI_TOOLS or DefaultCNITools); when one is missing the test skips
// (fails in CI).
func CNITools(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("NSWIRE_CNI_TOOLS")
	if dir == "" {
		dir = DefaultCNITools
	}
	for _, name := range []string{"cnitool", "host-local", "bridge"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			Unavailable(t, "CNI tool %s not in %s (run test/setup.sh)", name, dir)
		}
	}
	return dir
}

// CNINet is one test's private CNI setup: a plugin dir holding nswire's
// plugin (as "nswire"), host-local and bridge; a conflist dir; the IPAM
// data, nswire state and libcni cache dirs; a unique pin dir, bridge name
// and /24 subnet. Cleanup removes every attachment left in the state dir,
// the bridge and the pin dir.
type CNINet struct {
	Name     string // network name
	Bridge   string
	Subnet   string // e.g. 10.97.12.0/24
	Gateway  string // e.g. 10.97.12.1
	Prefix   string // e.g. 10.97.12.
	Dir      string
	BinDir   string
	ConfDir  string
	IPAMDir  string
	StateDir string
	CacheDir string
	PinDir   string
	Tools    string
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NewCNINet prepares a CNINet around the plugin binary at plugin.
func NewCNINet(t testing.TB, plugin string) *CNINet {
	t.Helper()
	RequireRoot(t)
	tools := CNITools(t)
	r := randHex(4)
	var third [1]byte
	rand.Read(third[:])
	n := &CNINet{
		Name: "nswcni-" + r, Bridge: "nswc" + r[:6], Dir: t.TempDir(), Tools: tools,
		PinDir: "/sys/fs/bpf/nswire-test-cni-" + r,
	}
	n.Prefix = fmt.Sprintf("10.97.%d.", third[0])
	n.Subnet, n.Gateway = n.Prefix+"0/24", n.Prefix+"1"
	n.BinDir, n.ConfDir = filepath.Join(n.Dir, "bin"), filepath.Join(n.Dir, "net.d")
	n.IPAMDir, n.StateDir, n.CacheDir = filepath.Join(n.Dir, "ipam"), filepath.Join(n.Dir, "state"), filepath.Join(n.Dir, "cache")
	for _, d := range []string{n.BinDir, n.ConfDir, n.IPAMDir, n.CacheDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, plugin, filepath.Join(n.BinDir, "nswire"))
	for _, name := range []string{"host-local", "bridge"} {
		copyFile(t, filepath.Join(tools, name), filepath.Join(n.BinDir, name))
	}
	t.Cleanup(func() { n.cleanup(t) })
	return n
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, data, 0o755)
	}
	if err != nil {
		t.Fatalf("copy %s: %v", from, err)
	}
}

func (n *CNINet) cleanup(t testing.TB) {
	// Whatever a failing test left: nswire's veths of this state dir (their
	// peers go with them), the bridge, the pin dir (and with it the pinned
	// links and maps).
	links, _ := netlink.LinkList()
	for _, l := range links {
		if l.Type() == "veth" && strings.HasSuffix(l.Attrs().Alias, n.StateDir) {
			netlink.LinkDel(l)
		}
	}
	if l, err := netlink.LinkByName(n.Bridge); err == nil {
		netlink.LinkDel(l)
	}
	os.RemoveAll(n.PinDir)
}

// NswireConf is the standalone nswire plugin configuration of this network
// (host-local on Subnet), with extra keys merged in.
func (n *CNINet) NswireConf(extra map[string]any) map[string]any {
	c := map[string]any{
		"type": "nswire", "bridge": n.Bridge, "isGateway": true, "mode": "observe",
		"stateDir": n.StateDir, "pinDir": n.PinDir,
		"ipam": n.IPAM(),
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// IPAM is the host-local configuration of this network.
func (n *CNINet) IPAM() map[string]any {
	return map[string]any{
		"type": "host-local", "dataDir": n.IPAMDir,
		"ranges": []any{[]any{map[string]any{"subnet": n.Subnet, "gateway": n.Gateway}}},
	}
}

// WriteConflist writes the network's conflist with these plugins, as
// "cniVersion": "1.0.0" with "cniVersions": ["1.0.0", "1.1.0"] (libcni >= 1.2
// picks 1.1.0, older ones 1.0.0), and returns its path.
func (n *CNINet) WriteConflist(t testing.TB, plugins ...map[string]any) string {
	t.Helper()
	data, err := json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0", "cniVersions": []string{"1.0.0", "1.1.0"}, "name": n.Name, "plugins": plugins,
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(n.ConfDir, "10-"+n.Name+".conflist")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Cnitool runs `cnitool ARGS...` on this network's dirs with extra
// environment (e.g. CNI_ARGS=...), returning stdout and the error (with
// stderr) if it failed.
func (n *CNINet) Cnitool(env []string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(n.Tools, "cnitool"), args...)
	cmd.Env = append(os.Environ(), "NETCONFPATH="+n.ConfDir, "CNI_PATH="+n.BinDir)
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("cnitool %s: %v: %s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// ExecPlugin runs the plugin called name in BinDir directly, as a runtime
// would: CNI_COMMAND and the other variables from env, conf on stdin. It
// returns stdout and the exit error.
func (n *CNINet) ExecPlugin(name string, env []string, conf []byte) (string, error) {
	cmd := exec.Command(filepath.Join(n.BinDir, name))
	cmd.Env = append([]string{"CNI_PATH=" + n.BinDir, "PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdin = bytes.NewReader(conf)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	return out.String(), err
}

// Leases lists the addresses host-local holds for this network.
func (n *CNINet) Leases(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.IPAMDir, n.Name))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if name := e.Name(); name != "lock" && !strings.HasPrefix(name, "last_reserved_ip") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// HostVeths lists the host links whose names start with prefix and whose
// master is this network's bridge, or, for prefix "nsw", nswire veths
// tagged with this network's state dir.
func (n *CNINet) HostVeths(t testing.TB) []string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var br int
	if b, err := netlink.LinkByName(n.Bridge); err == nil {
		br = b.Attrs().Index
	}
	var out []string
	for _, l := range links {
		a := l.Attrs()
		if l.Type() == "veth" && ((br != 0 && a.MasterIndex == br) || strings.HasSuffix(a.Alias, n.StateDir)) {
			out = append(out, a.Name)
		}
	}
	sort.Strings(out)
	return out
}

// LinkPins lists the per-link pin dirs under the network's pin dir.
func (n *CNINet) LinkPins(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.PinDir, "links"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// BusyboxRootfs makes a minimal root filesystem under dir (/bin/busybox
// from busybox-static with sh, sleep, ip, ping, cat links, and the mount
// points a runtime needs) and a tar of it, and returns both paths.
func BusyboxRootfs(t testing.TB, dir string) (rootfs, tarball string) {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		Unavailable(t, "busybox not found (package busybox-static)")
	}
	rootfs = filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, bb, filepath.Join(rootfs, "bin", "busybox"))
	for _, a := range []string{"sh", "sleep", "ip", "ping", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	tarball = filepath.Join(dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", rootfs, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar rootfs: %v: %s", err, out)
	}
	return rootfs, tarball
}
