package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nswire/nswire/control"
)

// staleSnapshot is a live container and one whose record is not live.
func staleSnapshot(at time.Duration, state control.RecordState) []control.EndpointStats {
	s := snapshot(at, fakeEndpoint{name: "web", rxBytes: 2048, txBytes: 100}, fakeEndpoint{name: "old"})
	s[1].Counted, s[1].RX, s[1].TX = false, control.Flow{}, control.Flow{}
	s[1].State, s[1].Reason = state, "the container was restarted: `nswire attach old` wires it again"
	s[0].State = control.StateLive
	if state == control.StateDamaged { // a damaged file: no mode, address or host veth known
		s[1].Mode, s[1].Address, s[1].HostIf = "", "", ""
	}
	return s
}

// TestNotLiveIsNeverShownAsCounted: stats and top show the state of a
// record that is not live, never counters.
func TestNotLiveIsNeverShownAsCounted(t *testing.T) {
	for _, st := range []control.RecordState{control.StateRestarted, control.StateStopped, control.StateGone, control.StateDamaged} {
		var b bytes.Buffer
		if err := writeStatsTable(&b, staleSnapshot(0, st), false, false); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if !strings.Contains(out, "not counted ("+string(st)+")") || !strings.Contains(out, "`nswire attach old` wires it again") {
			t.Errorf("stats table of a %s record:\n%s", st, out)
		}
		m := newTestTop(t, "name", staleSnapshot(0, st), staleSnapshot(time.Second, st))
		row := rowOf(checkFits(t, m.View(), 80, 24), "old")
		if !strings.Contains(row, "not counted ("+string(st)+")") {
			t.Errorf("top row of a %s record: %q", st, row)
		}
	}
}
