#!/usr/bin/env bash
# make demo: wire a tiny httpd container (started with --network=none) into
# docker0 with nswire, show it, fetch its page from the host, clean up.
# Run by `make demo` after `make deps` (packages, dockerd, bpffs, image).
set -euo pipefail
NSWIRE=${1:-bin/nswire}
IMAGE=${NSWIRE_IMAGE:-nswire-busybox:latest}
NAME=nswire-demo-web

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

cleanup() {
	"$NSWIRE" detach "$NAME" >/dev/null 2>&1 || true
	docker rm -f "$NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

run docker run -d --network=none --name "$NAME" "$IMAGE"
run docker exec "$NAME" ip addr
run "$NSWIRE" attach "$NAME" --dry-run
run "$NSWIRE" -v attach "$NAME"
run "$NSWIRE" ls
run docker exec "$NAME" ip addr show dev eth0
IP=$(docker exec "$NAME" ip addr show dev eth0 | sed -n 's/.*inet \([0-9.]*\)\/.*/\1/p')
# busybox-static's wget crashes in its resolver; curl, or busybox nc.
if command -v curl >/dev/null; then
	run curl -sS --max-time 5 "http://$IP/"
else
	say "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 $IP 80"
	printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 5 "$IP" 80
fi
if "$NSWIRE" help stats >/dev/null 2>&1; then
	run "$NSWIRE" stats "$NAME"
fi
run "$NSWIRE" detach "$NAME"
echo
echo "demo: OK — $NAME was wired at $IP, served its page to the host, and was detached"
