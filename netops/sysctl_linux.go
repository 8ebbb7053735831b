package netops

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netns"
)

// ipv6ConfDir is where the kernel shows the IPv6 settings of the calling
// thread's network namespace; it is absent when the kernel has no IPv6
// (ipv6.disable=1 or no ipv6 module).
const ipv6ConfDir = "/proc/sys/net/ipv6/conf"

// SetIPv6Conf writes value to the IPv6 setting key of interface ifName in
// the namespace ns, as
//
//	ip netns exec NS sysctl -w net.ipv6.conf.IF.KEY=VALUE
//
// does (nsenter --net=NS for a namespace without a name). /proc/sys/net
// shows the namespace of the thread that opens it, so the write runs through
// Do, the one namespace switch. It returns (false, nil) and changes nothing
// when the namespace has no IPv6; a missing interface is an error naming it.
func SetIPv6Conf(ns netns.NsHandle, ifName, key, value string) (bool, error) {
	return SetIPv6Confs(ns, ifName, [][2]string{{key, value}})
}

// SetIPv6Confs is SetIPv6Conf for several settings, {key, value}, written
// in order with one namespace switch. It stops at the first that fails.
func SetIPv6Confs(ns netns.NsHandle, ifName string, settings [][2]string) (bool, error) {
	for _, kv := range settings {
		if err := validConfName(ifName, kv[0]); err != nil {
			return false, err
		}
	}
	applied := false
	err := Do(ns, func() error {
		if _, err := os.Stat(ipv6ConfDir); errors.Is(err, os.ErrNotExist) {
			return nil // no IPv6 here: nothing to set
		}
		for _, kv := range settings {
			if err := writeConf(ifName, kv[0], kv[1]); err != nil {
				return err
			}
		}
		applied = true
		return nil
	})
	return applied, err
}

// writeConf writes one setting of the calling thread's namespace.
func writeConf(ifName, key, value string) error {
	p := ipv6ConfDir + "/" + ifName + "/" + key
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("set net.ipv6.conf.%s.%s: %w", ifName, key, err)
	}
	_, werr := f.WriteString(value)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("set net.ipv6.conf.%s.%s=%s: %w", ifName, key, value, werr)
	}
	return nil
}

// IPv6Conf reads the IPv6 setting key of interface ifName in ns
// (`ip netns exec NS sysctl net.ipv6.conf.IF.KEY`). It returns ("", false,
// nil) when the namespace has no IPv6.
func IPv6Conf(ns netns.NsHandle, ifName, key string) (string, bool, error) {
	if err := validConfName(ifName, key); err != nil {
		return "", false, err
	}
	var val string
	var ok bool
	err := Do(ns, func() error {
		if _, err := os.Stat(ipv6ConfDir); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		b, err := os.ReadFile(ipv6ConfDir + "/" + ifName + "/" + key)
		if err != nil {
			return fmt.Errorf("read net.ipv6.conf.%s.%s: %w", ifName, key, err)
		}
		val, ok = strings.TrimSpace(string(b)), true
		return nil
	})
	return val, ok, err
}

// validConfName refuses names that would leave the conf directory.
func validConfName(ifName, key string) error {
	if err := ValidateIfName(ifName); err != nil {
		return err
	}
	if ifName == "." || ifName == ".." || key == "" || strings.ContainsAny(key, "/\x00") || key == "." || key == ".." {
		return fmt.Errorf("net.ipv6.conf.%s.%s is not a setting of one interface", ifName, key)
	}
	return nil
}
