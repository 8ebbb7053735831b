// Package test holds nswire's end-to-end tests: a real Docker engine, real
// --network=none containers from a tiny locally built image, the real CNI
// clients (cnitool, Podman, containerd), the CLI binary built once per run,
// and real traffic, only to addresses the tests create. test/testenv has
// their helpers; setup.sh prepares the machine.
package test
