package control

import (
	"bytes"
	"net"
	"testing"
)

func TestARPRoundTrip(t *testing.T) {
	mac, _ := net.ParseMAC("02:42:ac:11:00:0a")
	p := &arpPacket{Op: arpRequest, SenderHW: mac, SenderIP: net.ParseIP("172.17.0.10"), TargetHW: make(net.HardwareAddr, 6), TargetIP: net.ParseIP("172.17.0.10")}
	b := p.marshal()
	if len(b) != arpLen {
		t.Fatalf("len %d", len(b))
	}
	q, err := parseARP(b)
	if err != nil {
		t.Fatal(err)
	}
	if q.Op != p.Op || q.SenderHW.String() != mac.String() || !q.SenderIP.Equal(p.SenderIP) || !q.TargetIP.Equal(p.TargetIP) {
		t.Fatalf("round trip: %+v", q)
	}
	for _, bad := range [][]byte{nil, b[:27], append([]byte{0, 6}, b[2:]...), append(append([]byte{}, b[:2]...), append([]byte{0x86, 0xdd}, b[4:]...)...)} {
		if _, err := parseARP(bad); err == nil {
			t.Errorf("parseARP(%x) accepted", bad)
		}
	}
}

// FuzzParseARP: any bytes (as read from a packet socket) decode without
// panic, and whatever decodes re-encodes to its first 28 bytes.
func FuzzParseARP(f *testing.F) {
	mac, _ := net.ParseMAC("02:42:ac:11:00:0a")
	f.Add((&arpPacket{Op: arpReply, SenderHW: mac, SenderIP: net.IPv4(10, 0, 0, 1), TargetHW: mac, TargetIP: net.IPv4(10, 0, 0, 2)}).marshal())
	f.Add([]byte{})
	f.Add(make([]byte, 60))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseARP(b)
		if err != nil {
			return
		}
		if got := p.marshal(); !bytes.Equal(got, b[:arpLen]) {
			t.Fatalf("re-encoded %x, read %x", got, b[:arpLen])
		}
	})
}
