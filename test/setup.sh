#!/usr/bin/env bash
# setup.sh — prepare a Linux machine for nswire's privileged and end-to-end
# tests. Safe to run any number of times; each step checks before it acts.
#
#   1. install the Debian packages the project needs (only the missing ones;
#      package scripts are kept from starting services)
#   2. mount bpffs at /sys/fs/bpf
#   3. start dockerd if `docker info` fails, and wait until it answers
#   4. check docker0 has an IPv4 address
#   5. build the tiny test image (test/mkimage.sh) if absent
#   6. smoke test: `docker run --rm --network=none IMAGE true`
#   7. CNI clients for the CNI plugin tests: cnitool and the reference
#      host-local and bridge plugins, `go install`ed into $NSWIRE_CNI_TOOLS
#      (Podman and containerd come as packages in step 1)
#
# Must run as root. Environment:
#   NSWIRE_IMAGE          test image name (default nswire-busybox:latest)
#   NSWIRE_DOCKERD_ARGS   extra arguments for dockerd (word-split)
#   NSWIRE_DOCKERD_WAIT   seconds to wait for dockerd (default 60)
#   NSWIRE_CNI_TOOLS      dir for cnitool, host-local, bridge (default /opt/nswire-test/cni)
#
# If this script starts dockerd it records its PID in
# /run/nswire-dockerd.pid (dockerd's own --pidfile); .ci/run uses that file
# to stop only a daemon it started. dockerd logs to /var/log/nswire-dockerd.log.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGE="${NSWIRE_IMAGE:-nswire-busybox:latest}"
DOCKERD_LOG=/var/log/nswire-dockerd.log
DOCKERD_PIDFILE=/run/nswire-dockerd.pid
DOCKERD_WAIT="${NSWIRE_DOCKERD_WAIT:-60}"
PACKAGES=(docker.io clang llvm bpftool iperf3 busybox-static libbpf-dev iproute2 sockperf podman containerd docker-compose systemd)

export DEBIAN_FRONTEND=noninteractive
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

step() { printf 'setup: %s\n' "$*"; }
die() {
	printf 'setup: ERROR: %s\n' "$*" >&2
	exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root"

# --- 1. packages -------------------------------------------------------------
installed() {
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}
missing=()
for p in "${PACKAGES[@]}"; do
	installed "$p" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
	step "packages: all present"
else
	step "packages: installing ${missing[*]}"
	# Keep package scripts from starting services (docker.io ships an init
	# script); we start dockerd ourselves below. Only add a policy if none
	# exists, and remove only what we added.
	policy_added=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		policy_added=1
	fi
	apt_log=$(mktemp /tmp/nswire-apt.XXXXXX)
	apt_opts=(-q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
	rc=0
	{ apt-get "${apt_opts[@]}" update && apt-get "${apt_opts[@]}" install "${missing[@]}"; } >"$apt_log" 2>&1 || rc=$?
	((policy_added)) && rm -f /usr/sbin/policy-rc.d
	if ((rc != 0)); then
		tail -n 30 "$apt_log" >&2
		die "apt-get failed (full log: $apt_log)"
	fi
	rm -f "$apt_log"
fi

# --- 2. bpffs ----------------------------------------------------------------
if mountpoint -q /sys/fs/bpf 2>/dev/null && [[ "$(stat -f -c %T /sys/fs/bpf)" == bpf_fs ]]; then
	step "bpffs: mounted at /sys/fs/bpf"
else
	step "bpffs: mounting at /sys/fs/bpf"
	mkdir -p /sys/fs/bpf
	mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs at /sys/fs/bpf"
fi

# --- 3. dockerd --------------------------------------------------------------
# dockerd needs cgroups mounted (v1, v2 or a hybrid like this project's VMs).
if [[ ! -e /sys/fs/cgroup/cgroup.controllers && ! -d /sys/fs/cgroup/memory ]]; then
	if command -v cgroupfs-mount >/dev/null; then
		step "cgroups: mounting with cgroupfs-mount"
		cgroupfs-mount || die "cgroupfs-mount failed"
	else
		die "no cgroup hierarchy mounted at /sys/fs/cgroup"
	fi
fi
command -v docker >/dev/null || die "no docker client on PATH"
DOCKERD=$(command -v dockerd || true)
[[ -n "$DOCKERD" ]] || die "no dockerd on PATH (package docker.io)"

# dockerd_args prints the arguments dockerd needs on this machine.
dockerd_args() {
	local args=(--pidfile "$DOCKERD_PIDFILE")
	# overlay2 needs overlayfs, and an upper dir that is not itself on
	# overlayfs or tmpfs; otherwise fall back to vfs (slow but works).
	local fstype
	fstype=$(stat -f -c %T /var/lib 2>/dev/null || echo unknown)
	if ! grep -qw overlay /proc/filesystems || [[ "$fstype" == overlayfs || "$fstype" == tmpfs ]]; then
		args+=(--storage-driver=vfs)
	fi
	# Without systemd as init there is no systemd cgroup driver.
	if [[ ! -d /run/systemd/system ]]; then
		args+=(--exec-opt native.cgroupdriver=cgroupfs)
	fi
	printf '%s\n' "${args[@]}"
}

# iptables_shim: dockerd calls `iptables`. If the default backend does not
# work here but the legacy one does, put a shim dir first on dockerd's PATH.
iptables_path() {
	if iptables -w -t nat -S >/dev/null 2>&1; then
		echo "$PATH"
		return
	fi
	if command -v iptables-legacy >/dev/null && iptables-legacy -w -t nat -S >/dev/null 2>&1; then
		local shim=/run/nswire-iptables-shim
		mkdir -p "$shim"
		local t
		for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
			command -v "$t-legacy" >/dev/null && ln -sf "$(command -v "$t-legacy")" "$shim/$t"
		done
		echo "$shim:$PATH"
		return
	fi
	echo "setup: warning: iptables does not work; dockerd may fail" >&2
	echo "$PATH"
}

if docker info >/dev/null 2>&1; then
	step "dockerd: already running"
else
	if [[ -s "$DOCKERD_PIDFILE" ]] && kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null; then
		step "dockerd: started earlier (pid $(cat "$DOCKERD_PIDFILE")), waiting"
	else
		mapfile -t args < <(dockerd_args)
		# shellcheck disable=SC2206
		extra=(${NSWIRE_DOCKERD_ARGS:-})
		dpath=$(iptables_path)
		rm -f "$DOCKERD_PIDFILE"
		step "dockerd: starting $DOCKERD ${args[*]}${extra[*]:+ ${extra[*]}} (log $DOCKERD_LOG)"
		PATH="$dpath" setsid nohup "$DOCKERD" "${args[@]}" "${extra[@]}" \
			</dev/null >>"$DOCKERD_LOG" 2>&1 &
		disown || true
	fi
	deadline=$((SECONDS + DOCKERD_WAIT))
	until docker info >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			tail -n 30 "$DOCKERD_LOG" >&2 || true
			die "dockerd did not answer within ${DOCKERD_WAIT}s (log $DOCKERD_LOG)"
		fi
		if [[ -s "$DOCKERD_PIDFILE" ]] && ! kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null; then
			tail -n 30 "$DOCKERD_LOG" >&2 || true
			die "dockerd exited (log $DOCKERD_LOG)"
		fi
		sleep 0.5
	done
	step "dockerd: ready ($(docker version -f '{{.Server.Version}} API {{.Server.APIVersion}}' 2>/dev/null))"
fi

# --- 4. docker0 --------------------------------------------------------------
addr=$(ip -4 -o addr show dev docker0 2>/dev/null | awk '{print $4; exit}')
[[ -n "$addr" ]] || die "docker0 is missing or has no IPv4 address"
step "docker0: $addr"

# --- 5. image ----------------------------------------------------------------
step "image: $IMAGE"
NSWIRE_IMAGE="$IMAGE" "$HERE/mkimage.sh" | sed 's/^/setup: /'

# --- 6. smoke test -----------------------------------------------------------
out=$(docker run --rm --network=none "$IMAGE" cat /www/index.html 2>&1) ||
	die "docker run --network=none failed: $out"
[[ "$out" == "hello from nswire" ]] || die "unexpected output from test image: $out"
step "docker run --network=none: ok"

# --- 7. CNI clients ----------------------------------------------------------
CNI_TOOLS="${NSWIRE_CNI_TOOLS:-/opt/nswire-test/cni}"
if [[ -x "$CNI_TOOLS/cnitool" && -x "$CNI_TOOLS/host-local" && -x "$CNI_TOOLS/bridge" ]]; then
	step "cni tools: present in $CNI_TOOLS"
else
	command -v go >/dev/null || die "no go on PATH: cannot install the CNI tools"
	step "cni tools: installing cnitool v1.3.1, host-local and bridge v1.10.0 into $CNI_TOOLS"
	mkdir -p "$CNI_TOOLS"
	(cd / && GOBIN="$CNI_TOOLS" go install github.com/containernetworking/cni/cnitool@v1.3.1 &&
		GOBIN="$CNI_TOOLS" go install github.com/containernetworking/plugins/plugins/ipam/host-local@v1.10.0 \
			github.com/containernetworking/plugins/plugins/main/bridge@v1.10.0) || die "go install of the CNI tools failed"
fi
