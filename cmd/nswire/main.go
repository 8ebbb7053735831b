// Command nswire wires --network=none containers into a Linux bridge and
// counts their traffic with eBPF.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Ctrl-C cancels the command's context: watch loops and benchmarks end
	// cleanly and undo what they set up.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nswire:", err)
		os.Exit(1)
	}
}
