//go:build linux

package test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/test/testenv"
)

// rawSender is an AF_PACKET socket bound to an interface inside a
// container's namespace: it sends frames exactly as built, as a process in
// the container with CAP_NET_RAW could.
type rawSender struct {
	fd      int
	ifindex int
}

func newRawSender(t *testing.T, ns netns.NsHandle, ifname string) *rawSender {
	t.Helper()
	var s rawSender
	err := testenv.InNetNS(ns, func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		s.ifindex = l.Attrs().Index
		s.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatalf("raw socket in the container: %v", err)
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	return &s
}

func (s *rawSender) send(t *testing.T, frame []byte) {
	t.Helper()
	if err := unix.Sendto(s.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: s.ifindex, Halen: 6}); err != nil {
		t.Fatalf("send raw frame: %v", err)
	}
}

func csum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// udpFrame builds an Ethernet/IPv4/UDP frame (UDP checksum 0: allowed).
func udpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst net.IP, dport int, payload []byte) []byte {
	f := make([]byte, 14+20+8+len(payload))
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IP)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	copy(ip[12:16], src.To4())
	copy(ip[16:20], dst.To4())
	binary.BigEndian.PutUint16(ip[10:], csum(ip))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], uint16(dport))
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(f[42:], payload)
	return f
}

// arpFrame builds an ARP frame (op 1 request, 2 reply).
func arpFrame(dstMAC, srcMAC net.HardwareAddr, op uint16, sha net.HardwareAddr, spa net.IP, tha net.HardwareAddr, tpa net.IP) []byte {
	f := make([]byte, 14+28)
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_ARP)
	a := f[14:]
	binary.BigEndian.PutUint16(a[0:], 1)
	binary.BigEndian.PutUint16(a[2:], unix.ETH_P_IP)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], op)
	copy(a[8:14], sha)
	copy(a[14:18], spa.To4())
	copy(a[18:24], tha)
	copy(a[24:28], tpa.To4())
	return f
}

// TestSpoofGuard: raw frames sent from inside a container cannot
// impersonate another container's IP or MAC; they are dropped and counted
// under their reason, in observe and in fastpath, and nothing legitimate is
// dropped.
func TestSpoofGuard(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	idA, pidA := testenv.RunNone(t, cli, "guarda", "sleep", "300")
	idB, pidB := testenv.RunNone(t, cli, "guardb", "sleep", "300")
	nsA, nsB := containerNS(t, pidA), containerNS(t, pidB)
	quietNS(t, nsA)
	quietNS(t, nsB)
	for _, mode := range []string{"observe", "fastpath"} {
		t.Run(mode, func(t *testing.T) {
			recA, recB := e.attachJSON(idA, "--mode", mode), e.attachJSON(idB, "--mode", mode)
			defer e.ok("detach", idA, idB)
			macA, _ := net.ParseMAC(recA.MAC.String())
			macB, _ := net.ParseMAC(recB.MAC.String())
			ipA, ipB := recA.IPv4(), recB.IPv4()
			b := udpSocketIn(t, nsB, ipB.String()+":9100")
			a := udpSocketIn(t, nsA, ipA.String()+":9100")
			warmARP(t, a, b) // legitimate ARP and UDP both ways: nothing dropped
			if d := e.stats(idA).Drops; len(d) != 0 {
				t.Fatalf("legitimate traffic was dropped: %v", d)
			}
			raw := newRawSender(t, nsA, "eth0")
			bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
			for _, tc := range []struct {
				name, reason string
				frame        []byte
			}{
				{"B's MAC as source", "src-mac", udpFrame(macB, macB, ipA, ipB, 9100, []byte("spoofed-mac"))},
				{"B's IP as source", "src-ipv4", udpFrame(macB, macA, ipB, ipB, 9100, []byte("spoofed-ip"))},
				{"a made-up IP as source", "src-ipv4", udpFrame(macB, macA, net.IPv4(172, 17, 9, 9), ipB, 9100, []byte("spoofed-ip2"))},
				{"ARP reply claiming B's IP", "arp-spoof", arpFrame(bcast, macA, 2, macA, ipB, bcast, ipB)},
				{"ARP request with B's IP as sender", "arp-spoof", arpFrame(bcast, macA, 1, macA, ipB, net.HardwareAddr{0, 0, 0, 0, 0, 0}, net.ParseIP(recA.Gateway.String()))},
			} {
				before := e.stats(idA).Drops[tc.reason]
				raw.send(t, tc.frame)
				var after uint64
				for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					if after = e.stats(idA).Drops[tc.reason]; after == before+1 {
						break
					}
				}
				if after != before+1 {
					t.Fatalf("%s: drops[%s] went %d -> %d, want +1", tc.name, tc.reason, before, after)
				}
			}
			// None of the spoofed datagrams reached B.
			b.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			buf := make([]byte, 2048)
			if n, from, err := b.ReadFromUDP(buf); err == nil {
				t.Fatalf("B received %q from %v: a spoofed frame got through", buf[:n], from)
			}
			// A raw frame that is honest passes, counted as tx.
			tx0 := e.stats(idA).TXByProto["ipv4/udp"].Packets
			raw.send(t, udpFrame(macB, macA, ipA, ipB, 9100, []byte("honest")))
			b.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := b.ReadFromUDP(buf)
			if err != nil || string(buf[:n]) != "honest" {
				t.Fatalf("honest raw frame: %q, %v", buf[:n], err)
			}
			if tx := e.stats(idA).TXByProto["ipv4/udp"].Packets; tx != tx0+1 {
				t.Fatalf("honest raw frame: tx %d -> %d, want +1", tx0, tx)
			}
			// The host did not learn B's address at A's MAC from the spoofed ARP.
			neighs, _ := netlink.NeighList(0, netlink.FAMILY_V4)
			for _, nb := range neighs {
				if nb.IP.Equal(ipB) && nb.HardwareAddr.String() == macA.String() {
					t.Fatalf("the host learned B's address %s at A's MAC %s", ipB, macA)
				}
			}
		})
	}
}

// TestFastpathRefusedWithoutICC: on a Docker network with
// enable_icc=false, fastpath is refused (attach and mode) unless --force.
func TestFastpathRefusedWithoutICC(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	ctx := context.Background()
	name := testenv.ContainerName("nswnoicc")
	br := "nswnoicc" + name[len(name)-4:]
	resp, err := cli.NetworkCreate(ctx, name, network.CreateOptions{
		Driver:  "bridge",
		Options: map[string]string{"com.docker.network.bridge.enable_icc": "false", "com.docker.network.bridge.name": br},
		IPAM:    &network.IPAM{Config: []network.IPAMConfig{{Subnet: "10.234.7.0/24", Gateway: "10.234.7.1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.NetworkRemove(context.Background(), resp.ID) })
	// Docker creates the bridge lazily, when a container joins: make it
	// exist with a container on the network.
	testenv.RunOn(t, cli, name, "iccpeer", "sleep", "300")
	id, _ := testenv.RunNone(t, cli, "iccwire", "sleep", "300")
	e.fails([]string{"attach", id, "--bridge", br, "--mode", "fastpath"}, "enable_icc=false", "--force")
	e.ok("attach", id, "--bridge", br, "--mode", "observe")
	e.fails([]string{"mode", id, "fastpath"}, "enable_icc=false", "--force")
	if out := e.ok("mode", id, "fastpath", "--force"); !strings.Contains(out, "mode fastpath") {
		t.Fatalf("mode --force said %q", out)
	}
	var rows []control.ListRow
	if err := json.Unmarshal([]byte(e.ok("ls", "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Record.Mode != "fastpath" || rows[0].Record.Bridge != br {
		t.Fatalf("ls = %+v", rows)
	}
}
