// Package bench is `nswire bench`: the A/B experiment of the fast path
// against plain bridging (variants docker, off, observe, fastpath, loopback;
// workloads tcp_rr, tcp_crr, tcp_stream, udp_rate, iperf3), its own load
// generator, interleaved rounds and slices, medians and ratios, compare and
// plot. It may import control and gonum/plot; only the bench command
// imports it.
package bench
