package control

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/netops"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ProbeWait bounds how long an address probe waits for an answer. A
// namespace on the same host answers the kernel's ARP request in about
// 0.1 ms (measured: the host's neighbour entry is reachable at the first
// look, 96 µs after the request), a host behind a physical port of the
// bridge in well under a millisecond on a LAN. 3 ms covers both with a
// margin for a loaded machine without making every attach wait long. The
// probe goes out before the veth step and its answer is collected in the
// address step, so the wait overlaps the veth steps (about 1 ms) and an
// attach pays only what is left of it. (Misses blamed on load were the
// bridge MAC change below, not the bound.)
const ProbeWait = 3 * time.Millisecond

// ARP operations.
const (
	arpRequest = 1
	arpReply   = 2
)

// arpPacket is the payload of an Ethernet/IPv4 ARP packet (RFC 826).
type arpPacket struct {
	Op       uint16
	SenderHW net.HardwareAddr
	SenderIP net.IP
	TargetHW net.HardwareAddr
	TargetIP net.IP
}

const arpLen = 28

// marshal encodes p; hardware addresses must be 6 bytes, IPs IPv4.
func (p *arpPacket) marshal() []byte {
	b := make([]byte, arpLen)
	binary.BigEndian.PutUint16(b[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(b[2:], 0x0800) // IPv4
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], p.Op)
	copy(b[8:14], p.SenderHW)
	copy(b[14:18], p.SenderIP.To4())
	copy(b[18:24], p.TargetHW)
	copy(b[24:28], p.TargetIP.To4())
	return b
}

// parseARP decodes an Ethernet/IPv4 ARP payload. It never panics: anything
// that is not one is an error.
func parseARP(b []byte) (*arpPacket, error) {
	if len(b) < arpLen {
		return nil, fmt.Errorf("arp: %d bytes, want %d", len(b), arpLen)
	}
	if binary.BigEndian.Uint16(b[0:]) != 1 || binary.BigEndian.Uint16(b[2:]) != 0x0800 || b[4] != 6 || b[5] != 4 {
		return nil, errors.New("arp: not Ethernet/IPv4")
	}
	return &arpPacket{
		Op:       binary.BigEndian.Uint16(b[6:]),
		SenderHW: net.HardwareAddr(append([]byte(nil), b[8:14]...)),
		SenderIP: net.IP(append([]byte(nil), b[14:18]...)),
		TargetHW: net.HardwareAddr(append([]byte(nil), b[18:24]...)),
		TargetIP: net.IP(append([]byte(nil), b[24:28]...)),
	}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// arpSocket is an AF_PACKET datagram socket for ARP, bound to one interface.
type arpSocket struct {
	fd      int
	ifindex int
}

// openARP opens an ARP socket bound to ifindex in the caller's namespace,
// or, when ns is open, inside ns: the socket is created on a locked thread
// switched into ns (and back), and stays bound to ns afterwards.
func openARP(ns netns.NsHandle, ifindex int) (*arpSocket, error) {
	fd := -1
	create := func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(unix.ETH_P_ARP)))
		return err
	}
	var err error
	if ns.IsOpen() {
		err = netops.Do(ns, create)
	} else {
		err = create()
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("open arp socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind arp socket to ifindex %d: %w", ifindex, err)
	}
	return &arpSocket{fd: fd, ifindex: ifindex}, nil
}

func (s *arpSocket) Close() { unix.Close(s.fd) }

// send broadcasts p on the socket's interface.
func (s *arpSocket) send(p *arpPacket) error {
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: s.ifindex, Halen: 6}
	copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := unix.Sendto(s.fd, p.marshal(), 0, to); err != nil {
		return fmt.Errorf("send arp: %w", err)
	}
	return nil
}

// await reads ARP packets until match accepts one or the deadline passes;
// it returns the accepted packet, or nil at the deadline. Packets the
// socket itself sent are ignored.
func (s *arpSocket) await(deadline time.Time, match func(*arpPacket) bool) (*arpPacket, error) {
	buf := make([]byte, 128)
	for {
		for {
			n, from, err := unix.Recvfrom(s.fd, buf, 0)
			if errors.Is(err, unix.EAGAIN) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("read arp: %w", err)
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && (ll.Pkttype == unix.PACKET_OUTGOING || ll.Ifindex != s.ifindex) {
				continue
			}
			if p, err := parseARP(buf[:n]); err == nil && match(p) {
				return p, nil
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		ms := int((left + time.Millisecond - 1) / time.Millisecond)
		fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, ms); err != nil && !errors.Is(err, unix.EINTR) {
			return nil, fmt.Errorf("poll arp: %w", err)
		}
	}
}

// Why the attach path asks the kernel to send its ARP packets (a neighbour
// entry created with NTF_USE starts resolution at once) instead of using an
// AF_PACKET socket: closing a packet socket waits for an RCU grace period
// (synchronize_net in packet_release), 10 to 100 ms on a busy machine,
// which would triple the cost of an attach. A netlink request costs
// microseconds.

// addrProbe is a probe of one IPv4 address on a bridge: the host's kernel
// sends "who-has IP tell GATEWAY" on the bridge (flooded to every port) and
// whoever holds IP answers; the answer makes the host's neighbour entry for
// IP reachable.
type addrProbe struct {
	h        *netlink.Handle
	bridge   int
	ip       net.IP
	deadline time.Time
	existed  bool // an entry (FAILED or INCOMPLETE) was there before
	done     bool
}

// startProbe starts the kernel's ARP resolution of ip on the bridge and
// returns at once; Conflict collects the answer. The wait runs from now.
func startProbe(h *netlink.Handle, bridgeIndex int, ip net.IP, wait time.Duration) (*addrProbe, error) {
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	p := &addrProbe{h: h, bridge: bridgeIndex, ip: ip, deadline: time.Now().Add(wait)}
	if n, _ := p.lookup(); n != nil {
		p.existed = true
	}
	if err := netops.ResolveNeigh(h, bridgeIndex, ip); err != nil {
		return nil, fmt.Errorf("probe %s: %w", ip, err)
	}
	return p, nil
}

func (p *addrProbe) lookup() (*netlink.Neigh, error) { return netops.Neigh(p.h, p.bridge, p.ip) }

// Conflict waits until the probe's deadline for anyone that answers for
// the address, and returns its MAC, or nil when nobody did. An entry the
// probe created that got no answer is deleted again.
func (p *addrProbe) Conflict() (net.HardwareAddr, error) {
	if p == nil || p.done {
		return nil, nil
	}
	p.done = true
	resent := 0
	for {
		n, err := p.lookup()
		if err != nil {
			return nil, fmt.Errorf("probe %s: %w", p.ip, err)
		}
		// The entry vanished: the bridge's neighbour table was flushed, as
		// happens when enslaving a port changes the MAC of a bridge whose
		// MAC is not set (Docker sets docker0's). Ask again.
		if n == nil && resent < 3 {
			resent++
			if err := netops.ResolveNeigh(p.h, p.bridge, p.ip); err != nil {
				return nil, fmt.Errorf("probe %s: %w", p.ip, err)
			}
			continue
		}
		if n != nil && n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0 {
			return n.HardwareAddr, nil
		}
		if time.Now().After(p.deadline) {
			if n != nil && !p.existed {
				netops.DelNeigh(p.h, n) // nobody answered: leave no trace
			}
			return nil, nil
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// Close ends the probe without waiting, removing the entry it created.
// Safe to call twice.
func (p *addrProbe) Close() {
	if p == nil || p.done {
		return
	}
	p.done = true
	if n, _ := p.lookup(); n != nil && !p.existed && n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) != 0 {
		netops.DelNeigh(p.h, n)
	}
}

// ProbeAddress probes ip on the bridge called bridge and returns the MAC
// of whoever answers within wait, or nil.
func (m *Manager) ProbeAddress(bridge string, ip net.IP, wait time.Duration) (net.HardwareAddr, error) {
	br, err := netops.LinkByName(m.host, bridge)
	if err != nil {
		return nil, fmt.Errorf("find bridge %s: %w", bridge, err)
	}
	p, err := startProbe(m.host, br.Attrs().Index, ip, wait)
	if err != nil {
		return nil, err
	}
	return p.Conflict()
}

// announce makes the kernel of the container's namespace send a
// gratuitous ARP for ip from its interface (ifindex in nsh's namespace):
// resolving its own address, the kernel broadcasts "who-has IP tell IP"
// with the interface's MAC, an ARP announcement (RFC 5227), and repeats it
// twice at one-second intervals (the kernel's resolution retries) before the
// entry fails and is dropped. Neighbours with a stale entry for ip update
// it at once. hostIf is the host end of the veth: the announcement waits (at
// most 100 ms, normally not at all) until the bridge forwards from that
// port, or the bridge would drop it.
func announce(nsh *netlink.Handle, ifindex int, ip net.IP, hostIf string) error {
	waitForwarding(hostIf, 100*time.Millisecond)
	if err := netops.ResolveNeigh(nsh, ifindex, ip); err != nil {
		return fmt.Errorf("announce %s: %w", ip, err)
	}
	return nil
}

// arpResolve asks, from inside ns on ifindex with mac/ip as sender, who has
// target, and returns the MAC that answered within wait, or nil.
func arpResolve(ns netns.NsHandle, ifindex int, mac net.HardwareAddr, ip, target net.IP, wait time.Duration) (net.HardwareAddr, error) {
	s, err := openARP(ns, ifindex)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	deadline := time.Now().Add(wait)
	p := &arpPacket{Op: arpRequest, SenderHW: mac, SenderIP: ip, TargetHW: make(net.HardwareAddr, 6), TargetIP: target}
	if err := s.send(p); err != nil {
		return nil, err
	}
	got, err := s.await(deadline, func(a *arpPacket) bool { return a.Op == arpReply && a.SenderIP.Equal(target.To4()) })
	if err != nil || got == nil {
		return nil, err
	}
	return got.SenderHW, nil
}

// maxProbeTries bounds how many automatically chosen addresses an attach
// probes before it gives up.
const maxProbeTries = 10

// startAddrProbe probes rec's address on its bridge.
func (m *Manager) startAddrProbe(rec *state.Record) (*addrProbe, error) {
	br, err := netops.LinkByName(m.host, rec.Bridge)
	if err != nil {
		return nil, fmt.Errorf("find bridge %s: %w", rec.Bridge, err)
	}
	return startProbe(m.host, br.Attrs().Index, rec.IPv4(), ProbeWait)
}

// settleAddress collects the answer to the probe of rec's address. If
// anyone holds the address, a given address (--ip) is refused; an
// automatically chosen one is replaced by the next free one, probed in turn
// (at most maxProbeTries), and rec.Address is updated.
func (m *Manager) settleAddress(ctx context.Context, t *Target, req AttachRequest, rec *state.Record, probe *addrProbe) error {
	for try := 1; ; try++ {
		holder, err := probe.Conflict()
		probe.Close()
		if err != nil {
			return fmt.Errorf("probe %s: %w", rec.IP(), err)
		}
		if holder == nil {
			return nil
		}
		who := fmt.Sprintf("a host with MAC %s that answered ARP for it on %s", holder, rec.Bridge)
		if req.IP.IsSet() {
			return fmt.Errorf("--ip %s is already in use by %s: pick another address", rec.IP(), who)
		}
		if try == maxProbeTries {
			return fmt.Errorf("the %d addresses nswire chose on %s are all in use by hosts it did not know of (the last: %s, by %s): give one with --ip", try, rec.Bridge, rec.IP(), who)
		}
		if m.conflicts == nil {
			m.conflicts = map[string]string{}
		}
		m.conflicts[rec.IP().String()] = who
		next, err := m.plan(ctx, t, req)
		if err != nil {
			return err
		}
		rec.Address = next.Address
		if probe, err = m.startAddrProbe(rec); err != nil {
			return err
		}
	}
}

// waitForwarding polls the bridge port state of hostIf until it is
// forwarding (3) or timeout passes. The port forwards once the kernel's
// link watcher saw the veth's carrier, normally well under a millisecond
// after both ends are up.
func waitForwarding(hostIf string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile("/sys/class/net/" + hostIf + "/brport/state")
		if err != nil || strings.TrimSpace(string(b)) == "3" || time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}
