//go:build linux

// Package testenv holds helpers for nswire's privileged integration tests and
// end-to-end tests: privilege and tool checks with the project's CI policy, a
// Docker client, the tiny local test image, throwaway containers and network
// namespaces.
//
// CI policy (see DESIGN.md, "Tests"): a missing privilege, tool or engine
// makes a test skip when the environment variable CI is empty (or "0" /
// "false"), and fail, naming what is missing, when CI is set (CI=true).
//
// The machine is prepared by test/setup.sh (packages, bpffs, dockerd, image).
package testenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// InCI reports whether the CI policy applies: the environment variable CI is
// set to anything but "", "0" or "false".
func InCI() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv("CI"))) {
	case "", "0", "false":
		return false
	}
	return true
}

// Unavailable skips t, or fails it when InCI, with the message
// "<what> unavailable: <why>". Use it for any precondition of your own that
// follows the same policy.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI is set, so this is a failure, not a skip)", msg)
	}
	t.Skipf("%s (set CI=true to make this a failure)", msg)
}

// Linux capability numbers (linux/capability.h).
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capBPF      = 39
)

// missingPrivileges lists what the current process lacks for privileged
// tests: root, CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF.
func missingPrivileges() []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, fmt.Sprintf("root (euid is %d)", os.Geteuid()))
	}
	eff, err := effectiveCaps()
	if err != nil {
		return append(missing, "capabilities ("+err.Error()+")")
	}
	for _, c := range []struct {
		bit  uint
		name string
	}{{capNetAdmin, "CAP_NET_ADMIN"}, {capSysAdmin, "CAP_SYS_ADMIN"}, {capBPF, "CAP_BPF"}} {
		if eff&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	return missing
}

// effectiveCaps reads CapEff from /proc/self/status.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no CapEff in /proc/self/status")
}

// RequireRoot skips (or, in CI, fails) t unless the process is root with
// CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_BPF in its effective set.
func RequireRoot(t testing.TB) {
	t.Helper()
	if m := missingPrivileges(); len(m) > 0 {
		Unavailable(t, "privileged test: missing %s", strings.Join(m, ", "))
	}
}

// RequireTool skips (or, in CI, fails) t unless name is an executable on
// PATH, and returns its path.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "tool %q not found on PATH (run test/setup.sh)", name)
	}
	return p
}

// ModuleRoot returns the directory holding nswire's go.mod, found by walking
// up from the working directory (go test runs tests in their package
// directory) and, failing that, from `go env GOMOD`.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return root
}

func moduleRoot() (string, error) {
	isRoot := func(dir string) bool {
		_, err1 := os.Stat(filepath.Join(dir, "go.mod"))
		_, err2 := os.Stat(filepath.Join(dir, "test", "mkimage.sh"))
		return err1 == nil && err2 == nil
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if isRoot(dir) {
				return dir, nil
			}
			if dir == filepath.Dir(dir) {
				break
			}
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			if dir := filepath.Dir(gomod); isRoot(dir) {
				return dir, nil
			}
		}
	}
	return "", fmt.Errorf("cannot find the nswire module root (go.mod next to test/mkimage.sh)")
}
