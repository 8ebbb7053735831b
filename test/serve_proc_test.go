//go:build linux

package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/vishvananda/netlink"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/test/testenv"
)

// unitFile is the systemd unit of nswire serve.
func unitFile(t *testing.T) string {
	return filepath.Join(testenv.ModuleRoot(t), "dist", "nswire.service")
}

// unitValue returns the value of key in the unit (the last assignment).
func unitValue(t *testing.T, unit, key string) string {
	t.Helper()
	v := ""
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		if k, val, ok := strings.Cut(sc.Text(), "="); ok && strings.TrimSpace(k) == key {
			v = strings.TrimSpace(val)
		}
	}
	return v
}

// startServeProc runs `nswire serve` as a process on e's state, limited to
// the containers with serve's token, wrapped by the command prefix wrap
// (e.g. setpriv), with extra environment. Cleanup stops it by its PID.
func startServeProc(t *testing.T, e *env, token string, env []string, wrap ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	args := []string{"--state-dir", e.stateDir, "--pin-dir", e.pinDir, "serve", "--listen", "", "--only-label", serveLabel + "=" + token}
	var c *exec.Cmd
	if len(wrap) > 0 {
		c = exec.Command(wrap[0], append(append(wrap[1:], nswireBin), args...)...)
	} else {
		c = exec.Command(nswireBin, args...)
	}
	var log bytes.Buffer
	c.Stdout, c.Stderr = &log, &log
	c.Env = append(os.Environ(), env...)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.ProcessState == nil {
			c.Process.Signal(syscall.SIGTERM)
			c.Wait()
		}
		if t.Failed() {
			t.Logf("nswire serve output:\n%s", log.String())
		}
	})
	return c, &log
}

// ourVeths lists the host veths tagged with e's state dir.
func ourVeths(e *env) []string {
	links, _ := netlink.LinkList()
	var out []string
	for _, l := range links {
		if l.Attrs().Alias == "nswire:"+e.stateDir {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// TestSystemdUnit checks the unit with systemd-analyze verify, then runs
// nswire serve under exactly the unit's capability bounding set: it wires a
// labelled container (loading the eBPF programs into a fresh pin dir), and
// stops cleanly on SIGTERM.
func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile(unitFile(t))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(data)
	for k, want := range map[string]string{
		"Type": "notify", "After": "docker.service", "Wants": "docker.service",
		"RequiresMountsFor": "/sys/fs/bpf", "Restart": "on-failure",
		"CapabilityBoundingSet": "CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_BPF",
	} {
		if got := unitValue(t, unit, k); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	analyze := testenv.RequireTool(t, "systemd-analyze")
	// Verify it as installed, with the binary under test as ExecStart.
	dir := t.TempDir()
	p := filepath.Join(dir, "nswire.service")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(unit, "/usr/local/bin/nswire", nswireBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", p).CombinedOutput(); err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	e := newEnv(t)
	cli := testenv.Docker(t)
	setpriv := testenv.RequireTool(t, "setpriv")
	var bounding []string
	for _, c := range strings.Fields(unitValue(t, unit, "CapabilityBoundingSet")) {
		bounding = append(bounding, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	token := newToken()
	c, _ := startServeProc(t, e, token, nil, setpriv, "--bounding-set=-all,"+strings.Join(bounding, ","), "--inh-caps=-all", "--no-new-privs")
	id, _ := runLabelled(t, cli, token, "srv-caps", enable(), "sleep", "300")
	rec, _ := waitWired(t, e, cli, id)
	if rec.Hook != "tcx" {
		t.Fatalf("attached with %q under the unit's capabilities, want tcx", rec.Hook)
	}
	if s := e.stats(id); !s.Counted {
		t.Fatalf("not counted: %+v", s)
	}
	c.Process.Signal(syscall.SIGTERM)
	if err := c.Wait(); err != nil {
		t.Fatalf("serve under the unit's capabilities exited with %v", err)
	}
}

// TestServeKilledDuringWiring kills serve (as SIGKILL would: the crash hook
// exits at once) after each step of its first wiring; the next serve leaves
// the container wired exactly once, with nothing left over.
func TestServeKilledDuringWiring(t *testing.T) {
	cli := testenv.Docker(t)
	for _, k := range []int{1, 3, 6, 8} {
		t.Run(fmt.Sprintf("after step %d", k), func(t *testing.T) {
			e := newEnv(t)
			token := newToken()
			c, log := startServeProc(t, e, token, []string{fmt.Sprintf("NSWIRE_CRASH_AFTER_STEP=%d", k)})
			id, _ := runLabelled(t, cli, token, "srv-crash", enable(), "sleep", "300")
			done := make(chan error, 1)
			go func() { done <- c.Wait() }()
			select {
			case err := <-done:
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != control.CrashExitCode {
					t.Fatalf("serve ended with %v, want exit %d\n%s", err, control.CrashExitCode, log)
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("serve did not crash at step %d\n%s", k, log)
			}
			startServe(t, e, token, 30*time.Second)
			rec, _ := waitWired(t, e, cli, id)
			if v := ourVeths(e); len(v) != 1 || v[0] != rec.HostIf {
				t.Fatalf("veths after recovery: %v, want only %s", v, rec.HostIf)
			}
			if eps := endpointsIn(t, e.pinDir); len(eps) != 1 || int(eps[0]) != rec.HostIfindex {
				t.Fatalf("endpoints after recovery: %v, want only %d", eps, rec.HostIfindex)
			}
			if recs, _, _ := (state.Store{Dir: e.stateDir}).List(); len(recs) != 1 {
				t.Fatalf("%d records after recovery", len(recs))
			}
		})
	}
}

// TestServeKilledDuringRewire kills serve after each step of a rewire (a
// restarted container's new namespace): the next serve wires it once, with
// the same address, MAC and slot, and the counters it had (a known burst
// before the restart is still counted, exactly).
func TestServeKilledDuringRewire(t *testing.T) {
	cli := testenv.Docker(t)
	for _, k := range []int{1, 6, 8} {
		t.Run(fmt.Sprintf("after step %d", k), func(t *testing.T) {
			e := newEnv(t)
			token := newToken()
			s := startServe(t, e, token, 30*time.Second)
			id, _ := runLabelled(t, cli, token, "srv-recrash", enable(), "sleep", "300")
			rec, _ := waitWired(t, e, cli, id)
			cns := containerNS(t, rec.PID)
			inC := udpSocketIn(t, cns, rec.IP().String()+":9000")
			onHost := udpSocketIn(t, hostNS(t), "172.17.0.1:0")
			warmARP(t, onHost, inC)
			burst(t, onHost, inC, 100, 100)
			rx0, tx0 := udpTotals(e, id)
			s.stop()

			if err := cli.ContainerRestart(context.Background(), id, container.StopOptions{Timeout: new(int)}); err != nil {
				t.Fatal(err)
			}
			c, log := startServeProc(t, e, token, []string{fmt.Sprintf("NSWIRE_CRASH_AFTER_STEP=%d", k)})
			if err := c.Wait(); err == nil || !strings.Contains(err.Error(), fmt.Sprint(control.CrashExitCode)) {
				t.Fatalf("serve ended with %v, want exit %d\n%s", err, control.CrashExitCode, log)
			}
			startServe(t, e, token, 30*time.Second)
			got, _ := waitWired(t, e, cli, id)
			if got.Address.String() != rec.Address.String() || got.MAC.String() != rec.MAC.String() || got.Slot != rec.Slot {
				t.Fatalf("after the crash: %+v, was %+v", got, rec)
			}
			if rx, tx := udpTotals(e, id); rx != rx0 || tx != tx0 {
				t.Fatalf("counters after the crashed rewire: rx %+v tx %+v, before the restart rx %+v tx %+v", rx, tx, rx0, tx0)
			}
			if v := ourVeths(e); len(v) != 1 || v[0] != got.HostIf {
				t.Fatalf("veths: %v, want only %s", v, got.HostIf)
			}
			if eps := endpointsIn(t, e.pinDir); len(eps) != 1 || int(eps[0]) != got.HostIfindex {
				t.Fatalf("endpoints: %v, want only %d", eps, got.HostIfindex)
			}
		})
	}
}
