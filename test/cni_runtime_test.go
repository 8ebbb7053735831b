//go:build linux

// The CNI plugin under real container runtimes: Podman 4.3 on its CNI
// backend, and containerd 1.6 through `ctr run --cni`, each with private
// storage, state and configuration (nothing of Docker's is touched).
package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/test/testenv"
)

// allowBridgeForward lets packets between ports of bridge through the
// FORWARD chain, which Docker's policy DROP with bridge-nf-call-iptables
// would drop; the rule goes again in cleanup.
func allowBridgeForward(t *testing.T, bridge string) {
	t.Helper()
	if exec.Command("iptables", "-w", "-L", "DOCKER-USER", "-n").Run() != nil {
		return // no Docker chain: nothing drops bridge traffic
	}
	rule := []string{"DOCKER-USER", "-i", bridge, "-o", bridge, "-j", "ACCEPT"}
	if out, err := exec.Command("iptables", append([]string{"-w", "-I"}, rule...)...).CombinedOutput(); err != nil {
		t.Fatalf("iptables: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("iptables", append([]string{"-w", "-D"}, rule...)...).Run() })
}

// statsByName runs `nswire stats -o json` on the network's state.
func statsByName(t *testing.T, n *testenv.CNINet) map[string]control.EndpointStats {
	t.Helper()
	out, err := exec.Command(nswireBin, "stats", "-o", "json", "--state-dir", n.StateDir, "--pin-dir", n.PinDir).Output()
	var stats []control.EndpointStats
	if err != nil || json.Unmarshal(out, &stats) != nil {
		t.Fatalf("nswire stats: %v\n%s", err, out)
	}
	m := map[string]control.EndpointStats{}
	for _, s := range stats {
		m[s.Name] = s
	}
	return m
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return strings.TrimSpace(out.String())
}

// removeIfCreated removes path at the end of the test if it did not exist
// at its start.
func removeIfCreated(t *testing.T, path string) {
	if _, err := os.Lstat(path); err == nil {
		return
	}
	t.Cleanup(func() { os.RemoveAll(path) })
}

// TestCNIPodman: Podman's CNI backend runs nswire from a private plugin
// dir: two containers get addresses, reach each other (counted exactly on
// both sides), and `podman rm` runs DEL, which leaves nothing.
func TestCNIPodman(t *testing.T) {
	podman := testenv.RequireTool(t, "podman")
	removeIfCreated(t, "/var/lib/containers") // Podman's blob-info cache goes there whatever --root says
	n := cniTest(t, nil)
	allowBridgeForward(t, n.Bridge)
	_, tarball := testenv.BusyboxRootfs(t, n.Dir)
	conf := filepath.Join(n.Dir, "containers.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "cni"
cni_plugin_dirs = [%q]
network_config_dir = %q
`, n.BinDir, n.ConfDir)), 0o644)
	base := []string{"--root", filepath.Join(n.Dir, "podman-root"), "--runroot", filepath.Join(n.Dir, "podman-runroot"),
		"--tmpdir", filepath.Join(n.Dir, "podman-tmp"), "--storage-driver", "vfs"}
	P := func(args ...string) *exec.Cmd {
		cmd := exec.Command(podman, append(append([]string{}, base...), args...)...)
		cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+conf)
		return cmd
	}
	p := func(args ...string) string {
		t.Helper()
		out, err := P(args...).CombinedOutput()
		if err != nil {
			t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	t.Cleanup(func() {
		P("rm", "-a", "-f", "-t", "0").Run()
		P("rmi", "-a", "-f").Run()
	})
	if got := p("info", "--format", "{{.Host.NetworkBackend}}"); got != "cni" {
		t.Fatalf("podman network backend %q, want cni", got)
	}
	image := "localhost/nswire-cnitest:1"
	p("import", tarball, image)
	names := []string{"nswc1-" + strings.ToLower(testenv.ContainerName("p"))[:8], "nswc2-" + strings.ToLower(testenv.ContainerName("p"))[:8]}
	ips := map[string]string{}
	for _, name := range names {
		p("run", "-d", "--name", name, "--network", n.Name, image, "/bin/sleep", "300")
		ips[name] = p("inspect", "-f", "{{(index .NetworkSettings.Networks \""+n.Name+"\").IPAddress}}", name)
	}
	if ips[names[0]] == ips[names[1]] || !strings.HasPrefix(ips[names[0]], n.Prefix) || !strings.HasPrefix(ips[names[1]], n.Prefix) {
		t.Fatalf("addresses %v, want two distinct in %s", ips, n.Subnet)
	}
	recs := cniRecords(t, n)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for _, r := range recs {
		if r.CNI == nil || len(r.CNI.ContainerID) != 64 || (r.Name != names[0] && r.Name != names[1]) || ips[r.Name]+"/24" != r.Address.String() {
			t.Errorf("record %s (%s, %s) does not match podman's %v", r.ID, r.Name, r.Address, ips)
		}
	}
	p("exec", names[0], "ping", "-c", "2", "-W", "2", ips[names[1]])
	p("exec", names[1], "ping", "-c", "3", "-W", "2", ips[names[0]])
	st := statsByName(t, n)
	for name, want := range map[string]uint64{names[0]: 5, names[1]: 5} { // 2 requests + 3 replies each way
		s := st[name]
		if s.TXByProto["ipv4/icmp"].Packets != want || s.RXByProto["ipv4/icmp"].Packets != want {
			t.Errorf("%s counted icmp tx %d rx %d, want %d each", name, s.TXByProto["ipv4/icmp"].Packets, s.RXByProto["ipv4/icmp"].Packets, want)
		}
	}
	p("rm", "-f", "-t", "0", names[0], names[1])
	nothingLeft(t, n)
}

// TestCNIContainerd: `ctr run --cni` of a private containerd runs nswire
// (ctr's CNI dirs are fixed: a private mount namespace binds the test's
// dirs over them); the container gets its address, and when the attached
// `ctr run` ends, its DEL (without a namespace) leaves nothing.
func TestCNIContainerd(t *testing.T) {
	containerd := testenv.RequireTool(t, "containerd")
	ctr := testenv.RequireTool(t, "ctr")
	testenv.RequireTool(t, "unshare")
	n := cniTest(t, nil)
	rootfs, _ := testenv.BusyboxRootfs(t, n.Dir)
	// containerd's paths must be short: its socket path is limited to 107 bytes.
	tmp, err := os.MkdirTemp("", "nswctrd-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(tmp, "c.sock")
	cfg := filepath.Join(tmp, "config.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`version = 2
disabled_plugins = ["io.containerd.grpc.v1.cri"]
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %q
`, filepath.Join(tmp, "root"), filepath.Join(tmp, "state"), sock, sock+".ttrpc", filepath.Join(tmp, "opt"))), 0o644)
	d := exec.Command(containerd, "--config", cfg)
	logf, _ := os.Create(filepath.Join(n.Dir, "containerd.log"))
	d.Stdout, d.Stderr = logf, logf
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	ns := "nswtest"
	C := func(args ...string) *exec.Cmd {
		return exec.Command(ctr, append([]string{"-a", sock, "-n", ns}, args...)...)
	}
	t.Cleanup(func() {
		for _, id := range strings.Fields(outOf(C("c", "ls", "-q"))) {
			C("t", "kill", "-s", "SIGKILL", id).Run()
			time.Sleep(100 * time.Millisecond)
			C("t", "rm", "-f", id).Run()
			C("c", "rm", id).Run()
		}
		d.Process.Signal(syscall.SIGTERM)
		d.Wait()
		logf.Close()
		exec.Command("umount", "-R", tmp).Run() // any mounts left under its state
		os.RemoveAll(tmp)
	})
	deadline := time.Now().Add(20 * time.Second)
	for C("version").Run() != nil {
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(n.Dir, "containerd.log"))
			t.Fatalf("containerd did not start:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// ctr reads the first conflist of /etc/cni/net.d and plugins from
	// /opt/cni/bin and /usr/lib/cni: bind the test's dirs over them in a
	// private mount namespace that only this ctr (and its plugins) see.
	script := filepath.Join(n.Dir, "ctr-cni.sh")
	os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\nset -e\nmount --bind %s /etc/cni/net.d\nmount --bind %s /usr/lib/cni\n[ -d /opt/cni/bin ] && mount --bind %s /opt/cni/bin\nexec %s -a %s -n %s \"$@\"\n",
		n.ConfDir, n.BinDir, n.BinDir, ctr, sock, ns)), 0o755)
	for _, dir := range []string{"/etc/cni/net.d", "/usr/lib/cni"} {
		if _, err := os.Stat(dir); err != nil {
			testenv.Unavailable(t, "%s does not exist: ctr's CNI dirs cannot be bound over", dir)
		}
	}
	name := "nswk-" + strings.ToLower(testenv.ContainerName("k"))[:8]
	// Attached, so that ctr itself runs DEL when the task ends.
	runCmd := exec.Command("unshare", "-m", script, "run", "--cni", "--rm", "--rootfs", rootfs, name, "/bin/sleep", "300")
	var runOut bytes.Buffer
	runCmd.Stdout, runCmd.Stderr = &runOut, &runOut
	if err := runCmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- runCmd.Wait() }()
	var pid int
	deadline = time.Now().Add(20 * time.Second)
	for {
		out := outOf(C("t", "ls"))
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == name && f[2] == "RUNNING" {
				pid, _ = strconv.Atoi(f[1])
			}
		}
		if pid != 0 && len(cniRecords(t, n)) == 1 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("ctr run ended: %v\n%s", err, runOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the task did not start with its network:\n%s", runOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := cniRecords(t, n)[0]
	if r.CNI.ContainerID != ns+"-"+name || r.NetnsPath != fmt.Sprintf("/proc/%d/ns/net", pid) || !strings.HasPrefix(r.Address.String(), n.Prefix) {
		t.Errorf("record %s: container %s, netns %s, address %s", r.ID, r.CNI.ContainerID, r.NetnsPath, r.Address)
	}
	addr := mustRun(t, ctr, "-a", sock, "-n", ns, "t", "exec", "--exec-id", "a1", name, "/bin/ip", "-4", "-o", "addr", "show", "eth0")
	if !strings.Contains(addr, r.Address.String()) {
		t.Errorf("eth0 in the task: %s, record %s", addr, r.Address)
	}
	mustRun(t, ctr, "-a", sock, "-n", ns, "t", "exec", "--exec-id", "p1", name, "/bin/ping", "-c", "1", "-W", "2", n.Gateway)
	mustRun(t, ctr, "-a", sock, "-n", ns, "t", "kill", "-s", "SIGKILL", name)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("ctr run did not end after the task was killed:\n%s", runOut.String())
	}
	nothingLeft(t, n)
}

func outOf(cmd *exec.Cmd) string {
	out, _ := cmd.Output()
	return string(out)
}
