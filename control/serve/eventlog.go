package serve

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nswire/nswire/control/state"
)

// Event is one action serve took, or declined to take, and why: one line of
// `nswire events`.
type Event struct {
	Time      time.Time `json:"time"`
	Action    string    `json:"action"` // wired, rewired, adopted, waiting, detached, unwired, error, started, stopped, engine
	Container string    `json:"container,omitempty"`
	ID        string    `json:"id,omitempty"`
	Address   string    `json:"address,omitempty"`
	MAC       string    `json:"mac,omitempty"`
	Mode      string    `json:"mode,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Took      string    `json:"took,omitempty"`
}

// Actions of events.
const (
	ActWired    = "wired"
	ActRewired  = "rewired"
	ActAdopted  = "adopted"
	ActWaiting  = "waiting"
	ActDetached = "detached"
	ActUnwired  = "unwired" // not wired, with the reason (a bad label, …)
	ActError    = "error"
	ActStarted  = "started"
	ActStopped  = "stopped"
	ActEngine   = "engine"
)

// eventLogMax is the size at which the action log is rotated (the previous
// one is kept as events.jsonl.1).
const eventLogMax = 4 << 20

// Dir is where serve keeps its run files under a state dir: the lock, the
// action log and the status.
func Dir(stateDir string) string { return state.ServeDir(stateDir) }

// EventLogPath is the action log of serve for a state dir.
func EventLogPath(stateDir string) string { return filepath.Join(Dir(stateDir), "events.jsonl") }

type eventLog struct {
	mu   sync.Mutex
	path string
	f    *os.File
	size int64
}

func openEventLog(path string) (*eventLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open action log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open action log: %w", err)
	}
	return &eventLog{path: path, f: f, size: fi.Size()}, nil
}

// write appends one event as a JSON line.
func (l *eventLog) write(e Event) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size+int64(len(data)) > eventLogMax {
		l.f.Close()
		os.Rename(l.path, l.path+".1")
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("rotate action log: %w", err)
		}
		l.f, l.size = f, 0
	}
	n, err := l.f.Write(data)
	l.size += int64(n)
	return err
}

func (l *eventLog) close() { l.f.Close() }

// ReadEvents returns the events of the action log of stateDir (the rotated
// one first), oldest first. A missing log is no events.
func ReadEvents(stateDir string) ([]Event, error) {
	var out []Event
	for _, p := range []string{EventLogPath(stateDir) + ".1", EventLogPath(stateDir)} {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read action log: %w", err)
		}
		evs, _, err := decodeEvents(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	return out, nil
}

// decodeEvents reads whole lines of events from r; n is the number of bytes
// of complete lines read (a line being written is left for later).
func decodeEvents(r io.Reader) ([]Event, int64, error) {
	var out []Event
	var n int64
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return out, n, nil
		}
		if err != nil {
			return out, n, fmt.Errorf("read action log: %w", err)
		}
		n += int64(len(line))
		var e Event
		if json.Unmarshal(line, &e) == nil {
			out = append(out, e)
		}
	}
}

// FollowEvents calls fn for each event appended to the action log of
// stateDir after offset bytes (0: from the start), until stop is closed,
// polling every interval. It follows a rotation.
func FollowEvents(stateDir string, interval time.Duration, stop <-chan struct{}, fn func(Event)) error {
	path := EventLogPath(stateDir)
	var off int64
	if fi, err := os.Stat(path); err == nil {
		off = fi.Size()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if fi, err := os.Stat(path); err == nil {
			if fi.Size() < off {
				off = 0 // rotated
			}
			if fi.Size() > off {
				f, err := os.Open(path)
				if err != nil {
					return fmt.Errorf("read action log: %w", err)
				}
				f.Seek(off, io.SeekStart)
				evs, n, err := decodeEvents(f)
				f.Close()
				if err != nil {
					return err
				}
				off += n
				for _, e := range evs {
					fn(e)
				}
			}
		}
		select {
		case <-stop:
			return nil
		case <-t.C:
		}
	}
}
