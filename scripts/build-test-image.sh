#!/usr/bin/env bash
# Builds the test image berth-test/busybox:latest without any daemon, byte-reproducibly:
#   OUTDIR/busybox.tar       docker-save tarball (manifest.json + repositories + OCI layout, as
#                            `docker save` of Docker >= 25 writes it; uncompressed layer)
#   OUTDIR/busybox-oci/      OCI image layout directory (gzip-compressed layer)
#   OUTDIR/busybox-oci.tar   the same OCI image layout as a tarball
# Content: Debian's static busybox (package busybox-static) with every applet symlinked,
# /etc/passwd, /etc/group, /tmp. Fixed mtimes, sorted entries, owner 0:0.
# Needs: bash, GNU tar, gzip, sha256sum, python3, busybox-static (apt-get install -y busybox-static).
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

out=${1:?usage: $0 OUTDIR}
busybox=${BUSYBOX:-/bin/busybox}
ref_repo=berth-test/busybox
ref_tag=latest

if [[ ! -x $busybox ]] || ! "$busybox" --list-full >/dev/null 2>&1; then
  echo "build-test-image: $busybox not found; install it with: apt-get install -y busybox-static" >&2
  exit 1
fi
if LC_ALL=C file -b "$busybox" 2>/dev/null | grep -q 'dynamically linked'; then
  echo "build-test-image: $busybox is dynamically linked; install busybox-static" >&2
  exit 1
fi

case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  armv7l) arch=arm ;;
  *) arch=$(uname -m) ;;
esac

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tar_repro() { # tar_repro DIR OUTFILE: reproducible tar of DIR's content (names without ./, as docker writes them)
  local entries
  mapfile -t entries < <(cd "$1" && ls -A | sort)
  tar --sort=name --mtime='@0' --owner=0 --group=0 --numeric-owner --format=gnu \
      -C "$1" -cf "$2" -- "${entries[@]}"
}
digest_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

# ---- root filesystem ----
root=$work/rootfs
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home,dev,proc,sys,var}
install -m 0755 "$busybox" "$root/bin/busybox"
# one symlink per applet, made in one process (a process per link is slow on a busy machine)
"$busybox" --list-full | LC_ALL=C sort | grep -vx 'bin/busybox' | (cd "$root" && python3 -c '
import os, sys
for p in sys.stdin.read().split():
    os.makedirs(os.path.dirname(p) or ".", exist_ok=True)
    if os.path.lexists(p):
        os.unlink(p)
    os.symlink("/bin/busybox", p)
')
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'daemon:x:1:1:daemon:/usr/sbin:/bin/false' \
  'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' > "$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'daemon:x:1:' 'nogroup:x:65534:' > "$root/etc/group"
find "$root" -type d -exec chmod 0755 {} +
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"

layer=$work/layer.tar
tar_repro "$root" "$layer"
diff_id=$(digest_of "$layer")
gzip -n -9 -c "$layer" > "$work/layer.tar.gz"
gz_id=$(digest_of "$work/layer.tar.gz")

created=1970-01-01T00:00:00Z
printf '{"architecture":"%s","config":{"Cmd":["sh"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/"},"created":"%s","history":[{"created":"%s","created_by":"scripts/build-test-image.sh: busybox-static with all applets, /etc/passwd, /etc/group, /tmp"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$arch" "$created" "$created" "$diff_id" > "$work/config.json"
config_id=$(digest_of "$work/config.json")

manifest() { # manifest LAYER_MEDIATYPE LAYER_DIGEST LAYER_SIZE
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"%s","digest":"sha256:%s","size":%s}]}' \
    "$config_id" "$(size_of "$work/config.json")" "$1" "$2" "$3"
}
index() { # index MANIFEST_FILE
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"docker.io/%s:%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$(digest_of "$1")" "$(size_of "$1")" "$ref_repo" "$ref_tag" "$ref_tag"
}

# ---- docker-save tarball (uncompressed layer) ----
save=$work/save
mkdir -p "$save/blobs/sha256"
cp "$layer" "$save/blobs/sha256/$diff_id"
cp "$work/config.json" "$save/blobs/sha256/$config_id"
manifest application/vnd.oci.image.layer.v1.tar "$diff_id" "$(size_of "$layer")" > "$work/manifest-save.json"
cp "$work/manifest-save.json" "$save/blobs/sha256/$(digest_of "$work/manifest-save.json")"
index "$work/manifest-save.json" > "$save/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$save/oci-layout"
printf '[{"Config":"blobs/sha256/%s","RepoTags":["%s:%s"],"Layers":["blobs/sha256/%s"]}]\n' \
  "$config_id" "$ref_repo" "$ref_tag" "$diff_id" > "$save/manifest.json"
printf '{"%s":{"%s":"%s"}}\n' "$ref_repo" "$ref_tag" "$diff_id" > "$save/repositories"
find "$save" -type d -exec chmod 0755 {} + ; find "$save" -type f -exec chmod 0644 {} +
tar_repro "$save" "$out/busybox.tar"

# ---- OCI image layout (gzip layer) ----
oci=$out/busybox-oci
rm -rf "$oci"
mkdir -p "$oci/blobs/sha256"
cp "$work/layer.tar.gz" "$oci/blobs/sha256/$gz_id"
cp "$work/config.json" "$oci/blobs/sha256/$config_id"
manifest application/vnd.oci.image.layer.v1.tar+gzip "$gz_id" "$(size_of "$work/layer.tar.gz")" > "$work/manifest-oci.json"
cp "$work/manifest-oci.json" "$oci/blobs/sha256/$(digest_of "$work/manifest-oci.json")"
index "$work/manifest-oci.json" > "$oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$oci/oci-layout"
find "$oci" -type d -exec chmod 0755 {} + ; find "$oci" -type f -exec chmod 0644 {} +
tar_repro "$oci" "$out/busybox-oci.tar"

echo "berth-test/busybox:latest image ID sha256:$config_id (layer DiffID sha256:$diff_id)"
