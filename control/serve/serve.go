// Package serve is the nswire daemon: it keeps --network=none containers
// wired across restarts, from their nswire.* Docker labels and from the
// desired state that `nswire attach` records. It lists the containers, then
// watches the engine's events from a time taken before the list, queues
// each container that an event names (a de-duplicating queue, so the event
// reader never waits) and reconciles it on a fresh inspect: wire, wire
// again with the same address, MAC, mode and counter slot, adopt, wait, or
// detach. A full resync runs periodically and after every reconnection to
// the engine. It serves /metrics and /healthz, logs with log/slog and keeps
// an action log for `nswire events`.
package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/dockerengine"
	"github.com/nswire/nswire/control/metrics"
	"github.com/nswire/nswire/control/state"
)

// Config says how serve runs.
type Config struct {
	// Listen is the address of /metrics and /healthz; "" serves no HTTP.
	Listen string
	// Resync is the period of the full reconcile; default 30s.
	Resync time.Duration
	// Logger receives the structured log; default slog.Default().
	Logger *slog.Logger
	// Labels, when set, limits serve to containers carrying all these
	// labels (tests run their own serve beside others' containers).
	Labels map[string]string
	// BPFFS is the bpffs mount /healthz checks; default /sys/fs/bpf.
	BPFFS string
	// Ready is called once, when the first full reconcile is done and the
	// HTTP listener is up (for sd_notify READY=1).
	Ready func()
	// Listening, when set, receives the HTTP listener's address.
	Listening func(addr string)
}

// server is one running serve.
type server struct {
	cfg     Config
	m       *control.Manager
	mu      sync.Mutex // serialises every use of m
	cli     *client.Client
	desired *state.DesiredStore
	dir     string // state dir
	log     *slog.Logger
	q       *queue
	events  *eventLog

	retries map[string]int // failures in a row, per container (worker only)

	stMu     sync.Mutex
	status   Status
	engineOK bool
}

// Run runs serve with m until ctx ends. It refuses to start when another
// serve runs on the same state directory, naming its PID. m must have a
// desired-state directory (control.Config.DesiredDir). Run returns nil
// after a clean stop.
func Run(ctx context.Context, m *control.Manager, cfg Config) error {
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BPFFS == "" {
		cfg.BPFFS = "/sys/fs/bpf"
	}
	ds := m.Desired()
	if ds == nil {
		return errors.New("serve: the manager keeps no desired state (control.Config.DesiredDir is empty)")
	}
	dir := m.Store().Dir
	if err := m.Store().Ensure(); err != nil {
		return err
	}
	lock, err := acquireInstance(dir)
	if err != nil {
		return err
	}
	defer lock.release()
	cli, err := dockerengine.Client(m)
	if err != nil {
		return err
	}
	el, err := openEventLog(EventLogPath(dir))
	if err != nil {
		return err
	}
	defer el.close()
	s := &server{
		cfg: cfg, m: m, cli: cli, desired: ds, dir: dir, log: cfg.Logger, q: newQueue(), events: el, retries: map[string]int{},
		status: Status{PID: os.Getpid(), Started: time.Now().UTC(), Containers: map[string]*ContainerStatus{}},
	}
	s.saveStatus()
	defer os.Remove(statusPath(dir))

	var httpSrv *http.Server
	if cfg.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("serve: listen on %s: %w", cfg.Listen, err)
		}
		if cfg.Listening != nil {
			cfg.Listening(ln.Addr().String())
		}
		httpSrv = &http.Server{Handler: s.mux(), ReadHeaderTimeout: 5 * time.Second}
		go httpSrv.Serve(ln)
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			httpSrv.Shutdown(sctx)
		}()
	}
	s.record(Event{Action: ActStarted, Reason: fmt.Sprintf("pid %d, state %s, desired state %s, resync every %s", os.Getpid(), dir, ds.Dir, cfg.Resync)})
	defer s.record(Event{Action: ActStopped})

	synced := make(chan struct{}, 1) // a full list was queued
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.watch(ctx, synced) }()
	go func() { defer wg.Done(); s.worker(ctx, synced) }()
	wg.Wait()
	return nil
}

// record writes e to the action log and the structured log.
func (s *server) record(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if err := s.events.write(e); err != nil {
		s.log.Warn("action log", "err", err)
	}
	attrs := []any{"action", e.Action}
	for _, kv := range [][2]string{{"container", e.Container}, {"id", short(e.ID)}, {"address", e.Address}, {"mac", e.MAC}, {"mode", e.Mode}, {"took", e.Took}, {"reason", e.Reason}} {
		if kv[1] != "" {
			attrs = append(attrs, kv[0], kv[1])
		}
	}
	switch e.Action {
	case ActError, ActUnwired:
		s.log.Warn("container", attrs...)
	case ActEngine:
		if strings.HasPrefix(e.Reason, "lost") {
			s.log.Warn("engine", attrs...)
		} else {
			s.log.Info("engine", attrs...)
		}
	default:
		s.log.Info("container", attrs...)
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// filterArgs are the label filters of Config.Labels.
func (s *server) filterArgs() filters.Args {
	f := filters.NewArgs()
	for k, v := range s.cfg.Labels {
		f.Add("label", k+"="+v)
	}
	return f
}

// watch subscribes to the engine's container events and queues the
// containers they name, then lists every container (the subscription starts
// at a time taken before the list, so nothing falls between); it reconnects
// with backoff when the stream ends, with a full resync each time.
func (s *server) watch(ctx context.Context, synced chan<- struct{}) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		since := time.Now()
		f := s.filterArgs()
		f.Add("type", string(events.ContainerEventType))
		for _, a := range []events.Action{events.ActionStart, events.ActionDie, events.ActionDestroy} {
			f.Add("event", string(a))
		}
		sctx, cancel := context.WithCancel(ctx)
		msgs, errs := s.cli.Events(sctx, events.ListOptions{
			Since:   fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
			Filters: f,
		})
		err := s.queueAll(ctx)
		if err == nil {
			s.setEngine(true, "")
			select {
			case synced <- struct{}{}:
			default:
			}
			connected := time.Now()
			err = s.read(ctx, msgs, errs)
			if time.Since(connected) > 10*time.Second {
				backoff = 100 * time.Millisecond
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.setEngine(false, err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// read queues the container of every event until the stream fails. It
// never blocks on anything but the stream.
func (s *server) read(ctx context.Context, msgs <-chan events.Message, errs <-chan error) error {
	resync := time.NewTicker(s.cfg.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-msgs:
			if m.Actor.ID != "" {
				s.q.add(m.Actor.ID)
			}
		case err := <-errs:
			if err == nil {
				err = errors.New("event stream closed")
			}
			return err
		case <-resync.C:
			// A full resync lists from another goroutine: the event
			// reader must not wait on the engine's answer.
			go func() {
				if err := s.queueAll(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("resync", "err", err)
				}
			}()
		}
	}
}

// fullMarker is the queue item that stamps a full reconcile done: queued
// after every container of a full list, it is reached when they all are.
const fullMarker = "\x00full"

// queueAll queues every container serve may have to act on: the running and
// stopped containers with nswire.* labels, and every container with a
// record or a desired entry (one that is gone gets collected).
func (s *server) queueAll(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cs, err := s.cli.ContainerList(lctx, container.ListOptions{All: true, Filters: s.filterArgs()})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cs {
		if hasNswireLabel(c.Labels) {
			s.q.add(c.ID)
		}
	}
	recs, _, err := s.m.Store().List()
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Kind == "docker" && !r.Observed {
			s.q.add(r.ID)
		}
	}
	ds, _, err := s.desired.List()
	if err != nil {
		return err
	}
	for _, d := range ds {
		s.q.add(d.ID)
	}
	s.q.add(fullMarker)
	return nil
}

func hasNswireLabel(labels map[string]string) bool {
	for k := range labels {
		if strings.HasPrefix(k, LabelPrefix) {
			return true
		}
	}
	return false
}

// worker reconciles queued containers one at a time (the manager is not
// safe for concurrent use, and attaches serialise on the state lock anyway).
func (s *server) worker(ctx context.Context, synced <-chan struct{}) {
	ready := false
	for {
		id, ok := s.q.next(ctx)
		if !ok {
			return
		}
		if id == fullMarker {
			s.stMu.Lock()
			s.status.LastFullReconcile = time.Now().UTC()
			s.stMu.Unlock()
			s.saveStatus()
			if !ready {
				ready = true
				if s.cfg.Ready != nil {
					s.cfg.Ready()
				}
			}
			continue
		}
		if s.reconcile(ctx, id) {
			s.retryLater(ctx, id)
		} else {
			delete(s.retries, id)
		}
	}
}

// retryLater queues id again after a delay that doubles with each failure
// in a row (0.25 s up to the resync period), so a failure that the machine
// may mend (a container that stopped mid-wiring, an address freed, the
// engine back) is retried soon, without spinning.
func (s *server) retryLater(ctx context.Context, id string) {
	n := s.retries[id]
	s.retries[id] = n + 1
	d := 250 * time.Millisecond << min(n, 10)
	if d > s.cfg.Resync {
		d = s.cfg.Resync
	}
	time.AfterFunc(d, func() {
		if ctx.Err() == nil {
			s.q.add(id)
		}
	})
}

// setStatus records the state of a container and reports whether it
// changed (so that a repeated resync does not repeat the same event).
func (s *server) setStatus(id, name, st, reason string) bool {
	s.stMu.Lock()
	old := s.status.Containers[id]
	changed := old == nil || old.State != st || old.Reason != reason
	if st == "" {
		changed = old != nil
		delete(s.status.Containers, id)
	} else {
		s.status.Containers[id] = &ContainerStatus{Name: name, State: st, Reason: reason}
	}
	s.stMu.Unlock()
	if changed {
		s.saveStatus()
	}
	return changed
}

func (s *server) saveStatus() {
	s.stMu.Lock()
	data, _ := json.Marshal(&s.status)
	var st Status
	json.Unmarshal(data, &st)
	s.stMu.Unlock()
	if err := writeStatus(s.dir, &st); err != nil {
		s.log.Warn("status", "err", err)
	}
}

func (s *server) setEngine(ok bool, why string) {
	s.stMu.Lock()
	was := s.engineOK
	s.engineOK = ok
	s.stMu.Unlock()
	if ok && !was {
		s.record(Event{Action: ActEngine, Reason: "connected to the Docker engine; full resync"})
	} else if !ok && was {
		s.record(Event{Action: ActEngine, Reason: "lost the Docker engine (" + why + "); reconnecting"})
	}
}

// reconcile brings one container to what its labels and desired state ask,
// from a fresh inspect.
func (s *server) reconcile(ctx context.Context, id string) (retry bool) {
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ci, err := s.cli.ContainerInspect(ictx, id)
	cancel()
	gone := cerrdefs.IsNotFound(err)
	if err != nil && !gone {
		if ctx.Err() == nil {
			s.log.Warn("inspect", "id", short(id), "err", err)
		}
		return true // the engine is in trouble
	}
	if !gone && !s.matches(ci.Config) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.m.Store().Get(id)
	if err != nil {
		s.record(Event{Action: ActError, ID: id, Reason: err.Error()})
		return true
	}
	des, err := s.desired.Get(id)
	if err != nil {
		s.record(Event{Action: ActError, ID: id, Reason: err.Error()})
		return true
	}
	if gone {
		if rec == nil && des == nil {
			s.setStatus(id, "", "", "")
			return false
		}
		return s.collect(ctx, id, rec, des)
	}
	name := strings.TrimPrefix(ci.Name, "/")
	var labels map[string]string
	if ci.Config != nil {
		labels = ci.Config.Labels
	}
	req, enabled, lerr := ParseLabels(ci.ID, labels)
	if lerr != nil {
		reason := fmt.Sprintf("container %s: %v: left unwired", name, lerr)
		if s.setStatus(id, name, StateUnwired, reason) {
			s.record(Event{Action: ActUnwired, Container: name, ID: id, Reason: reason})
		}
		return false
	}
	if !enabled && des == nil {
		s.setStatus(id, "", "", "")
		return false // not nswire's to manage
	}
	// chosen: nswire chose its address (no nswire.ip, no attach --ip), so
	// it may move it should a foreign host take it.
	chosen := enabled && labels[LabelIP] == "" || !enabled && des != nil && des.Chosen
	running := ci.State != nil && ci.State.Running && ci.State.Pid > 0
	if !running {
		if s.setStatus(id, name, StateWaiting, "") {
			s.record(Event{Action: ActWaiting, Container: name, ID: id, Reason: "the container is not running: it is wired again when it starts"})
		}
		return false
	}
	w := &wanted{id: id, name: name, ci: ci, labels: labels, req: req, enabled: enabled, des: des, chosen: chosen, start: time.Now()}
	if rec != nil {
		return s.keepWired(ctx, w, rec)
	}
	return s.wire(ctx, w)
}

// wanted is what reconcile learnt of a running container nswire manages.
type wanted struct {
	id, name string
	ci       container.InspectResponse
	labels   map[string]string
	req      control.AttachRequest // from the labels, when enabled
	enabled  bool                  // nswire.enable=true
	des      *state.Desired        // nil: none yet
	chosen   bool                  // nswire chose its address: it may move
	start    time.Time
}

// keepWired adopts a container whose record is live, and wires one that
// restarted again with the same address, MAC, mode and counter slot.
func (s *server) keepWired(ctx context.Context, w *wanted, rec *state.Record) (retry bool) {
	id, name, enabled, chosen, start := w.id, w.name, w.enabled, w.chosen, w.start
	if why := s.m.Staleness(rec); why == "" {
		s.ensureDesired(rec, enabled, chosen)
		if s.setStatus(id, name, StateWired, "") {
			s.record(Event{Action: ActAdopted, Container: name, ID: id, Address: rec.Address.String(), MAC: rec.MAC.String(), Mode: string(rec.Mode), Reason: "already wired as its record says"})
		}
		return false
	}
	res, err := s.m.Rewire(ctx, id, control.RewireOptions{MoveIfTaken: chosen})
	if err != nil {
		reason := fmt.Sprintf("container %s: %v", name, err)
		if s.setStatus(id, name, StateUnwired, reason) {
			s.record(Event{Action: ActError, Container: name, ID: id, Reason: reason})
		}
		return true
	}
	s.setStatus(id, name, StateWired, "")
	r := res.Record
	s.ensureDesired(r, enabled, chosen)
	why := fmt.Sprintf("started with a new network namespace; same address, MAC, mode and counter slot %d", r.Slot)
	if r.Address != rec.Address {
		why = fmt.Sprintf("started with a new network namespace; its address %s was taken by another host meanwhile, so it moved to %s (nswire had chosen it); same MAC, mode and counter slot %d", rec.Address, r.Address, r.Slot)
	}
	s.record(Event{Action: ActRewired, Container: name, ID: id, Address: r.Address.String(), MAC: r.MAC.String(), Mode: string(r.Mode), Took: time.Since(start).Round(100 * time.Microsecond).String(), Reason: why})
	return false
}

// wire wires a container that has no record: from its labels, or with the
// address and MAC of its desired state.
func (s *server) wire(ctx context.Context, w *wanted) (retry bool) {
	id, name, ci, labels, req, enabled, des, chosen, start := w.id, w.name, w.ci, w.labels, w.req, w.enabled, w.des, w.chosen, w.start
	// No record: wire it, with the address and MAC it had, if any.
	if !enabled {
		// The desired state is an edge like the CLI's flags: parsed once.
		flags := control.AttachFlags{Target: control.TargetSpec{Container: id}, Bridge: des.Bridge, IfName: des.IfName,
			Gateway: des.Gateway, MTU: des.MTU, Mode: des.Mode}
		var perr error
		if req, perr = flags.Parse(); perr != nil {
			reason := fmt.Sprintf("container %s: desired state: %v", name, perr)
			if s.setStatus(id, name, StateUnwired, reason) {
				s.record(Event{Action: ActUnwired, Container: name, ID: id, Reason: reason})
			}
			return false
		}
	}
	remembered := ""
	if des != nil {
		if !req.IP.IsSet() && des.Address != "" {
			if ip, err := control.ParseIPFlag(des.Address); err == nil {
				req.IP, remembered = ip, des.Address
			}
		}
		if !req.IP6.IsSet() && des.Address6 != "" {
			if ip, err := control.ParseIP6Flag(des.Address6); err == nil {
				req.IP6 = ip
			}
		}
		if req.MAC == nil && des.MAC != "" {
			if mac, err := control.ParseMAC(des.MAC); err == nil {
				req.MAC = mac
			}
		}
		if remembered != "" {
			s.m.ForgetOwnNeighbor(req.Bridge, des.Address, des.MAC)
		}
	}
	if enabled && (des == nil || des.Source != state.SourceLabel) {
		// Mark it a label entry first, so the attach's own record of it
		// (control.Config.DesiredDir) stays one.
		d := &state.Desired{ID: ci.ID, Name: name, Source: state.SourceLabel, Bridge: req.Bridge, IfName: req.IfName, Mode: string(req.Mode), Chosen: chosen}
		if des != nil {
			d.Address, d.MAC = des.Address, des.MAC
		}
		if err := s.desired.Put(d); err != nil {
			s.record(Event{Action: ActError, Container: name, ID: id, Reason: err.Error()})
			return true
		}
	}
	res, err := s.m.Attach(ctx, req, false)
	if err != nil && remembered != "" && chosen {
		// The address it had (nswire chose it) is taken now: take a free
		// one.
		s.log.Info("remembered address unavailable", "container", name, "address", remembered, "err", err)
		req.IP = control.IPSpec{}
		res, err = s.m.Attach(ctx, req, false)
	}
	if err != nil {
		reason := fmt.Sprintf("container %s: %v", name, err)
		if enabled {
			reason = fmt.Sprintf("container %s: %s: %v: left unwired", name, blame(labels, err), err)
		}
		if s.setStatus(id, name, StateUnwired, reason) {
			s.record(Event{Action: ActUnwired, Container: name, ID: id, Reason: reason})
		}
		return true // the machine may change: a used address freed, a bridge made
	}
	s.setStatus(id, name, StateWired, "")
	r := res.Record
	why := "from its nswire.* labels"
	if !enabled {
		why = "from the desired state recorded by nswire attach"
	}
	s.ensureDesired(r, enabled, chosen || !req.IP.IsSet())
	s.record(Event{Action: ActWired, Container: name, ID: id, Address: r.Address.String(), MAC: r.MAC.String(), Mode: string(r.Mode), Took: time.Since(start).Round(100 * time.Microsecond).String(), Reason: why})
	return false
}

// matches reports whether a container carries the labels of Config.Labels.
func (s *server) matches(c *container.Config) bool {
	for k, v := range s.cfg.Labels {
		if c == nil || c.Labels[k] != v {
			return false
		}
	}
	return true
}

// ensureDesired records what the container is wired with, so that it gets
// the same address and MAC after a restart, a crash or a reboot.
func (s *server) ensureDesired(r *state.Record, fromLabels, chosen bool) {
	old, _ := s.desired.Get(r.ID)
	src := state.SourceAttach
	if fromLabels {
		src = state.SourceLabel
	}
	addr, mac, mode := r.Address.String(), r.MAC.String(), string(r.Mode)
	if old != nil && old.Source == src && old.Address == addr && old.Address6 == prefixText(r.Address6) && old.MAC == mac && old.Mode == mode && old.Name == r.Name && old.Chosen == chosen {
		return
	}
	var addr6 string
	if r.Address6.IsValid() {
		addr6 = r.Address6.String()
	}
	d := &state.Desired{ID: r.ID, Name: r.Name, Source: src, Bridge: r.Bridge, IfName: r.IfName, Address: addr, Address6: addr6, Chosen: chosen,
		Gateway: r.Gateway.String(), MAC: mac, MTU: r.MTU, Mode: mode}
	if err := s.desired.Put(d); err != nil {
		s.record(Event{Action: ActError, Container: r.Name, ID: r.ID, Reason: err.Error()})
	}
}

// collect detaches a removed container fully and forgets it.
func (s *server) collect(ctx context.Context, id string, rec *state.Record, des *state.Desired) (retry bool) {
	name, reason := short(id), "the container was removed"
	if des != nil && des.Name != "" {
		name = des.Name
	}
	if rec != nil {
		name = rec.DisplayName()
		if _, err := s.m.Detach(ctx, id); err != nil {
			s.record(Event{Action: ActError, Container: name, ID: id, Reason: fmt.Sprintf("detach removed container %s: %v", name, err)})
			return true
		}
		reason += "; freed " + rec.Address.String()
	}
	if err := s.desired.Delete(id); err != nil {
		s.record(Event{Action: ActError, Container: name, ID: id, Reason: err.Error()})
		return true
	}
	s.setStatus(id, "", "", "")
	s.record(Event{Action: ActDetached, Container: name, ID: id, Reason: reason})
	return false
}

// mux serves /metrics (the counters of every attached container) and
// /healthz.
func (s *server) mux() *http.ServeMux {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&lockedCollector{mu: &s.mu, c: metrics.NewCollector(s.m)})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", s.healthz)
	return mux
}

// Health is the body of /healthz.
type Health struct {
	OK                bool      `json:"ok"`
	Engine            string    `json:"engine"` // "ok" or why not
	BPFFS             string    `json:"bpffs"`  // "ok" or why not
	LastFullReconcile time.Time `json:"lastFullReconcile"`
	Queued            int       `json:"queued"`
	Managed           int       `json:"managed"`
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	h := Health{Engine: "ok", BPFFS: "ok", Queued: s.q.len()}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.cli.Ping(ctx); err != nil {
		h.Engine = err.Error()
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(s.cfg.BPFFS, &fs); err != nil {
		h.BPFFS = err.Error()
	} else if uint32(fs.Type) != unix.BPF_FS_MAGIC {
		h.BPFFS = s.cfg.BPFFS + " is not a bpffs mount"
	}
	s.stMu.Lock()
	h.LastFullReconcile = s.status.LastFullReconcile
	h.Managed = len(s.status.Containers)
	s.stMu.Unlock()
	h.OK = h.Engine == "ok" && h.BPFFS == "ok" && !h.LastFullReconcile.IsZero()
	w.Header().Set("Content-Type", "application/json")
	if !h.OK {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(h)
}

// lockedCollector reads the counters under the manager's lock.
type lockedCollector struct {
	mu *sync.Mutex
	c  prometheus.Collector
}

func (l *lockedCollector) Describe(ch chan<- *prometheus.Desc) { l.c.Describe(ch) }
func (l *lockedCollector) Collect(ch chan<- prometheus.Metric) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.c.Collect(ch)
}

// prefixText is p in CIDR form, or "" when there is none.
func prefixText(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}
