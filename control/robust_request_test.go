package control

import (
	"strings"
	"testing"
)

// TestImpossibleTargetValues: an explicitly given --pid 0 or empty --netns
// is an error naming the value, never "no target".
func TestImpossibleTargetValues(t *testing.T) {
	for _, tc := range []struct {
		spec TargetSpec
		want string
	}{
		{TargetSpec{PID: 0, PIDGiven: true}, "--pid 0 is not a process ID"},
		{TargetSpec{PID: -5, PIDGiven: true}, "--pid -5 is not a process ID"},
		{TargetSpec{NetnsGiven: true}, `--netns "" is empty`},
		{TargetSpec{Container: "web", PID: 0, PIDGiven: true}, "more than one target"},
		{TargetSpec{}, "no target"},
	} {
		_, err := AttachFlags{Target: tc.spec}.Parse()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%+v) = %v, want an error containing %q", tc.spec, err, tc.want)
		}
		_, err = ParseObserve(tc.spec, "eth0", "auto")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseObserve(%+v) = %v, want an error containing %q", tc.spec, err, tc.want)
		}
	}
	if _, err := (AttachFlags{Target: TargetSpec{PID: 42, PIDGiven: true}}).Parse(); err != nil {
		t.Errorf("--pid 42: %v", err)
	}
}
