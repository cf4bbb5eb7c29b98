#!/usr/bin/env bash
# The main job: set up a fresh Debian machine (as root), build berth, start berthd, load the
# test image and run a container through the real docker CLI.
#   BERTH_KEEP=1  leave berthd running afterwards (socket printed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "berth runs containers as root: run this as root" >&2; exit 1; }
bash scripts/install-deps.sh

echo "==> build"
pnpm -s turbo run build --output-logs=errors-only

work=${BERTH_WORK:-/var/lib/berth-main}
sock="$work/berth.sock"
mkdir -p "$work"
echo "==> test image"
bash scripts/build-test-image.sh "$work/image" >/dev/null

echo "==> berthd (data root $work/data, socket $sock)"
node packages/cli/bin/berthd --host "unix://$sock" --data-root "$work/data" --exec-root /run/berth-main \
  --pidfile "$work/berthd.pid" --log-level warn >"$work/berthd.log" 2>&1 &
pid=$!
stop() {
  if [ "${BERTH_KEEP:-0}" != 1 ]; then kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; fi
}
trap stop EXIT
for _ in $(seq 1 100); do
  [ -S "$sock" ] && curl -sf --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/berthd.log" >&2; exit 1; }
  sleep 0.1
done

export DOCKER_HOST="unix://$sock"
docker version --format 'client {{.Client.Version}} -> server {{.Server.Version}} (API {{.Server.APIVersion}})'
docker load -i "$work/image/busybox.tar"
echo "==> docker run --rm berth-test/busybox echo hello from berth"
docker run --rm berth-test/busybox echo "hello from berth"
if [ "${BERTH_KEEP:-0}" = 1 ]; then echo "berthd keeps running: export DOCKER_HOST=unix://$sock"; fi
