// Package control is nswire's manager: it wires a container's network
// namespace into a bridge and keeps what it did consistent. It owns the
// verbs, one file each (attach, detach, mode, observe, list, gc, doctor,
// stats, flows, rewire for serve, the CNI attach for the plugin), the
// parsed request (AttachFlags.Parse: flags and labels are checked once, into
// typed values), address allocation, target resolution (container, PID or
// namespace path, held open as a handle), the ARP and neighbour probes, and
// the truth about each record (live, restarted, stopped, gone, damaged).
//
// It may import its sub-packages (state, datapath), netops and bpf, never
// the Docker SDK: it asks the container engine through the Engine
// interface, which control/dockerengine implements and Config.NewEngine
// supplies, so that the CNI plugin does not link (nor initialise) the SDK.
// Nothing below it imports control.
package control
