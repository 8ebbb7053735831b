#!/usr/bin/env bash
# update.sh — refresh the vendored libbpf headers in bpf/include from the
# Debian package libbpf-dev, and record where they came from in SOURCE.
#
#   bash bpf/include/update.sh          copy the headers of the installed
#                                       libbpf-dev, rewrite SOURCE
#   bash bpf/include/update.sh --check  exit 1 if the vendored headers differ
#                                       from what SOURCE records
#
# uapi.h is not from libbpf: it is a hand-made subset of the Linux UAPI
# headers (see its first comment) and is left alone.
# After a refresh: `make generate` and commit the headers, SOURCE and the
# regenerated objects together.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HEADERS=(bpf_helpers.h bpf_helper_defs.h bpf_endian.h)
SRC=/usr/include/bpf

record() {
	printf '# Vendored libbpf headers: where they came from. Written by update.sh.\n'
	printf 'package: %s\n' "$1"
	for h in "${HEADERS[@]}"; do
		printf 'sha256 %s  %s\n' "$(sha256sum "$HERE/$h" | cut -d' ' -f1)" "$h"
	done
}

if [[ ${1:-} == --check ]]; then
	pkg=$(sed -n 's/^package: //p' "$HERE/SOURCE")
	diff <(record "$pkg") "$HERE/SOURCE" || { echo "bpf/include: headers differ from SOURCE: run bash bpf/include/update.sh" >&2; exit 1; }
	echo "bpf/include: headers match SOURCE ($pkg)"
	exit 0
fi

ver=$(dpkg-query -W -f='${Version}' libbpf-dev 2>/dev/null) || {
	echo "update.sh: libbpf-dev is not installed (apt-get install libbpf-dev)" >&2
	exit 1
}
for h in "${HEADERS[@]}"; do
	cp "$SRC/$h" "$HERE/$h"
done
record "Debian libbpf-dev $ver ($SRC)" >"$HERE/SOURCE"
echo "bpf/include: copied ${HEADERS[*]} from libbpf-dev $ver"
