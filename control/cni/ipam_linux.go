package cni

import (
	"context"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
)

// The IPAM plugin's commands, as github.com/containernetworking/plugins'
// pkg/ipam runs them (invoke.Delegate* with the plugin's own stdin and
// environment). That package is not imported: through its pkg/ip it links
// go-iptables and knftables, whose package init every ADD and DEL would pay.

func ipamAdd(plugin string, netconf []byte) (types.Result, error) {
	return invoke.DelegateAdd(context.TODO(), plugin, netconf, nil)
}

func ipamCheck(plugin string, netconf []byte) error {
	return invoke.DelegateCheck(context.TODO(), plugin, netconf, nil)
}

func ipamDel(plugin string, netconf []byte) error {
	return invoke.DelegateDel(context.TODO(), plugin, netconf, nil)
}

func ipamStatus(plugin string, netconf []byte) error {
	return invoke.DelegateStatus(context.TODO(), plugin, netconf, nil)
}
