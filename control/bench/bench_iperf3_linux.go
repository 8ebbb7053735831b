package bench

// The iperf3 cross-check of tcp_stream, and the ethtool read of the header.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// iperf3Port is the port of the iperf3 server inside the server namespace,
// which holds only the bench's own sockets.
const iperf3Port = 5201

// startInNetns starts cmd from the thread of onLockedThread, which is in ns:
// the child inherits the thread's network namespace.
func startInNetns(spec loadSpec, server bool, cmd *exec.Cmd) error {
	ns, cpu := spec.clientNS, spec.clientCPU
	if server {
		ns, cpu = spec.serverNS, spec.serverCPU
	}
	return <-onLockedThread(ns, cpu, func() error { return cmd.Start() })
}

// runIperf3 runs iperf3 between the two ends and returns the throughput the
// receiver saw, in Gbit/s.
func runIperf3(spec loadSpec) (float64, error) {
	bin, err := exec.LookPath("iperf3")
	if err != nil {
		return 0, errors.New("iperf3 is not installed")
	}
	ip := spec.serverIP.String()
	srv := exec.Command(bin, "-s", "-1", "-B", ip, "-p", strconv.Itoa(iperf3Port))
	if err := startInNetns(spec, true, srv); err != nil {
		return 0, fmt.Errorf("start iperf3 server: %w", err)
	}
	defer func() {
		srv.Process.Kill()
		srv.Wait()
	}()
	secs := int(math.Ceil(spec.duration.Seconds()))
	omit := int(math.Ceil(spec.warmup.Seconds()))
	var out bytes.Buffer
	for try := 0; ; try++ {
		out.Reset()
		cl := exec.Command(bin, "-c", ip, "-p", strconv.Itoa(iperf3Port), "-t", strconv.Itoa(secs), "-O", strconv.Itoa(omit), "-J")
		cl.Stdout = &out
		if err := startInNetns(spec, false, cl); err != nil {
			return 0, fmt.Errorf("start iperf3 client: %w", err)
		}
		err := cl.Wait()
		if err == nil {
			break
		}
		if try >= 20 || spec.stop.Load() { // the server may still be starting
			return 0, fmt.Errorf("iperf3 client: %w: %s", err, bytes.TrimSpace(out.Bytes()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return 0, fmt.Errorf("read iperf3 output: %w", err)
	}
	if r.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	if r.End.SumReceived.BitsPerSecond <= 0 {
		return 0, errors.New("iperf3 measured nothing")
	}
	return r.End.SumReceived.BitsPerSecond / 1e9, nil
}

// ethtoolGet reads one legacy ethtool flag of interface name.
func ethtoolGet(fd int, name string, cmd uint32) (bool, error) {
	type ethtoolValue struct{ cmd, data uint32 }
	type ifreq struct {
		name [unix.IFNAMSIZ]byte
		data uintptr
		_    [16]byte
	}
	ev := &ethtoolValue{cmd: cmd}
	var ifr ifreq
	copy(ifr.name[:], name)
	ifr.data = uintptr(unsafe.Pointer(ev))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(ev)
	if errno != 0 {
		return false, errno
	}
	return ev.data != 0, nil
}
