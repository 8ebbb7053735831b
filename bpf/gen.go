// Package bpf holds nswire's eBPF datapath (datapath.c), the Go code that
// bpf2go generates from it, and a thin API to load it, pin its maps and edit
// them.
package bpf

// Regenerate with `go generate ./bpf` (clang and llvm-strip needed). The
// compiler can be chosen with BPF2GO_CC (default clang), e.g.
// `BPF2GO_CC=clang-14 go generate ./bpf`.
//
//go:generate go tool bpf2go -tags linux -target bpfel -type endpoint -type ip_key -type counter -type counters Datapath datapath.c -- -I./include -Wall -Werror -O2
