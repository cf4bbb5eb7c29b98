#!/usr/bin/env bash
# Issue-6 benchmark, one command: berth side by side with Debian's dockerd and raw runc.
#   bash bench/run.sh [--quick] [--runs N] [--out DIR] [--no-profile] [--keep]
# As root on Debian 12. Installs what it needs (docker.io for the reference only, berth's
# own packages via scripts/install-deps.sh), builds berth, then runs bench/bench.mjs, which
# starts its own containerd + dockerd and berthd under /tmp/bb-*, measures, prints the
# table and stops everything again (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench: run as root (it starts dockerd, berthd and runc containers)" >&2; exit 1; }

# The reference: Debian's docker.io (dockerd, containerd, runc). Not a project dependency:
# installed here only, without letting the package start its system services.
if ! command -v dockerd >/dev/null || ! command -v containerd >/dev/null; then
  echo "==> apt-get install docker.io (reference engine for the benchmark)"
  policy=/usr/sbin/policy-rc.d
  added_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added_policy=1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  [ $added_policy = 1 ] && rm -f "$policy"
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now docker.service docker.socket containerd.service >/dev/null 2>&1 || true
  fi
fi

bash scripts/install-deps.sh
echo "==> build"
pnpm -s turbo run build --output-logs=errors-only

if [ -z "${BENCH_DOCKER:-}" ]; then
  if [ -x /usr/local/bin/docker ]; then export BENCH_DOCKER=/usr/local/bin/docker
  else export BENCH_DOCKER=$(command -v docker); echo "==> no /usr/local/bin/docker: using $BENCH_DOCKER"; fi
fi

# bench.mjs cleans up after itself (also on errors and SIGINT/SIGTERM); this trap catches a
# bench killed outright: anything left in its work dir is stopped and removed.
before=$(ls -d /tmp/bb-* 2>/dev/null || true)
sweep() {
  for d in /tmp/bb-*; do
    [ -d "$d" ] || continue
    grep -qxF "$d" <<<"$before" && continue
    bash bench/cleanup.sh "$d" || true
  done
}
[[ " $* " == *" --keep "* ]] || trap sweep EXIT
echo "==> node bench/bench.mjs $*  (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
BENCH_COMMAND="bash bench/run.sh $*" node bench/bench.mjs "$@"
