#!/usr/bin/env bash
# Build a minimal root filesystem for tests from Debian's busybox-static:
# every applet linked into /bin, /etc/passwd, /etc/group, /tmp (1777), /proc, /sys, /dev.
# Usage: scripts/build-test-rootfs.sh DIR   (idempotent; DIR is created)
set -euo pipefail
dir=${1:?usage: build-test-rootfs.sh DIR}
bb=${BUSYBOX:-/bin/busybox}
if ! [ -x "$bb" ]; then
  echo "build-test-rootfs: $bb missing (apt-get install busybox-static)" >&2
  exit 1
fi
if ! "$bb" true >/dev/null 2>&1; then
  echo "build-test-rootfs: $bb does not run" >&2
  exit 1
fi
# The container has no dynamic loader: insist on a static binary.
if command -v ldd >/dev/null && ldd "$bb" >/dev/null 2>&1; then
  echo "build-test-rootfs: $bb is dynamically linked; install busybox-static" >&2
  exit 1
fi
mkdir -p "$dir"
chmod 0755 "$dir"
mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,home,var,run}
chmod 1777 "$dir/tmp"
chmod 0700 "$dir/root"
install -m 0755 "$bb" "$dir/bin/busybox"
# One symlink per applet, made by busybox itself (fast: no process per applet). Its links
# point at the path of the running binary (e.g. /usr/bin/busybox on merged-/usr hosts):
# make that path exist inside the rootfs too (/tmp is not used: containers mount over it).
"$bb" --install -s "$dir/bin"
target=$(readlink "$dir/bin/sh")
case "$target" in
  /bin/busybox) ;;
  /*) mkdir -p "$dir$(dirname "$target")"; ln -sfn /bin/busybox "$dir$target" ;;
  *) echo "build-test-rootfs: unexpected applet link $target" >&2; exit 1 ;;
esac
# Applets that tools expect in /usr/bin as well (env in shebangs).
ln -sfn ../../bin/busybox "$dir/usr/bin/env"
cat >"$dir/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
PASSWD
cat >"$dir/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
users:x:100:user
nogroup:x:65534:
user:x:1000:
GROUP
: >"$dir/etc/hosts"
: >"$dir/etc/resolv.conf"
mkdir -p "$dir/home/user"
chown 1000:1000 "$dir/home/user" 2>/dev/null || true
echo "$dir"
