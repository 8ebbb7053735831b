// Command nswire wires --network=none containers into a Linux bridge and
// counts their traffic with eBPF.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "nswire:", err)
		os.Exit(1)
	}
}
