#!/usr/bin/env bash
# mkimage.sh — build the tiny nswire test image locally, without any registry.
#
# The image is a rootfs made from Debian's busybox-static (/bin/busybox) plus
# one symlink per applet, a web root for httpd, /etc/passwd, /etc/group and
# /tmp, imported with `docker import`. Default command: busybox httpd serving
# /www on port 80 in the foreground.
#
# Usage: test/mkimage.sh [--force]
#   NSWIRE_IMAGE   image name (default nswire-busybox:latest)
#   BUSYBOX        path to a static busybox (default /bin/busybox)
#
# Idempotent: if the image already exists with the current layout version it
# does nothing, unless --force is given.
set -euo pipefail

IMAGE="${NSWIRE_IMAGE:-nswire-busybox:latest}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
# Bump when the rootfs layout changes so existing images are rebuilt.
LAYOUT_VERSION=1
LABEL=org.nswire.testimage.version

force=0
for arg in "$@"; do
	case "$arg" in
	-f | --force) force=1 ;;
	-h | --help)
		sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "mkimage: unknown argument: $arg" >&2
		exit 2
		;;
	esac
done

if [[ $force -eq 0 ]]; then
	have=$(docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null || true)
	if [[ "$have" == "$LAYOUT_VERSION" ]]; then
		echo "mkimage: $IMAGE already present"
		exit 0
	fi
fi

if [[ ! -x "$BUSYBOX" ]]; then
	echo "mkimage: $BUSYBOX not found (apt-get install busybox-static)" >&2
	exit 1
fi
# A dynamically linked busybox would not run in an empty rootfs.
if ! "$BUSYBOX" --list >/dev/null 2>&1; then
	echo "mkimage: $BUSYBOX does not run" >&2
	exit 1
fi
if command -v ldd >/dev/null 2>&1 && ldd "$BUSYBOX" >/dev/null 2>&1; then
	echo "mkimage: $BUSYBOX is dynamically linked; need busybox-static" >&2
	exit 1
fi

work=$(mktemp -d /tmp/nswire-mkimage.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

mkdir -p "$root"/{bin,etc,www,tmp,root,proc,sys,dev,run,var/tmp,usr}
install -m 0755 "$BUSYBOX" "$root/bin/busybox"
while read -r applet; do
	[[ -n "$applet" && "$applet" != busybox ]] || continue
	ln -s busybox "$root/bin/$applet"
done < <("$BUSYBOX" --list)
# Every usual PATH entry resolves to /bin.
ln -s bin "$root/sbin"
ln -s ../bin "$root/usr/bin"
ln -s ../bin "$root/usr/sbin"
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"

printf 'hello from nswire\n' >"$root/www/index.html"
cat >"$root/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat >"$root/etc/group" <<'GR'
root:x:0:
nogroup:x:65534:
GR
printf 'nswire-test\n' >"$root/etc/hostname"

old_id=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)

tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$work/rootfs.tar" .

docker import \
	--change 'CMD ["/bin/httpd","-f","-p","80","-h","/www"]' \
	--change 'ENV PATH=/bin' \
	--change 'WORKDIR /' \
	--change 'EXPOSE 80' \
	--change "LABEL $LABEL=$LAYOUT_VERSION" \
	--message "nswire test image from $(basename "$BUSYBOX") (busybox-static)" \
	"$work/rootfs.tar" "$IMAGE" >/dev/null
new_id=$(docker image inspect --format '{{.Id}}' "$IMAGE")
# Drop the image this one replaced (--force or layout change), unless in use.
if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then
	docker image rm "$old_id" >/dev/null 2>&1 || true
fi
echo "mkimage: built $IMAGE"
