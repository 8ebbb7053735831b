package control

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/test/testenv"
)

// TestRecordStates: what is true of a record follows from its namespace,
// its host veth and Docker's list of containers, never from the record.
func TestRecordStates(t *testing.T) {
	testenv.RequireRoot(t)
	m, err := NewManager(Config{StateDir: t.TempDir(), PinDir: "/sys/fs/bpf/nswire-test-unused"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	docker := func(ino uint64) *state.Record {
		return &state.Record{ID: id, Name: "web", Kind: state.KindDocker, PID: os.Getpid(), NetnsPath: "/proc/self/ns/net", NetnsInode: ino, HostIf: "nsw0011aabb", HostIfindex: 7}
	}
	running := map[string]Container{id: {ID: id, State: "running"}}
	exited := map[string]Container{id: {ID: id, State: "exited"}}
	for _, tc := range []struct {
		name       string
		rec        *state.Record
		containers map[string]Container
		engineErr  error
		want       RecordState
		reason     string
	}{
		{"namespace recorded, veth missing", docker(m.hostInode), running, nil, StateBroken, "host veth nsw0011aabb (ifindex 7) is missing"},
		{"running in another namespace", docker(m.hostInode + 1), running, nil, StateRestarted, "`nswire attach web` wires it again"},
		{"exited", docker(m.hostInode + 1), exited, nil, StateStopped, "the container is exited"},
		{"removed", docker(m.hostInode + 1), map[string]Container{}, nil, StateGone, "was removed"},
		{"engine silent", docker(m.hostInode + 1), nil, errors.New("engine hung"), StateStopped, "did not answer (engine hung)"},
		{"process exited", &state.Record{ID: "pid:999999999", Kind: state.KindPID, PID: 999999999, NetnsPath: "/proc/999999999/ns/net", NetnsInode: 5}, nil, nil, StateGone, "process 999999999 exited"},
		{"pid reused", &state.Record{ID: "pid:1", Kind: state.KindPID, PID: os.Getpid(), NetnsPath: "/proc/self/ns/net", NetnsInode: m.hostInode + 1}, nil, nil, StateGone, "the PID was reused"},
		{"netns deleted", &state.Record{ID: "netns:5", Kind: state.KindNetns, NetnsPath: "/run/netns/nswire-no-such", NetnsInode: 5}, nil, nil, StateGone, "no longer exists"},
	} {
		tr := &truth{m: m, containers: tc.containers, engineErr: tc.engineErr}
		st := tr.status(tc.rec)
		if st.State != tc.want || !strings.Contains(st.Reason, tc.reason) {
			t.Errorf("%s: %s (%q), want %s (%q)", tc.name, st.State, st.Reason, tc.want, tc.reason)
		}
	}
}
