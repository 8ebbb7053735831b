#!/usr/bin/env bash
# Installs what `make bench-cni` compares nswire against: cnitool and the
# reference CNI plugins bridge and host-local, built from the Go module proxy
# into one directory (default $(go env GOPATH)/cni-bench/bin, or $CNI_BENCH_BIN).
# Idempotent: a binary already there at the pinned version is kept.
set -euo pipefail
CNITOOL_VERSION=v1.3.1   # github.com/containernetworking/cni
PLUGINS_VERSION=v1.10.0  # github.com/containernetworking/plugins
dir=${CNI_BENCH_BIN:-$(go env GOPATH)/cni-bench/bin}
mkdir -p "$dir"
stamp="$dir/.versions"
want="cnitool $CNITOOL_VERSION plugins $PLUGINS_VERSION"
if [[ -f $stamp && $(<"$stamp") == "$want" && -x $dir/cnitool && -x $dir/bridge && -x $dir/host-local ]]; then
	echo "cni-tools: $want already in $dir"
	exit 0
fi
export GOBIN=$dir CGO_ENABLED=0
go install "github.com/containernetworking/cni/cnitool@$CNITOOL_VERSION"
go install "github.com/containernetworking/plugins/plugins/main/bridge@$PLUGINS_VERSION"
go install "github.com/containernetworking/plugins/plugins/ipam/host-local@$PLUGINS_VERSION"
echo "$want" > "$stamp"
echo "cni-tools: installed $want into $dir"
