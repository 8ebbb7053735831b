package serve

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestEventLogRoundTripAndPartialLine(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(Dir(dir), 0o700); err != nil {
		t.Fatal(err)
	}
	if evs, err := ReadEvents(dir); err != nil || len(evs) != 0 {
		t.Fatalf("ReadEvents of no log = %v, %v", evs, err)
	}
	l, err := openEventLog(EventLogPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	for _, a := range []string{ActWired, ActRewired, ActDetached} {
		if err := l.write(Event{Time: time.Unix(1, 0).UTC(), Action: a, Container: "web"}); err != nil {
			t.Fatal(err)
		}
	}
	// A line being written (no newline yet) is not read.
	f, _ := os.OpenFile(EventLogPath(dir), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"action":"wir`)
	f.Close()
	evs, err := ReadEvents(dir)
	if err != nil || len(evs) != 3 || evs[0].Action != ActWired || evs[2].Action != ActDetached || evs[1].Container != "web" {
		t.Fatalf("ReadEvents = %+v, %v", evs, err)
	}
	if fi, _ := os.Stat(EventLogPath(dir)); fi.Mode().Perm() != 0o600 {
		t.Errorf("action log mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestEventLogRotates(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(Dir(dir), 0o700)
	l, err := openEventLog(EventLogPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	big := strings.Repeat("x", 64<<10)
	n := eventLogMax/(64<<10) + 4
	for i := 0; i < n; i++ {
		if err := l.write(Event{Action: ActError, Reason: big}); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(EventLogPath(dir))
	if err != nil || fi.Size() > eventLogMax {
		t.Fatalf("log not rotated: %v, %v", fi.Size(), err)
	}
	if _, err := os.Stat(EventLogPath(dir) + ".1"); err != nil {
		t.Fatalf("no rotated log: %v", err)
	}
	evs, _ := ReadEvents(dir)
	if len(evs) != n {
		t.Fatalf("%d events across both files, want %d", len(evs), n)
	}
}

func TestFollowEvents(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(Dir(dir), 0o700)
	l, _ := openEventLog(EventLogPath(dir))
	defer l.close()
	l.write(Event{Action: ActStarted}) // before the follow: not reported
	stop := make(chan struct{})
	got := make(chan Event, 10)
	done := make(chan error, 1)
	go func() { done <- FollowEvents(dir, 5*time.Millisecond, stop, func(e Event) { got <- e }) }()
	time.Sleep(50 * time.Millisecond)
	l.write(Event{Action: ActWired, Container: "a"})
	select {
	case e := <-got:
		if e.Action != ActWired || e.Container != "a" {
			t.Fatalf("followed %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing followed")
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestInstanceLock(t *testing.T) {
	dir := t.TempDir()
	if RunningPID(dir) != 0 {
		t.Fatal("RunningPID with no lock")
	}
	l, err := acquireInstance(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pid := RunningPID(dir); pid != os.Getpid() {
		t.Fatalf("RunningPID = %d, want %d", pid, os.Getpid())
	}
	_, err = acquireInstance(dir)
	if err == nil || !strings.Contains(err.Error(), "already running") || !strings.Contains(err.Error(), "pid ") {
		t.Fatalf("second acquire = %v", err)
	}
	l.release()
	if RunningPID(dir) != 0 {
		t.Fatal("RunningPID after release")
	}
	l2, err := acquireInstance(dir)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	l2.release()
}
