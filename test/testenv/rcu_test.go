//go:build linux

package testenv

import (
	"os"
	"strings"
	"testing"
)

// TestRCUExpeditedRestored flips the setting inside a subtest and checks
// that the subtest's cleanup put the original value back.
func TestRCUExpeditedRestored(t *testing.T) {
	RequireRoot(t)
	read := func() string {
		b, err := os.ReadFile(RCUExpeditedPath)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	before := read()
	t.Run("flip", func(t *testing.T) {
		r := UseRCUExpedited(t)
		if r.Original() != (before != "0") {
			t.Fatalf("Original() = %v, file said %q", r.Original(), before)
		}
		r.Set(!r.Original())
		if got, want := read(), map[bool]string{true: "0", false: "1"}[before != "0"]; got != want {
			t.Fatalf("after Set: %s = %q, want %q", RCUExpeditedPath, got, want)
		}
	})
	if got := read(); got != before {
		t.Fatalf("after cleanup: %s = %q, want the original %q", RCUExpeditedPath, got, before)
	}
}
