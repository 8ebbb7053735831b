package cni

import (
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

const prev = `"prevResult": {"cniVersion": "1.0.0",
  "interfaces": [{"name": "cni0", "mac": "aa:bb:cc:00:00:01"}, {"name": "veth1", "mac": "aa:bb:cc:00:00:02"},
                 {"name": "eth0", "mac": "02:00:00:00:00:03", "sandbox": "/run/netns/x"}],
  "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 2}]}`

func TestParseConfig(t *testing.T) {
	ipam := `"ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}`
	cases := []struct {
		name, conf, cmd string
		code            uint   // 0: valid
		detail          string // in the error's details
		check           func(*NetConf) error
	}{
		{name: "standalone defaults", conf: `{"cniVersion":"1.1.0","name":"n","type":"nswire",` + ipam + `}`, cmd: "ADD",
			check: func(c *NetConf) error {
				if c.Chained || c.Bridge != "cni0" || c.Mode != "observe" || c.Hook != "auto" || c.IPAM.Type != "host-local" {
					return errors.New("wrong defaults")
				}
				return nil
			}},
		{name: "standalone all keys", conf: `{"cniVersion":"1.0.0","name":"n","type":"nswire","bridge":"br9","isGateway":true,"mtu":1400,"mode":"fastpath","attachMode":"tc","stateDir":"/run/x","pinDir":"/sys/fs/bpf/x",` + ipam + `}`, cmd: "ADD",
			check: func(c *NetConf) error {
				if c.Bridge != "br9" || !c.IsGateway || c.MTU != 1400 || c.Mode != "fastpath" || c.Hook != "tc" || c.StateDir != "/run/x" || c.PinDir != "/sys/fs/bpf/x" {
					return errors.New("keys not read")
				}
				return nil
			}},
		{name: "chained", conf: `{"cniVersion":"1.0.0","name":"n","type":"nswire",` + prev + `}`, cmd: "ADD",
			check: func(c *NetConf) error {
				if !c.Chained || c.Prev == nil || len(c.Prev.Interfaces) != 3 || c.Prev.IPs[0].Address.String() != "10.1.0.5/24" {
					return errors.New("prevResult not parsed")
				}
				return nil
			}},
		{name: "chained DEL without prevResult", conf: `{"cniVersion":"1.1.0","name":"n","type":"nswire"}`, cmd: "DEL"},
		{name: "standalone CHECK with prevResult", conf: `{"cniVersion":"1.1.0","name":"n","type":"nswire",` + ipam + `,` + prev + `}`, cmd: "CHECK"},
		{name: "not JSON", conf: `{"cniVersion":`, cmd: "ADD", code: types.ErrDecodingFailure},
		{name: "bad prevResult", conf: `{"cniVersion":"1.0.0","name":"n","type":"nswire","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"nope"}]}}`, cmd: "ADD", code: types.ErrDecodingFailure},
		{name: "bad mode", conf: `{"cniVersion":"1.1.0","name":"n","type":"nswire","mode":"fast",` + ipam + `}`, cmd: "ADD", code: types.ErrInvalidNetworkConfig, detail: `mode "fast"`},
		{name: "bad attach mode", conf: `{"cniVersion":"1.1.0","name":"n","type":"nswire","attachMode":"xdp",` + ipam + `}`, cmd: "ADD", code: types.ErrInvalidNetworkConfig, detail: "attachMode"},
		{name: "bad bridge", conf: `{"cniVersion":"1.1.0","name":"n","type":"nswire","bridge":"a-very-long-bridge-name",` + ipam + `}`, cmd: "ADD", code: types.ErrInvalidNetworkConfig, detail: "bridge"},
		{name: "bad mtu", conf: `{"cniVersion":"1.1.0","name":"n","type":"nswire","mtu":20,` + ipam + `}`, cmd: "ADD", code: types.ErrInvalidNetworkConfig, detail: "mtu"},
		{name: "relative state dir", conf: `{"cniVersion":"1.1.0","name":"n","type":"nswire","stateDir":"run/x",` + ipam + `}`, cmd: "ADD", code: types.ErrInvalidNetworkConfig, detail: "absolute"},
		{name: "chained fastpath", conf: `{"cniVersion":"1.1.0","name":"n","type":"nswire","mode":"fastpath",` + prev + `}`, cmd: "ADD", code: types.ErrInvalidNetworkConfig, detail: "chained"},
		{name: "chained with bridge", conf: `{"cniVersion":"1.1.0","name":"n","type":"nswire","bridge":"br0",` + prev + `}`, cmd: "ADD", code: types.ErrInvalidNetworkConfig, detail: `need "ipam"`},
		{name: "chained ADD without prevResult", conf: `{"cniVersion":"1.1.0","name":"n","type":"nswire"}`, cmd: "ADD", code: types.ErrInvalidNetworkConfig, detail: "prevResult"},
		{name: "standalone ADD with prevResult", conf: `{"cniVersion":"1.1.0","name":"n","type":"nswire",` + ipam + `,` + prev + `}`, cmd: "ADD", code: types.ErrInvalidNetworkConfig, detail: "first in the conflist"},
		{name: "no type", conf: `{"cniVersion":"1.1.0","name":"n",` + ipam + `}`, cmd: "ADD", code: types.ErrInvalidNetworkConfig, detail: "type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.conf), tc.cmd)
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if tc.check != nil {
					if err := tc.check(c); err != nil {
						t.Fatalf("%v: %+v", err, c)
					}
				}
				return
			}
			var e *types.Error
			if !errors.As(err, &e) || e.Code != tc.code || !strings.Contains(e.Details, tc.detail) {
				t.Fatalf("error %v, want code %d with %q", err, tc.code, tc.detail)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	for in, want := range map[string]PodArgs{
		"":                {},
		"IgnoreUnknown=1": {},
		"IgnoreUnknown=1;K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;K8S_POD_UID=x": {Namespace: "a", Name: "b"},
		"K8S_POD_NAME=web=1;junk;K8S_POD_NAMESPACE=":                       {Name: "web=1"},
	} {
		if got := ParseArgs(in); got != want {
			t.Errorf("ParseArgs(%q) = %+v, want %+v", in, got, want)
		}
	}
}

func TestBuildResult(t *testing.T) {
	_, addr, _ := net.ParseCIDR("10.1.0.0/24")
	addr.IP = net.ParseIP("10.1.0.5").To4()
	_, dflt, _ := net.ParseCIDR("0.0.0.0/0")
	r := BuildResult(Wiring{
		Bridge: "cni0", BridgeMAC: "aa:bb:cc:00:00:01", HostIf: "nsw01234567", HostMAC: "aa:bb:cc:00:00:02",
		IfName: "eth0", MAC: "02:00:00:00:00:03", Netns: "/run/netns/x",
		Address: addr, Gateway: net.ParseIP("10.1.0.1"),
		Routes: []*types.Route{{Dst: *dflt, GW: net.ParseIP("10.1.0.1")}},
		DNS:    types.DNS{Nameservers: []string{"10.1.0.53"}},
	})
	for _, v := range []string{"1.1.0", "1.0.0"} {
		res, err := r.GetAsVersion(v)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(res)
		want := `{"cniVersion":"` + v + `","dns":{"nameservers":["10.1.0.53"]},"interfaces":[{"mac":"aa:bb:cc:00:00:01","name":"cni0"},` +
			`{"mac":"aa:bb:cc:00:00:02","name":"nsw01234567"},{"mac":"02:00:00:00:00:03","name":"eth0","sandbox":"/run/netns/x"}],` +
			`"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":2}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"}]}`
		if string(data) != want {
			t.Errorf("result as %s:\n got %s\nwant %s", v, data, want)
		}
	}
}

func TestSandboxInterface(t *testing.T) {
	c, err := ParseConfig([]byte(`{"cniVersion":"1.0.0","name":"n","type":"nswire",`+prev+`}`), "ADD")
	if err != nil {
		t.Fatal(err)
	}
	i, in, err := SandboxInterface(c.Prev, "eth0")
	if err != nil || i != 2 || in.Name != "eth0" {
		t.Fatalf("got %d %+v %v", i, in, err)
	}
	// The only sandbox interface is taken whatever its name.
	if i, _, err := SandboxInterface(c.Prev, "net1"); err != nil || i != 2 {
		t.Errorf("net1: %d %v", i, err)
	}
	if _, _, err := SandboxInterface(&current.Result{Interfaces: []*current.Interface{{Name: "veth1"}}}, "eth0"); err == nil {
		t.Error("no sandbox interface: no error")
	}
	two := &current.Result{Interfaces: []*current.Interface{{Name: "a", Sandbox: "/x"}, {Name: "b", Sandbox: "/x"}}}
	if _, _, err := SandboxInterface(two, "eth0"); err == nil {
		t.Error("two sandbox interfaces, neither eth0: no error")
	}
	addr, gw := IPv4Of(c.Prev, 2)
	if addr.String() != "10.1.0.5/24" || gw.String() != "10.1.0.1" {
		t.Errorf("IPv4Of: %v %v", addr, gw)
	}
}

// TestOnePerFamily: one address of each family, or one IPv4 only, passes;
// two of a family is code 7 naming both.
func TestOnePerFamily(t *testing.T) {
	ipc := func(cidr string) *current.IPConfig {
		ip, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return &current.IPConfig{Address: *n}
	}
	for _, ok := range [][]string{{"10.0.0.2/24"}, {"10.0.0.2/24", "fd00::2/64"}, {"fd00::2/64", "10.0.0.2/24"}} {
		res := &current.Result{}
		for _, a := range ok {
			res.IPs = append(res.IPs, ipc(a))
		}
		if err := OnePerFamily(res); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, bad := range []struct {
		addrs []string
		want  string
	}{
		{[]string{"10.0.0.2/24", "fd00::2/64", "fd01::2/64"}, "2 IPv6 addresses (fd00::2/64, fd01::2/64)"},
		{[]string{"10.0.0.2/24", "10.0.1.2/24"}, "2 IPv4 addresses (10.0.0.2/24, 10.0.1.2/24)"},
	} {
		res := &current.Result{}
		for _, a := range bad.addrs {
			res.IPs = append(res.IPs, ipc(a))
		}
		err := OnePerFamily(res)
		var te *types.Error
		if !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Details, bad.want) {
			t.Errorf("%v: %v, want code 7 with %q", bad.addrs, err, bad.want)
		}
	}
}
