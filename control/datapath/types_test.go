package datapath

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAutoHookFollowsRCU(t *testing.T) {
	dir := t.TempDir()
	exp, norm := filepath.Join(dir, "rcu_expedited"), filepath.Join(dir, "rcu_normal")
	oldExp, oldNorm := rcuExpeditedPath, rcuNormalPath
	rcuExpeditedPath, rcuNormalPath = exp, norm
	t.Cleanup(func() { rcuExpeditedPath, rcuNormalPath = oldExp, oldNorm })
	for _, tc := range []struct {
		expedited, normal string
		want              Hook
	}{
		{"1\n", "0\n", HookTCX},
		{"0\n", "0\n", HookTC},
		{"1\n", "1\n", HookTC},
		{"", "", HookTCX}, // unreadable: files missing
	} {
		os.Remove(exp)
		os.Remove(norm)
		if tc.expedited != "" {
			os.WriteFile(exp, []byte(tc.expedited), 0o644)
			os.WriteFile(norm, []byte(tc.normal), 0o644)
		}
		if got, why := AutoHook(); got != tc.want || why == "" {
			t.Errorf("rcu_expedited=%q rcu_normal=%q: AutoHook = %q (%s), want %q", tc.expedited, tc.normal, got, why, tc.want)
		}
	}
}

func TestParseModeAndHook(t *testing.T) {
	for _, s := range []string{"off", "observe", "fastpath"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := ParseMode("turbo"); err == nil || err.Error() != `mode "turbo" is not one of off, observe, fastpath` {
		t.Errorf("ParseMode(turbo) error = %v", err)
	}
	if h, err := ParseHook(""); err != nil || h != HookAuto {
		t.Errorf(`ParseHook("") = %q, %v`, h, err)
	}
	if _, err := ParseHook("xdp"); err == nil || err.Error() != `hook "xdp" is not one of auto, tcx, tc` {
		t.Errorf("ParseHook(xdp) error = %v", err)
	}
}
