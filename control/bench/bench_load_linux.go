package bench

// The bench's load generator. Each workload runs a server and a client, each
// on its own goroutine locked to its own OS thread; the thread is pinned to a
// CPU and switched into its subject's network namespace, and every socket is
// created there. The threads are never switched back: their goroutines exit
// still locked, so the Go runtime destroys them instead of reusing a thread
// in a foreign namespace or with a narrowed CPU mask. No goroutine is started
// from a switched thread.
//
// The sockets are plain blocking sockets driven with read/write system calls
// (golang.org/x/sys/unix), not the Go netpoller, so each transaction costs
// two system calls and no scheduler hand-off: the figures measure the
// kernel's datapath, not the Go runtime.

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nswire/nswire/netops"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// loadSpec is one measured cell.
type loadSpec struct {
	workload  string
	clientNS  netns.NsHandle
	serverNS  netns.NsHandle
	serverIP  net.IP
	warmup    time.Duration
	duration  time.Duration
	clientCPU int // -1: not pinned
	serverCPU int
	stop      *atomic.Bool // set to abort the cell
}

// loadWindow is the measured window of a cell, on the monotonic clock.
type loadWindow struct {
	base       time.Time
	start, end time.Duration // since base
}

func (w loadWindow) now() time.Duration { return time.Since(w.base) }

// sideResult is what one side counted inside the window.
type sideResult struct {
	count   float64       // transactions, bytes or datagrams
	first   time.Duration // first and last event inside the window
	last    time.Duration
	samples []int32 // per-transaction latency in ns (tcp_rr client)
	errors  int     // failed exchanges, retried (tcp_crr client)
}

func (s *sideResult) add(t time.Duration, n float64, w loadWindow) {
	if t < w.start || t > w.end {
		return
	}
	if s.count == 0 {
		s.first = t
	}
	s.count += n
	s.last = t
}

// onLockedThread runs fn on a new thread pinned to cpu (when ≥ 0) and
// switched into ns for good (netops.Go).
func onLockedThread(ns netns.NsHandle, cpu int, fn func() error) <-chan error {
	return netops.Go(ns, cpu, fn)
}

// sockaddr is ip:port as a socket address of ip's family.
func sockaddr(ip net.IP, port int) unix.Sockaddr {
	if ip4 := ip.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: port}
		copy(sa.Addr[:], ip4)
		return sa
	}
	sa := &unix.SockaddrInet6{Port: port}
	copy(sa.Addr[:], ip.To16())
	return sa
}

// domain is the socket domain of ip: AF_INET or AF_INET6.
func domain(ip net.IP) int {
	if ip.To4() != nil {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// portOf is the port of a socket address of either family.
func portOf(sa unix.Sockaddr) int {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return 0
}

func setTimeout(fd, opt int, d time.Duration) error {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv)
}

// pollTimeout bounds every blocking call so that a side notices the end of
// the cell or an abort even when its peer is gone.
const pollTimeout = 100 * time.Millisecond

func retryable(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)
}

// listen creates a socket of typ and ip's family bound to ip:0 (listening,
// for TCP) in the calling thread's namespace and returns it with its port.
func listen(typ int, ip net.IP) (int, int, error) {
	fd, err := unix.Socket(domain(ip), typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (int, int, error) {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("%s: %w", what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("set SO_REUSEADDR", err)
	}
	if err := unix.Bind(fd, sockaddr(ip, 0)); err != nil {
		return fail("bind "+ip.String(), err)
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.Listen(fd, 1024); err != nil {
			return fail("listen", err)
		}
	}
	if err := setTimeout(fd, unix.SO_RCVTIMEO, pollTimeout); err != nil {
		return fail("set SO_RCVTIMEO", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	return fd, portOf(sa), nil
}

// dial connects a new TCP socket of the calling thread's namespace to ip:port.
func dial(ip net.IP, port int, nodelay bool) (int, error) {
	fd, err := unix.Socket(domain(ip), unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if nodelay {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("set TCP_NODELAY: %w", err)
		}
	}
	for {
		err = unix.Connect(fd, sockaddr(ip, port))
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(port)), err)
	}
	return fd, nil
}

// acceptOne listens on ip, sends the port to ready and returns the one
// connection the workload's client makes (the listener is closed).
func acceptOne(ip net.IP, ready chan<- int, stop func() bool) (int, error) {
	lfd, port, err := listen(unix.SOCK_STREAM, ip)
	if err != nil {
		return -1, err
	}
	defer unix.Close(lfd)
	ready <- port
	return accept(lfd, stop)
}

// accept waits for a connection on lfd until stop or the deadline.
func accept(lfd int, stop func() bool) (int, error) {
	for {
		fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err == nil {
			return fd, nil
		}
		if !retryable(err) {
			return -1, fmt.Errorf("accept: %w", err)
		}
		if stop() {
			return -1, errStopped
		}
	}
}

var errStopped = errors.New("stopped")

// runLoad runs one cell and returns its figures (the workload's metrics but
// cpu, which the caller adds) and the number of work units the CPU time is
// divided by.
func runLoad(spec loadSpec) (map[string]float64, float64, time.Duration, error) {
	w := loadWindow{base: time.Now()}
	w.start = spec.warmup + 50*time.Millisecond // setup margin
	w.end = w.start + spec.duration
	var server, client sideResult
	var aborted atomic.Bool
	stop := func() bool { return aborted.Load() || spec.stop.Load() }
	ready := make(chan int, 1)
	var serverDone, clientDone <-chan error
	switch spec.workload {
	case WorkloadTCPRR:
		serverDone = onLockedThread(spec.serverNS, spec.serverCPU, func() error { return rrServer(spec.serverIP, ready, stop) })
		clientDone = onLockedThread(spec.clientNS, spec.clientCPU, func() error { return rrClient(spec.serverIP, ready, w, stop, &client) })
	case WorkloadTCPCRR:
		serverDone = onLockedThread(spec.serverNS, spec.serverCPU, func() error { return crrServer(spec.serverIP, ready, w, stop) })
		clientDone = onLockedThread(spec.clientNS, spec.clientCPU, func() error { return crrClient(spec.serverIP, ready, w, stop, &client) })
	case WorkloadTCPStream:
		serverDone = onLockedThread(spec.serverNS, spec.serverCPU, func() error { return streamServer(spec.serverIP, ready, w, stop, &server) })
		clientDone = onLockedThread(spec.clientNS, spec.clientCPU, func() error { return streamClient(spec.serverIP, ready, w, stop) })
	case WorkloadUDPRate:
		serverDone = onLockedThread(spec.serverNS, spec.serverCPU, func() error { return udpServer(spec.serverIP, ready, w, stop, &server) })
		clientDone = onLockedThread(spec.clientNS, spec.clientCPU, func() error { return udpClient(spec.serverIP, ready, w, stop, &client) })
	default:
		return nil, 0, 0, fmt.Errorf("workload %q has no load generator", spec.workload)
	}
	var errs []error
	// Whichever side fails first aborts the other.
	for range 2 {
		select {
		case err := <-serverDone:
			serverDone = nil
			if err != nil && err != errStopped {
				errs = append(errs, fmt.Errorf("server: %w", err))
				aborted.Store(true)
			}
		case err := <-clientDone:
			clientDone = nil
			if err != nil && err != errStopped {
				errs = append(errs, fmt.Errorf("client: %w", err))
				aborted.Store(true)
			}
		}
	}
	if len(errs) > 0 {
		return nil, 0, 0, errors.Join(errs...)
	}
	if spec.stop.Load() {
		return nil, 0, 0, errStopped
	}
	m := map[string]float64{}
	var units float64
	var measured time.Duration
	rate := func(s *sideResult) (float64, time.Duration, error) {
		el := s.last - s.first
		if s.count < 2 || el <= 0 {
			return 0, 0, fmt.Errorf("%s: nothing measured in %s (is the path between the subjects working?)", spec.workload, spec.duration)
		}
		return s.count / el.Seconds(), el, nil
	}
	var err error
	switch spec.workload {
	case WorkloadTCPRR:
		if m["rate"], measured, err = rate(&client); err != nil {
			return nil, 0, 0, err
		}
		slices.Sort(client.samples)
		m["p50"] = float64(percentile(client.samples, 0.50)) / 1e3
		m["p99"] = float64(percentile(client.samples, 0.99)) / 1e3
		units = client.count
	case WorkloadTCPCRR:
		if m["rate"], measured, err = rate(&client); err != nil {
			return nil, 0, 0, err
		}
		m["resets"] = float64(client.errors)
		units = client.count
	case WorkloadTCPStream:
		var bps float64
		if bps, measured, err = rate(&server); err != nil {
			return nil, 0, 0, err
		}
		m["throughput"] = bps * 8 / 1e9
		units = server.count
	case WorkloadUDPRate:
		if m["rate"], measured, err = rate(&server); err != nil {
			return nil, 0, 0, err
		}
		loss := 0.0
		if client.count > 0 {
			loss = 100 * (1 - server.count/client.count)
		}
		m["loss"] = max(loss, 0)
		units = server.count
	}
	return m, units, measured, nil
}

// percentile returns the q-quantile of sorted xs (nearest rank).
func percentile(sorted []int32, q float64) int32 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)) + 0.5)
	i = min(max(i-1, 0), len(sorted)-1)
	return sorted[i]
}

// rrServer answers 1-byte requests on one connection with 1 byte.
func rrServer(ip net.IP, ready chan<- int, stop func() bool) error {
	fd, err := acceptOne(ip, ready, stop)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fmt.Errorf("set TCP_NODELAY: %w", err)
	}
	if err := setTimeout(fd, unix.SO_RCVTIMEO, pollTimeout); err != nil {
		return err
	}
	buf := make([]byte, 1)
	for {
		n, err := unix.Read(fd, buf)
		if n == 0 && err == nil {
			return nil // the client closed
		}
		if err != nil {
			if retryable(err) && !stop() {
				continue
			}
			if retryable(err) {
				return errStopped
			}
			return fmt.Errorf("read: %w", err)
		}
		if _, err := unix.Write(fd, buf); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
}

// rrClient sends 1-byte requests on one connection and times each answer.
func rrClient(ip net.IP, ready <-chan int, w loadWindow, stop func() bool, res *sideResult) error {
	port, err := waitReady(ready, stop)
	if err != nil {
		return err
	}
	fd, err := dial(ip, port, true)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := setTimeout(fd, unix.SO_RCVTIMEO, time.Second); err != nil {
		return err
	}
	res.samples = make([]int32, 0, 1<<18)
	buf := []byte{1}
	for {
		t0 := w.now()
		if _, err := unix.Write(fd, buf); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		for {
			n, err := unix.Read(fd, buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("read (no answer within 1s): %w", err)
			}
			if n == 0 {
				return errors.New("the server closed the connection")
			}
			break
		}
		t1 := w.now()
		if t1 >= w.start && t1 <= w.end {
			res.add(t1, 1, w)
			res.samples = append(res.samples, int32(min(t1-t0, time.Duration(1<<31-1))))
		}
		if t1 > w.end || stop() {
			return nil
		}
	}
}

func waitReady(ready <-chan int, stop func() bool) (int, error) {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case p := <-ready:
			return p, nil
		case <-t.C:
			return 0, errors.New("the server did not start within 10s")
		case <-time.After(pollTimeout):
			if stop() {
				return 0, errStopped
			}
		}
	}
}

// crrServer accepts connections, answers one 1-byte request on each and
// closes it, until the end of the window.
func crrServer(ip net.IP, ready chan<- int, w loadWindow, stop func() bool) error {
	lfd, port, err := listen(unix.SOCK_STREAM, ip)
	if err != nil {
		return err
	}
	defer unix.Close(lfd)
	ready <- port
	buf := make([]byte, 1)
	done := func() bool { return stop() || w.now() > w.end+time.Second }
	for {
		fd, err := accept(lfd, done)
		if err == errStopped {
			if stop() {
				return errStopped
			}
			return nil
		}
		if err != nil {
			return err
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		setTimeout(fd, unix.SO_RCVTIMEO, time.Second)
		// A failed exchange is the client's to report: it counts only
		// complete ones. After the answer the server waits for the client's
		// close (an RST), so that the client always closes first and no
		// half-closed socket of the server outlives the exchange.
		if n, err := unix.Read(fd, buf); err == nil && n == 1 {
			if _, err := unix.Write(fd, buf); err == nil {
				unix.Read(fd, buf)
			}
		}
		unix.Close(fd)
	}
}

// crrClient connects, sends 1 byte, waits for the answer and closes with
// an RST (SO_LINGER 0, so that no TIME_WAIT piles up and the ephemeral ports
// last), again and again.
func crrClient(ip net.IP, ready <-chan int, w loadWindow, stop func() bool, res *sideResult) error {
	port, err := waitReady(ready, stop)
	if err != nil {
		return err
	}
	buf := []byte{1}
	linger := &unix.Linger{Onoff: 1, Linger: 0}
	for {
		fd, err := dial(ip, port, true)
		if err != nil {
			return err
		}
		if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, linger); err != nil {
			unix.Close(fd)
			return fmt.Errorf("set SO_LINGER: %w", err)
		}
		setTimeout(fd, unix.SO_RCVTIMEO, time.Second)
		_, err = unix.Write(fd, buf)
		var n int
		if err == nil {
			for {
				n, err = unix.Read(fd, buf)
				if err != unix.EINTR {
					break
				}
			}
		}
		unix.Close(fd)
		t := w.now()
		if err != nil || n != 1 {
			// A reset exchange is retried and counted; only a steady
			// failure is an error.
			res.errors++
			if res.errors > 100 && res.errors*100 > int(res.count) {
				if err == nil {
					err = errors.New("the server closed the connection without an answer")
				}
				return fmt.Errorf("request/response failed %d times: %w", res.errors, err)
			}
		} else {
			res.add(t, 1, w)
		}
		if t > w.end || stop() {
			return nil
		}
	}
}

// streamBuf is the size of each write and read of tcp_stream.
const streamBuf = 128 << 10

// streamServer reads one connection and counts the bytes received inside
// the window.
func streamServer(ip net.IP, ready chan<- int, w loadWindow, stop func() bool, res *sideResult) error {
	fd, err := acceptOne(ip, ready, stop)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := setTimeout(fd, unix.SO_RCVTIMEO, pollTimeout); err != nil {
		return err
	}
	buf := make([]byte, streamBuf)
	for {
		n, err := unix.Read(fd, buf)
		t := w.now()
		if err != nil && !retryable(err) {
			return fmt.Errorf("read: %w", err)
		}
		if n == 0 && err == nil {
			return errors.New("the sender closed the connection early")
		}
		if n > 0 {
			res.add(t, float64(n), w)
		}
		if t > w.end {
			return nil // closing makes the sender stop
		}
		if stop() {
			return errStopped
		}
	}
}

// streamClient writes 128 KiB buffers until the receiver closes.
func streamClient(ip net.IP, ready <-chan int, w loadWindow, stop func() bool) error {
	port, err := waitReady(ready, stop)
	if err != nil {
		return err
	}
	fd, err := dial(ip, port, false)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := setTimeout(fd, unix.SO_SNDTIMEO, pollTimeout); err != nil {
		return err
	}
	buf := make([]byte, streamBuf)
	for {
		_, err := unix.SendmsgN(fd, buf, nil, nil, unix.MSG_NOSIGNAL)
		if err != nil && !retryable(err) {
			if w.now() > w.end {
				return nil // the receiver is done and closed
			}
			return fmt.Errorf("write: %w", err)
		}
		if stop() {
			return errStopped
		}
		if w.now() > w.end+5*time.Second {
			return errors.New("the receiver did not close after the window")
		}
	}
}

// udpPayload is the size of each datagram of udp_rate.
const udpPayload = 64

// udpServer counts the datagrams received inside the window.
func udpServer(ip net.IP, ready chan<- int, w loadWindow, stop func() bool, res *sideResult) error {
	fd, port, err := listen(unix.SOCK_DGRAM, ip)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// A deep receive queue so that the receiver's scheduling jitter does
	// not turn into loss; best effort (SO_RCVBUFFORCE needs CAP_NET_ADMIN).
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	ready <- port
	buf := make([]byte, 2048)
	for {
		n, err := unix.Read(fd, buf)
		t := w.now()
		if err != nil && !retryable(err) {
			return fmt.Errorf("read: %w", err)
		}
		if err == nil && n > 0 {
			res.add(t, 1, w)
		}
		if t > w.end+pollTimeout {
			return nil
		}
		if stop() {
			return errStopped
		}
	}
}

// udpClient sends datagrams as fast as the socket takes them and counts the
// ones sent inside the window.
func udpClient(ip net.IP, ready <-chan int, w loadWindow, stop func() bool, res *sideResult) error {
	port, err := waitReady(ready, stop)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(domain(ip), unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sockaddr(ip, port)); err != nil {
		return fmt.Errorf("connect %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(port)), err)
	}
	setTimeout(fd, unix.SO_SNDTIMEO, pollTimeout)
	buf := make([]byte, udpPayload)
	for i := 0; ; i++ {
		_, err := unix.Write(fd, buf)
		t := w.now()
		switch {
		case err == nil:
			res.add(t, 1, w)
		case retryable(err), err == unix.ENOBUFS, err == unix.ECONNREFUSED:
			// a full queue or an ICMP error from an earlier datagram
		default:
			return fmt.Errorf("send: %w", err)
		}
		if t > w.end {
			return nil
		}
		if i%64 == 0 && stop() {
			return errStopped
		}
	}
}

// cpuSplit picks the CPUs for the client and the server: two different CPUs
// of the process's affinity mask, or none (-1) when it has fewer than two or
// pinning is off.
func cpuSplit(pin bool) (client, server int, desc string) {
	if !pin {
		return -1, -1, "off (--no-pin)"
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return -1, -1, "off (cannot read the CPU mask: " + err.Error() + ")"
	}
	var cpus []int
	for i := range 1024 {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) < 2 {
		return -1, -1, "off (one CPU)"
	}
	client, server = cpus[0], cpus[1]
	return client, server, fmt.Sprintf("client on CPU %d, server on CPU %d", client, server)
}
