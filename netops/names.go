package netops

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"unicode"
)

// HostVethPrefix starts the name of every host-side veth nswire creates, so
// that `nswire gc` can recognise them.
const HostVethPrefix = "nsw"

// tempPeerPrefix names the container end of the pair until it is renamed
// inside the container's namespace.
const tempPeerPrefix = "nsp"

// maxIfNameLen is IFNAMSIZ-1, kept here so that name checks need no kernel.
const maxIfNameLen = 15

// ShortHash is the 8 hex digits nswire derives from a container ID.
func ShortHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:4])
}

// HostVethName is the host-side veth name for the container id: "nsw" and
// eight hex digits of its SHA-256 (11 bytes).
func HostVethName(id string) string { return HostVethPrefix + ShortHash(id) }

// TempPeerName is the temporary name of the container end before it is moved
// and renamed.
func TempPeerName(id string) string { return tempPeerPrefix + ShortHash(id) }

// IsHostVethName reports whether name has the shape of a host veth nswire
// creates.
func IsHostVethName(name string) bool {
	if len(name) != len(HostVethPrefix)+8 || !strings.HasPrefix(name, HostVethPrefix) {
		return false
	}
	_, err := hex.DecodeString(name[len(HostVethPrefix):])
	return err == nil
}

// ValidateIfName checks an interface name the way the kernel does
// (dev_valid_name): 1 to 15 bytes, not "." or "..", no '/', ':' or
// whitespace.
func ValidateIfName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("interface name is empty: give 1 to %d bytes", maxIfNameLen)
	case len(name) > maxIfNameLen:
		return fmt.Errorf("interface name %q is %d bytes long: at most %d are allowed", name, len(name), maxIfNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is not allowed", name)
	}
	for _, r := range name {
		if r == '/' || r == ':' || unicode.IsSpace(r) || r == 0 {
			return fmt.Errorf("interface name %q contains %q: '/', ':', NUL and whitespace are not allowed", name, r)
		}
	}
	return nil
}

// StableMAC derives a locally administered unicast MAC from a container ID:
// 02:xx:xx:xx:xx:xx with the rest from its SHA-256, stable across attaches.
func StableMAC(id string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("mac:" + id))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = (mac[0] &^ 0x01) | 0x02 // unicast, locally administered
	return mac
}
