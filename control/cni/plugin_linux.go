package cni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ipam"

	"github.com/nswire/nswire/control"
)

// Funcs are the plugin's commands for skel.PluginMainFuncs.
func Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: Add, Del: Del, Check: Check, GC: GC, Status: Status}
}

// FailAfterStepEnv names the fault-injection hook of the rollback tests: an
// ADD fails right after its step number N (1 ipam, 2 bridge, then the attach
// plan's steps) succeeded, as control.Config.FailAfterStep.
const FailAfterStepEnv = "NSWIRE_FAIL_AFTER_STEP"

// VerboseEnv, set to 1, makes the plugin print each step with its duration
// on stderr (runtimes pass a plugin's stderr on to their own, or log it).
const VerboseEnv = "NSWIRE_CNI_VERBOSE"

// withManager parses args' configuration for command, opens the manager and
// runs fn with both: the start of every CNI command.
func withManager(args *skel.CmdArgs, command string, fn func(c *NetConf, m *control.Manager) error) error {
	c, err := ParseConfig(args.StdinData, command)
	if err != nil {
		return err
	}
	m, err := openManager(c)
	if err != nil {
		return err
	}
	defer m.Close()
	return fn(c, m)
}

func openManager(c *NetConf) (*control.Manager, error) {
	cfg := control.Config{StateDir: c.StateDir, PinDir: c.PinDir}
	fmt.Sscan(os.Getenv(FailAfterStepEnv), &cfg.FailAfterStep)
	if os.Getenv(VerboseEnv) == "1" {
		cfg.Verbose = os.Stderr
	}
	m, err := control.NewManager(cfg)
	if err != nil {
		return nil, types.NewError(types.ErrPluginNotAvailable, "nswire cannot run", err.Error())
	}
	return m, nil
}

// info is the attachment's identity from the call.
func info(args *skel.CmdArgs, c *NetConf) control.CNIInfo {
	pod := ParseArgs(args.Args)
	return control.CNIInfo{ContainerID: args.ContainerID, IfName: args.IfName, Network: c.Name, PodNamespace: pod.Namespace, PodName: pod.Name}
}

// Add wires the container (standalone) or starts counting the interface a
// previous plugin made (chained).
func Add(args *skel.CmdArgs) error {
	return withManager(args, "ADD", func(c *NetConf, m *control.Manager) error {
		ctx := context.Background()
		id := info(args, c)
		if c.Chained {
			_, in, err := SandboxInterface(c.Prev, args.IfName)
			if err != nil {
				return types.NewError(types.ErrInvalidNetworkConfig, "chained nswire: no interface to observe", err.Error())
			}
			if _, _, err := m.Observe(ctx, control.ObserveRequest{
				Target: control.TargetSpec{NetnsPath: args.Netns}, IfName: in.Name, Hook: c.Hook, CNI: &id,
			}); err != nil {
				return types.NewError(types.ErrInternal, "nswire observe", err.Error())
			}
			return types.PrintResult(c.Prev, c.CNIVersion)
		}

		var ipamRes *current.Result
		res, err := m.AttachCNI(ctx, control.CNIAttachRequest{
			NetnsPath: args.Netns, CNI: id, Bridge: c.Bridge, IsGateway: c.IsGateway, MTU: c.MTU,
			Mode: c.Mode, Hook: c.Hook,
			Allocate: func() (*control.CNIAddress, error) {
				r, err := ipam.ExecAdd(c.IPAM.Type, args.StdinData)
				if err != nil {
					return nil, err
				}
				if ipamRes, err = current.NewResultFromResult(r); err != nil {
					ipam.ExecDel(c.IPAM.Type, args.StdinData)
					return nil, fmt.Errorf("convert the IPAM result: %w", err)
				}
				if err := OnePerFamily(ipamRes); err != nil {
					ipam.ExecDel(c.IPAM.Type, args.StdinData)
					return nil, err
				}
				addr, gw := IPv4Of(ipamRes, -1)
				a := &control.CNIAddress{Address: addr, Gateway: gw}
				a.Address6, a.Gateway6 = IPv6Of(ipamRes)
				for _, r := range ipamRes.Routes {
					if r != nil {
						dst := r.Dst
						a.Routes = append(a.Routes, control.CNIRoute{Dst: &dst, GW: r.GW})
					}
				}
				return a, nil
			},
			Release: func() error { return ipam.ExecDel(c.IPAM.Type, args.StdinData) },
		})
		if err != nil {
			var te *types.Error
			if errors.As(err, &te) {
				return te
			}
			return types.NewError(types.ErrInternal, "nswire attach", err.Error())
		}
		rec := res.Record
		w := Wiring{
			Bridge: rec.Bridge, BridgeMAC: res.BridgeMAC, HostIf: rec.HostIf, HostMAC: res.HostMAC,
			IfName: rec.IfName, MAC: rec.MAC.String(), Netns: args.Netns,
			Address: &net.IPNet{IP: rec.IPv4(), Mask: net.CIDRMask(rec.Address.Bits(), 32)}, Gateway: net.IP(rec.Gateway.AsSlice()),
		}
		if rec.Address6.IsValid() {
			w.Address6 = &net.IPNet{IP: rec.IPv6(), Mask: net.CIDRMask(rec.Address6.Bits(), 128)}
			w.Gateway6 = net.IP(rec.Gateway6.AsSlice())
		}
		for _, r := range res.Routes {
			w.Routes = append(w.Routes, &types.Route{Dst: *r.Dst, GW: r.GW})
		}
		if ipamRes != nil {
			w.DNS = ipamRes.DNS
		}
		return types.PrintResult(BuildResult(w), c.CNIVersion)
	})
}

// Del removes what ADD did: standalone, the wiring, the counters and the
// IPAM lease; chained, only the counters. It needs no namespace, works after
// the namespace is gone and succeeds when there is nothing to remove.
func Del(args *skel.CmdArgs) error {
	return withManager(args, "DEL", func(c *NetConf, m *control.Manager) error {
		if _, err := m.DetachCNI(context.Background(), args.ContainerID, args.IfName); err != nil {
			return types.NewError(types.ErrTryAgainLater, "nswire detach", err.Error())
		}
		if !c.Chained {
			if err := ipam.ExecDel(c.IPAM.Type, args.StdinData); err != nil {
				return types.NewError(types.ErrTryAgainLater, "release the address (IPAM DEL)", err.Error())
			}
		}
		return nil
	})
}

// Check compares the live attachment with prevResult and nswire's record:
// the interface, its MAC and addresses, the default route, the host peer
// on its bridge, the counters' programs; standalone, the IPAM plugin
// checks its lease too.
func Check(args *skel.CmdArgs) error {
	return withManager(args, "CHECK", func(c *NetConf, m *control.Manager) error {
		if c.Prev == nil {
			return types.NewError(types.ErrInvalidNetworkConfig, "CHECK needs prevResult", "the runtime sent no prevResult")
		}
		live, err := m.InspectCNI(context.Background(), args.ContainerID, args.IfName, args.Netns)
		if err != nil {
			return types.NewError(types.ErrUnknownContainer, "nswire CHECK", err.Error())
		}
		if !c.Chained {
			if err := ipam.ExecCheck(c.IPAM.Type, args.StdinData); err != nil {
				return types.NewError(types.ErrInternal, "IPAM CHECK", err.Error())
			}
		}
		if problems := Compare(c, args.IfName, live); len(problems) > 0 {
			return types.NewError(types.ErrInternal, "nswire CHECK: the attachment differs from prevResult", strings.Join(problems, "; "))
		}
		return nil
	})
}

// Compare lists how live differs from c's prevResult and the record.
func Compare(c *NetConf, ifName string, live *control.CNILive) []string {
	var p []string
	rec := live.Record
	if live.Stale != "" {
		p = append(p, live.Stale)
	}
	idx, in, err := SandboxInterface(c.Prev, ifName)
	if err != nil {
		return append(p, err.Error())
	}
	if in.Mac != "" && !strings.EqualFold(in.Mac, live.MAC) {
		p = append(p, fmt.Sprintf("%s has MAC %s, prevResult says %s", ifName, live.MAC, in.Mac))
	}
	for _, ip := range c.Prev.IPs {
		if ip == nil || ip.Address.IP.To4() == nil || (ip.Interface != nil && *ip.Interface != idx) {
			continue
		}
		if !hasAddr(live.Addrs, &ip.Address) {
			p = append(p, fmt.Sprintf("%s lacks the address %s of prevResult (has %v)", ifName, ip.Address.String(), live.Addrs))
		}
	}
	if !c.Chained {
		want := rec.IPv4()
		for _, a := range live.Addrs {
			if !a.IP.Equal(want) {
				p = append(p, fmt.Sprintf("%s has the address %s that nswire did not give it", ifName, a))
			}
		}
		gw := net.IP(rec.Gateway.AsSlice())
		ok := false
		for _, r := range live.Routes {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw.Equal(gw) {
				ok = true
			}
		}
		if !ok {
			p = append(p, fmt.Sprintf("%s has no default route via %s", ifName, gw))
		}
		if live.Master != rec.Bridge {
			p = append(p, fmt.Sprintf("the host peer %s is in bridge %q, not %s", live.HostIf, live.Master, rec.Bridge))
		}
	}
	if live.HostIf != rec.HostIf {
		p = append(p, fmt.Sprintf("the host peer of %s is %q, nswire recorded %s", ifName, live.HostIf, rec.HostIf))
	}
	if rec.Mode.Programs() && !live.Program {
		p = append(p, fmt.Sprintf("nswire's programs are not attached to %s (mode %s)", rec.HostIf, rec.Mode))
	}
	return p
}

func hasAddr(have []*net.IPNet, want *net.IPNet) bool {
	for _, a := range have {
		if a.IP.Equal(want.IP) && a.Mask.String() == want.Mask.String() {
			return true
		}
	}
	return false
}

// GC removes the attachments of this network that are not in
// cni.dev/valid-attachments, then lets the IPAM plugin collect its leases.
func GC(args *skel.CmdArgs) error {
	return withManager(args, "GC", func(c *NetConf, m *control.Manager) error {
		valid := map[string]bool{}
		for _, a := range c.ValidAttachments {
			valid[control.CNIRecordID(a.ContainerID, a.IfName)] = true
		}
		if _, err := m.GCCNI(context.Background(), c.Name, valid); err != nil {
			return types.NewError(types.ErrTryAgainLater, "nswire GC", err.Error())
		}
		if !c.Chained {
			if err := invoke.DelegateGC(context.Background(), c.IPAM.Type, args.StdinData, nil); err != nil {
				return types.NewError(types.ErrTryAgainLater, "IPAM GC", err.Error())
			}
		}
		return nil
	})
}

// Status reports whether ADD can work: nswire's privileges and state
// directory, and, standalone, the IPAM plugin's own STATUS.
func Status(args *skel.CmdArgs) error {
	return withManager(args, "STATUS", func(c *NetConf, m *control.Manager) error {
		if err := m.Store().Ensure(); err != nil {
			return types.NewError(types.ErrPluginNotAvailable, "nswire state directory", err.Error())
		}
		if !c.Chained {
			if err := ipam.ExecStatus(c.IPAM.Type, args.StdinData); err != nil {
				return types.NewError(types.ErrPluginNotAvailable, "IPAM STATUS", err.Error())
			}
		}
		return nil
	})
}
