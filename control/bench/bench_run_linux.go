package bench

// The bench runner: checks everything it can before creating anything, sets
// up the subjects of each variant, runs the interleaved matrix, and removes
// everything it created, also when its context is cancelled.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/datapath"
	"github.com/nswire/nswire/control/dockerengine"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/netops"
)

// Label is set on every container the bench creates, so that leftovers
// of a killed run can be found: docker ps -a --filter label=org.nswire.bench
const Label = "org.nswire.bench"

// NetnsPrefix starts the name of every namespace the bench creates
// under /run/netns.
const NetnsPrefix = "nswb-"

// Progress says which cell is running.
type Progress struct {
	Round, Rounds int
	Cell, Cells   int
	Variant       string
	Workload      string
	Setup         string // set instead while subjects are being set up or removed
}

// benchPair is the two ends of one variant.
type benchPair struct {
	variant            string
	client, server     netns.NsHandle
	clientIP, serverIP net.IP
	clientRec, srvRec  *state.Record
}

// benchLab holds everything a run created, to remove it.
type benchLab struct {
	m          *control.Manager
	cli        *client.Client // nil without containers
	prefix     string
	image      string
	bridge     string
	family     int    // 4 or 6
	dockerNet  string // the Docker network of the docker variant
	netnsNames []string
	containers []string
	records    []string
	handles    []netns.NsHandle
}

// Bench runs the benchmark cfg describes. It checks its input, privileges,
// the bridge, the engine and the image before it creates anything, and
// removes every container, namespace and attach it made before it returns,
// also when ctx is cancelled (then it returns the samples measured so far
// with ctx's error). progress, when non-nil, is called before each cell.
func Run(ctx context.Context, m *control.Manager, cfg Config, progress func(Progress)) (res *Result, err error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = func(Progress) {}
	}
	res = &Result{Version: ResultVersion, Started: time.Now().UTC(), Config: cfg}
	lab, variants, err := preflight(ctx, m, &cfg, res)
	if err != nil {
		return nil, err
	}
	res.Config = cfg
	res.Variants = variants

	// Everything created from here on is removed on the way out, with a
	// context of its own: ctx may be the cancelled one.
	defer func() {
		progress(Progress{Setup: "removing subjects"})
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if cerr := lab.close(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up after the bench: %w", cerr))
		}
	}()

	pairs := map[string]*benchPair{}
	for _, v := range variants {
		progress(Progress{Setup: "setting up " + v})
		p, err := lab.setup(ctx, v)
		if err != nil {
			return nil, fmt.Errorf("set up variant %s: %w", v, err)
		}
		pairs[v] = p
	}
	benchEnv(m, res, pairs)
	before := make(map[string]ipCounts, len(pairs))
	for v, p := range pairs {
		c, err := serverIPCounts(p.server)
		if err != nil {
			return nil, fmt.Errorf("variant %s: %w", v, err)
		}
		before[v] = c
	}
	// finish closes the result: the traffic the kernel counted, the summary.
	finish := func() {
		res.Finished = time.Now().UTC()
		res.Traffic = lab.traffic(variants, pairs, before)
		res.Summarize()
	}

	clientCPU, serverCPU, _ := cpuSplit(!cfg.NoPin)
	// Enough Ps that the two load threads never wait for one.
	if runtime.GOMAXPROCS(0) < 4 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	}
	nSlices := cfg.SliceCount()
	sliceCfg := cfg
	sliceCfg.Duration, sliceCfg.Warmup = cfg.Duration/time.Duration(nSlices), cfg.SliceWarmup()
	cells := cfg.Rounds * len(cfg.Workloads) * len(variants) * nSlices
	seq := 0
	for r := range cfg.Rounds {
		for _, w := range cfg.Workloads {
			for k := range nSlices {
				for _, v := range RoundOrder(variants, r*nSlices+k) {
					if err := ctx.Err(); err != nil {
						finish()
						return res, err
					}
					seq++
					progress(Progress{Round: r + 1, Rounds: cfg.Rounds, Cell: seq, Cells: cells, Variant: v, Workload: w})
					s, err := measure(ctx, pairs[v], w, sliceCfg, clientCPU, serverCPU)
					if err != nil {
						if ctx.Err() != nil {
							finish()
							return res, ctx.Err()
						}
						return nil, fmt.Errorf("round %d, %s, %s: %w", r+1, v, w, err)
					}
					s.Round, s.Slice, s.Seq = r+1, k+1, seq
					res.Samples = append(res.Samples, s)
				}
			}
		}
	}
	finish()
	return res, nil
}

// benchPreflight checks everything that can fail before anything exists and
// decides the subjects and the variants to run.
func preflight(ctx context.Context, m *control.Manager, cfg *Config, res *Result) (*benchLab, []string, error) {
	if err := control.CheckCapabilities(); err != nil {
		return nil, nil, err
	}
	if cfg.Network != "" {
		br, err := m.NetworkBridge(ctx, cfg.Network)
		if err != nil {
			return nil, nil, err
		}
		cfg.Bridge = br
	}
	br, nets, err := netops.Bridge(m.Host(), cfg.Bridge)
	if err != nil {
		return nil, nil, err
	}
	if len(nets) == 0 {
		return nil, nil, fmt.Errorf("bridge %s has no IPv4 address: give it one (the gateway) first", cfg.Bridge)
	}
	if cfg.Family == 6 {
		if _, err := os.Stat("/proc/net/if_inet6"); err != nil {
			return nil, nil, errors.New("--ipv6: this kernel has no IPv6 (/proc/net/if_inet6 is missing)")
		}
		nets6, err := netops.BridgeIPv6(m.Host(), br)
		if err != nil {
			return nil, nil, err
		}
		if len(nets6) == 0 && slices.ContainsFunc(cfg.Variants, isNswireVariant) {
			return nil, nil, fmt.Errorf("--ipv6: bridge %s has no global IPv6 address, so nswire gives its subjects none: "+
				"run the bench on a Docker network made with IPv6 (`docker network create --ipv6 --subnet fd00:db8:1::/64 NAME`, then --network NAME), "+
				"or give the bridge a global IPv6 address", cfg.Bridge)
		}
	}
	if slices.Contains(cfg.Workloads, WorkloadIperf3) {
		if _, err := exec.LookPath("iperf3"); err != nil {
			return nil, nil, errors.New("--iperf3: iperf3 is not installed (apt-get install iperf3), or leave --iperf3 out")
		}
	}
	if _, err := os.Stat("/run/netns"); err != nil {
		if err := os.MkdirAll("/run/netns", 0o755); err != nil {
			return nil, nil, fmt.Errorf("create /run/netns: %w", err)
		}
	}
	var b [3]byte
	rand.Read(b[:])
	lab := &benchLab{m: m, prefix: NetnsPrefix + hex.EncodeToString(b[:]), image: cfg.Image, bridge: cfg.Bridge, family: cfg.Family}

	variants := slices.Clone(cfg.Variants)
	if !cfg.NetnsOnly {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		cli, err := dockerengine.Client(m)
		if err == nil {
			_, err = cli.Ping(pctx)
		}
		if err != nil {
			res.Notes = append(res.Notes, "no Docker engine reachable ("+firstLine(err.Error())+"): subjects are network namespaces, as with --netns-only")
			cfg.NetnsOnly = true
		} else {
			if _, err := cli.ImageInspect(pctx, cfg.Image); err != nil {
				return nil, nil, fmt.Errorf("image %s: %w (build it with test/mkimage.sh, pick another with --image, or use --netns-only)", cfg.Image, err)
			}
			lab.cli = cli
		}
	}
	if cfg.NetnsOnly && slices.Contains(variants, VariantDocker) {
		variants = slices.DeleteFunc(variants, func(v string) bool { return v == VariantDocker })
		res.Notes = append(res.Notes, "variant docker skipped: it needs a Docker engine and containers (not --netns-only)")
	}
	if lab.cli != nil && slices.Contains(variants, VariantDocker) {
		if err := lab.pickDockerNetwork(ctx, cfg, res); err != nil {
			return nil, nil, err
		}
	}
	if len(variants) == 0 {
		return nil, nil, errors.New("no variant left to run: add one with --variants")
	}
	return lab, variants, nil
}

func isNswireVariant(v string) bool {
	return v == VariantOff || v == VariantObserve || v == VariantFastpath
}

// pickDockerNetwork chooses the Docker network of the docker variant: the
// one whose bridge is the bench's (--network, or the one Docker made on
// --bridge), else Docker's default network with a note. Over IPv6 the
// network must have IPv6.
func (l *benchLab) pickDockerNetwork(ctx context.Context, cfg *Config, res *Result) error {
	name := cfg.Network
	if name == "" {
		var err error
		if name, err = l.m.BridgeNetworkName(ctx, cfg.Bridge); err != nil {
			return err
		}
	}
	leaveOut := "or leave docker out: --variants " + strings.Join(slices.DeleteFunc(slices.Clone(cfg.Variants), func(v string) bool { return v == VariantDocker }), ",")
	if name == "" {
		if cfg.Family == 6 {
			return fmt.Errorf("--ipv6: variant docker needs a Docker network with IPv6 on bridge %s, and no Docker network uses that bridge: "+
				"give --network NAME of one made with `docker network create --ipv6 --subnet fd00:db8:1::/64 NAME`, %s", cfg.Bridge, leaveOut)
		}
		name = "bridge"
		res.Notes = append(res.Notes, "variant docker uses Docker's default bridge network (docker0), not "+cfg.Bridge)
	}
	if cfg.Family == 6 {
		dctx, cancel := l.m.DockerContext(ctx)
		n, err := l.cli.NetworkInspect(dctx, name, network.InspectOptions{})
		cancel()
		if err != nil {
			return fmt.Errorf("inspect docker network %s: %w", name, err)
		}
		if !n.EnableIPv6 {
			return fmt.Errorf("--ipv6: variant docker runs on Docker network %s, which has no IPv6 (it was made without --ipv6): "+
				"give --network NAME of one made with `docker network create --ipv6 --subnet fd00:db8:1::/64 NAME`, %s", name, leaveOut)
		}
	}
	l.dockerNet = name
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// setup creates the subjects of variant v.
func (l *benchLab) setup(ctx context.Context, v string) (*benchPair, error) {
	p := &benchPair{variant: v}
	switch v {
	case VariantLoopback:
		ns, err := l.newNetns("lo")
		if err != nil {
			return nil, err
		}
		ip := net.IPv4(127, 0, 0, 1).To4()
		if l.family == 6 {
			ip = net.IPv6loopback
		}
		p.client, p.server, p.clientIP, p.serverIP = ns, ns, ip, ip
	case VariantDocker:
		var ips [2]net.IP
		var hs [2]netns.NsHandle
		for i, side := range []string{"c", "s"} {
			id, pid, err := l.newContainer(ctx, l.dockerNet, v+"-"+side)
			if err != nil {
				return nil, err
			}
			dctx, cancel := l.m.DockerContext(ctx)
			c, err := l.cli.ContainerInspect(dctx, id)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("inspect container: %w", err)
			}
			var addr string
			if c.NetworkSettings != nil && c.NetworkSettings.Networks[l.dockerNet] != nil {
				addr = c.NetworkSettings.Networks[l.dockerNet].IPAddress
				if l.family == 6 {
					addr = c.NetworkSettings.Networks[l.dockerNet].GlobalIPv6Address
				}
			}
			if ips[i] = net.ParseIP(addr); ips[i] == nil {
				return nil, fmt.Errorf("Docker gave the container on network %s no IPv%d address", l.dockerNet, l.family)
			}
			if hs[i], err = l.openNetns("/proc/" + strconv.Itoa(pid) + "/ns/net"); err != nil {
				return nil, err
			}
		}
		p.client, p.server, p.clientIP, p.serverIP = hs[0], hs[1], ips[0], ips[1]
	default: // off, observe, fastpath: nswire wiring
		var recs [2]*state.Record
		var hs [2]netns.NsHandle
		for i, side := range []string{"c", "s"} {
			req := control.AttachRequest{Bridge: l.bridge, Mode: datapath.Mode(v)}
			if l.cli != nil {
				id, _, err := l.newContainer(ctx, "none", v+"-"+side)
				if err != nil {
					return nil, err
				}
				req.Target.Container = id
			} else {
				name := l.prefix + "-" + v + "-" + side
				if _, err := l.newNetns(v + "-" + side); err != nil {
					return nil, err
				}
				req.Target.NetnsPath = filepath.Join("/run/netns", name)
			}
			ar, err := l.m.Attach(ctx, req, false)
			if err != nil {
				return nil, err
			}
			l.records = append(l.records, ar.Record.ID)
			recs[i] = ar.Record
			path := ar.Record.NetnsPath
			if ar.Record.PID > 0 {
				path = "/proc/" + strconv.Itoa(ar.Record.PID) + "/ns/net"
			}
			h, err := l.openNetns(path)
			if err != nil {
				return nil, err
			}
			hs[i] = h
		}
		p.client, p.server, p.clientIP, p.serverIP = hs[0], hs[1], recs[0].IPv4(), recs[1].IPv4()
		if l.family == 6 {
			p.clientIP, p.serverIP = recs[0].IPv6(), recs[1].IPv6()
			if p.clientIP == nil || p.serverIP == nil {
				return nil, fmt.Errorf("attach gave the subjects no IPv6 address on bridge %s", l.bridge)
			}
		}
		p.clientRec, p.srvRec = recs[0], recs[1]
	}
	return p, nil
}

// ipCounts is a reading of a namespace's IP receive counters.
type ipCounts struct{ v4, v6 uint64 }

// serverIPCounts reads the IP packets received in ns so far, each family
// (/proc/net/snmp Ip InReceives and /proc/net/snmp6 Ip6InReceives as seen
// from inside ns).
func serverIPCounts(ns netns.NsHandle) (ipCounts, error) {
	var c ipCounts
	err := <-onLockedThread(ns, -1, func() error {
		data, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		if c.v4, err = snmpValue(string(data), "Ip:", "InReceives"); err != nil {
			return err
		}
		data, err = os.ReadFile("/proc/thread-self/net/snmp6")
		if err != nil {
			return err
		}
		c.v6, err = snmp6Value(string(data), "Ip6InReceives")
		return err
	})
	if err != nil {
		return c, fmt.Errorf("read the IP counters of the server's namespace: %w", err)
	}
	return c, nil
}

// snmpValue reads one counter of /proc/net/snmp: a header line and a value
// line for each group, both starting with group.
func snmpValue(text, group, key string) (uint64, error) {
	var header []string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != group {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		if i := slices.Index(header, key); i > 0 && i < len(f) {
			return strconv.ParseUint(f[i], 10, 64)
		}
		break
	}
	return 0, fmt.Errorf("no %s %s in /proc/net/snmp", group, key)
}

// snmp6Value reads one counter of /proc/net/snmp6 ("Name value" lines).
func snmp6Value(text, key string) (uint64, error) {
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			return strconv.ParseUint(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/net/snmp6", key)
}

// traffic tells, for each variant, its addresses and what the kernel
// counted since before: the IP packets its server's namespace received and,
// for observe and fastpath, nswire's counters of the server endpoint. A
// counter it cannot read is left at zero.
func (l *benchLab) traffic(variants []string, pairs map[string]*benchPair, before map[string]ipCounts) []Traffic {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []Traffic
	for _, v := range variants {
		p := pairs[v]
		t := Traffic{Variant: v, Client: p.clientIP.String(), Server: p.serverIP.String()}
		if c, err := serverIPCounts(p.server); err == nil {
			t.ServerRxIPv4, t.ServerRxIPv6 = c.v4-before[v].v4, c.v6-before[v].v6
		}
		if p.srvRec != nil && p.srvRec.Mode != datapath.Off {
			if st, err := l.m.Stats(ctx, []string{p.srvRec.ID}); err == nil && len(st) == 1 && st[0].Counted {
				t.ServerCounted = map[string]uint64{}
				for _, by := range []map[string]control.Flow{st[0].RXByProto, st[0].TXByProto} {
					for k, f := range by {
						t.ServerCounted[k] += f.Packets
					}
				}
				t.ServerFastpathed = st[0].Fastpathed.Packets
			}
		}
		out = append(out, t)
	}
	return out
}

func (l *benchLab) openNetns(path string) (netns.NsHandle, error) {
	h, err := netops.OpenNetnsPath(path)
	if err != nil {
		return h, err
	}
	l.handles = append(l.handles, h)
	return h, nil
}

// newNetns creates the namespace <prefix>-<suffix> under /run/netns with lo
// up (see netops.NewNamedNetns).
func (l *benchLab) newNetns(suffix string) (netns.NsHandle, error) {
	name := l.prefix + "-" + suffix
	ns, err := netops.NewNamedNetns(name)
	if ns.IsOpen() {
		l.netnsNames = append(l.netnsNames, name)
		l.handles = append(l.handles, ns)
	}
	return ns, err
}

// newContainer starts a container of the bench image running sleep, in
// Docker network mode netMode, and returns its ID and PID.
func (l *benchLab) newContainer(ctx context.Context, netMode, suffix string) (string, int, error) {
	name := l.prefix + "-" + suffix
	cfg := &container.Config{Image: l.image, Cmd: []string{"sleep", "1000000"}, Labels: map[string]string{Label: "1"}}
	hc := &container.HostConfig{NetworkMode: container.NetworkMode(netMode), AutoRemove: false}
	dctx, cancel := l.m.DockerContext(ctx)
	created, err := l.cli.ContainerCreate(dctx, cfg, hc, &network.NetworkingConfig{}, nil, name)
	cancel()
	if err != nil {
		return "", 0, fmt.Errorf("create container %s: %w", name, err)
	}
	l.containers = append(l.containers, created.ID)
	dctx, cancel = l.m.DockerContext(ctx)
	err = l.cli.ContainerStart(dctx, created.ID, container.StartOptions{})
	cancel()
	if err != nil {
		return "", 0, fmt.Errorf("start container %s: %w", name, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		dctx, cancel := l.m.DockerContext(ctx)
		c, err := l.cli.ContainerInspect(dctx, created.ID)
		cancel()
		if err != nil {
			return "", 0, fmt.Errorf("inspect container %s: %w", name, err)
		}
		if c.State != nil && c.State.Running && c.State.Pid > 0 {
			return created.ID, c.State.Pid, nil
		}
		if c.State != nil && (c.State.Status == "exited" || c.State.Status == "dead") {
			return "", 0, fmt.Errorf("container %s %s before it ran (exit code %d)", name, c.State.Status, c.State.ExitCode)
		}
		if time.Now().After(deadline) {
			return "", 0, fmt.Errorf("container %s not running after 1m", name)
		}
		select {
		case <-ctx.Done():
			return "", 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// close removes everything the lab created, in reverse order: attaches,
// handles, containers, namespaces. It goes on after a failure and returns
// every failure.
func (l *benchLab) close(ctx context.Context) error {
	var errs []error
	for i := len(l.records) - 1; i >= 0; i-- {
		if _, err := l.m.Detach(ctx, l.records[i]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range l.handles {
		h.Close()
	}
	for i := len(l.containers) - 1; i >= 0; i-- {
		dctx, cancel := l.m.DockerContext(ctx)
		err := l.cli.ContainerRemove(dctx, l.containers[i], container.RemoveOptions{Force: true})
		cancel()
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %.12s: %w", l.containers[i], err))
		}
	}
	for i := len(l.netnsNames) - 1; i >= 0; i-- {
		if err := netns.DeleteNamed(l.netnsNames[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete netns %s: %w", l.netnsNames[i], err))
		}
	}
	return errors.Join(errs...)
}

// measure runs one cell and turns its counts into figures.
func measure(ctx context.Context, p *benchPair, w string, cfg Config, clientCPU, serverCPU int) (Sample, error) {
	var stop atomic.Bool
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	spec := loadSpec{workload: w, clientNS: p.client, serverNS: p.server, serverIP: p.serverIP,
		warmup: cfg.Warmup, duration: cfg.Duration, clientCPU: clientCPU, serverCPU: serverCPU, stop: &stop}
	s := Sample{Variant: p.variant, Workload: w, Start: time.Now().UTC()}
	if w == WorkloadIperf3 {
		gbps, err := runIperf3(spec)
		if err != nil {
			return s, err
		}
		s.Seconds = cfg.Duration.Seconds()
		s.Metrics = map[string]float64{"throughput": gbps}
		return s, nil
	}
	// CPU counters are read at the edges of the measured window, on a
	// goroutine of its own.
	cg := ownCgroupCPUStat()
	type snaps struct {
		a, b cpuSnap
		el   time.Duration
	}
	cpuc := make(chan snaps, 1)
	base := time.Now()
	go func() {
		start := cfg.Warmup + 50*time.Millisecond
		time.Sleep(time.Until(base.Add(start)))
		a := readCPU(cg)
		t0 := time.Now()
		time.Sleep(time.Until(base.Add(start + cfg.Duration)))
		b := readCPU(cg)
		cpuc <- snaps{a, b, time.Since(t0)}
	}()
	metrics, _, measured, err := runLoad(spec)
	sn := <-cpuc
	if err != nil {
		return s, err
	}
	s.Seconds = measured.Seconds()
	s.CPU = sn.b.sub(sn.a)
	// CPU per unit of work: the CPU time of the window over the work done
	// in it (the headline rate times the window's length).
	cpuNs := float64(s.CPU.TotalNs())
	el := sn.el.Seconds()
	switch w {
	case WorkloadTCPRR, WorkloadTCPCRR:
		metrics["cpu"] = cpuNs / 1e3 / (metrics["rate"] * el)
	case WorkloadTCPStream:
		gb := metrics["throughput"] / 8 * el // GB moved in the window
		metrics["cpu"] = cpuNs / 1e6 / gb
	case WorkloadUDPRate:
		metrics["cpu"] = cpuNs / (metrics["rate"] * el)
	}
	s.Metrics = metrics
	return s, nil
}

// cpuSnap is a reading of the CPU counters.
type cpuSnap struct {
	user, sys, softirq, cgroup int64 // ns; cgroup -1 when unreadable
}

func (b cpuSnap) sub(a cpuSnap) CPUUsage {
	u := CPUUsage{UserNs: b.user - a.user, SysNs: b.sys - a.sys, SoftirqNs: b.softirq - a.softirq, CgroupNs: -1}
	if a.cgroup >= 0 && b.cgroup >= 0 {
		u.CgroupNs = b.cgroup - a.cgroup
	}
	return u
}

// userHZ is the unit of /proc/stat (sysconf(_SC_CLK_TCK) is 100 on Linux).
const userHZ = 100

func readCPU(cgroupStat string) cpuSnap {
	var s cpuSnap
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		s.user = ru.Utime.Nano()
		s.sys = ru.Stime.Nano()
	}
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq …
		if len(f) > 7 && f[0] == "cpu" {
			v, _ := strconv.ParseInt(f[7], 10, 64)
			s.softirq = v * (1e9 / userHZ)
		}
	}
	s.cgroup = -1
	if cgroupStat != "" {
		if f, err := os.Open(cgroupStat); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "usage_usec "); ok {
					if n, err := strconv.ParseInt(v, 10, 64); err == nil {
						s.cgroup = n * 1000
					}
				}
			}
			f.Close()
		}
	}
	return s
}

// ownCgroupCPUStat returns the cpu.stat file of this process's cgroup (v2),
// or "" when there is none.
func ownCgroupCPUStat() string {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			f := filepath.Join("/sys/fs/cgroup", p, "cpu.stat")
			if _, err := os.Stat(f); err == nil {
				return f
			}
		}
	}
	return ""
}

// benchEnv fills the header: what about the machine changes the result.
func benchEnv(m *control.Manager, res *Result, pairs map[string]*benchPair) {
	e := &res.Env
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		e.Kernel = unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:])
	}
	e.CPUs = runtime.NumCPU()
	e.CPUModel = cpuModel()
	e.GoVersion = runtime.Version()
	e.Subjects = "netns"
	if !res.Config.NetnsOnly {
		e.Subjects = "containers (" + res.Config.Image + ")"
	}
	e.Bridge = res.Config.Bridge
	if l, err := m.Host().LinkByName(res.Config.Bridge); err == nil {
		e.MTU = l.Attrs().MTU
	}
	// Offloads of a host veth of an nswire pair (they are the same for every
	// pair), and of the bridge.
	var parts []string
	for _, v := range []string{VariantOff, VariantObserve, VariantFastpath} {
		if p := pairs[v]; p != nil && p.srvRec != nil {
			parts = append(parts, "veth "+offloads(m, p.srvRec.HostIf))
			break
		}
	}
	parts = append(parts, "bridge "+offloads(m, res.Config.Bridge))
	e.Offloads = strings.Join(parts, "; ")
	var modes []string
	for _, v := range []string{VariantObserve, VariantFastpath} {
		if p := pairs[v]; p != nil && p.srvRec != nil && !slices.Contains(modes, string(p.srvRec.Hook)) {
			modes = append(modes, string(p.srvRec.Hook))
		}
	}
	e.AttachMode = strings.Join(modes, ",")
	if e.AttachMode == "" {
		e.AttachMode = "none (no observe or fastpath variant)"
	}
	e.BridgeNetfilter = bridgeNetfilter()
	_, _, e.Pinning = cpuSplit(!res.Config.NoPin)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// bridgeNetfilter describes whether bridged packets go through iptables.
func bridgeNetfilter() string {
	var parts []string
	for _, k := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables"} {
		data, err := os.ReadFile("/proc/sys/net/bridge/" + k)
		if err != nil {
			return "off (br_netfilter not loaded)"
		}
		parts = append(parts, k+"="+strings.TrimSpace(string(data)))
	}
	return strings.Join(parts, " ")
}

// ethtool legacy commands (linux/ethtool.h) read with SIOCETHTOOL.
var ethtoolFlags = []struct {
	cmd  uint32
	name string
}{
	{0x00000016, "tx-csum"}, // ETHTOOL_GTXCSUM
	{0x00000018, "sg"},      // ETHTOOL_GSG
	{0x0000001e, "tso"},     // ETHTOOL_GTSO
	{0x00000023, "gso"},     // ETHTOOL_GGSO
	{0x0000002b, "gro"},     // ETHTOOL_GGRO
}

// offloads describes the offloads of the host interface name: the ethtool
// flags and the GSO/GRO size limits.
func offloads(m *control.Manager, name string) string {
	var parts []string
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(fd)
		for _, f := range ethtoolFlags {
			on, err := ethtoolGet(fd, name, f.cmd)
			if err != nil {
				continue
			}
			state := "off"
			if on {
				state = "on"
			}
			parts = append(parts, f.name+" "+state)
		}
	}
	if l, err := m.Host().LinkByName(name); err == nil {
		a := l.Attrs()
		parts = append(parts, fmt.Sprintf("gso_max %d", a.GSOMaxSize), fmt.Sprintf("gro_max %d", a.GROMaxSize))
	}
	return strings.Join(parts, ", ")
}
