// Package bpf holds nswire's eBPF datapath (datapath.c), the Go code that
// bpf2go generates from it, and a thin API to load it, pin its maps and edit
// them.
package bpf

// Regenerate with `go generate ./bpf` (needs clang and llvm-strip). The
// compiler is $BPF_CLANG, else $BPF2GO_CC, else clang. The
// output is reproducible: regenerating leaves no diff.
//
//go:generate sh -c "exec go tool bpf2go -cc $DOLLAR{BPF_CLANG:-$DOLLAR{BPF2GO_CC:-clang}} -tags linux -target bpfel -type endpoint -type ip_key -type counter -type counters -type counters_ext -type flow_key4 -type flow_key6 -type flow_stats -type drop_event -type stats -type config Datapath datapath.c -- -I./include -Wall -Werror -O2"
