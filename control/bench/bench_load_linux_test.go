package bench

import (
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// TestLoadLoopback runs every workload of the load generator over lo of the
// test's own namespace (no privilege needed), over IPv4 and IPv6, and checks
// the figures.
func TestLoadLoopback(t *testing.T) {
	ns, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	for _, ip := range []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback} {
		for _, w := range Workloads {
			t.Run(w+"/"+ip.String(), func(t *testing.T) { testLoad(t, ns, w, ip) })
		}
	}
}

// testLoad runs workload w once between two sockets of ns, the server on ip.
func testLoad(t *testing.T, ns netns.NsHandle, w string, ip net.IP) {
	var stop atomic.Bool
	c, s, _ := cpuSplit(os.Getenv("NSWIRE_NO_PIN") == "")
	m, units, el, err := runLoad(loadSpec{workload: w, clientNS: ns, serverNS: ns, serverIP: ip,
		warmup: 50 * time.Millisecond, duration: 300 * time.Millisecond, clientCPU: c, serverCPU: s, stop: &stop})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %v units %.0f over %s", w, m, units, el)
	if units <= 0 || el <= 0 {
		t.Errorf("units %v, elapsed %v", units, el)
	}
	for _, d := range Metrics(w) {
		if d.Key == "cpu" {
			continue
		}
		v, ok := m[d.Key]
		if !ok || (v <= 0 && !d.MayBeZero) {
			t.Errorf("metric %s = %v (present %v)", d.Key, v, ok)
		}
	}
}
