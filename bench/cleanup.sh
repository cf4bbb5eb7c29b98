#!/usr/bin/env bash
# Safety net for bench/bench.mjs, which cleans up after itself even on failure: if it was
# killed outright (SIGKILL, OOM), this stops what it left in its work dir DIR (/tmp/bb-*):
# processes whose command line names DIR (dockerd, containerd, shims, berthd, conmon),
# containers in runc roots below DIR, mounts below DIR; then removes DIR.
#   bash bench/cleanup.sh DIR
set -uo pipefail
dir=${1:?usage: $0 WORKDIR}
case "$dir" in /tmp/bb-*) ;; *) echo "cleanup: refusing $dir (not a bench work dir)" >&2; exit 2 ;; esac
[ -d "$dir" ] || exit 0
pid=$(cat "$dir/bench.pid" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "cleanup: bench $pid still runs; leaving $dir" >&2; exit 0; fi

ours() { # pids whose argv mentions the work dir
  for p in /proc/[0-9]*; do
    { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF "$dir/" && echo "${p#/proc/}"
  done
}
for sig in TERM KILL; do
  pids=$(ours)
  [ -z "$pids" ] && break
  echo "cleanup: SIG$sig $(echo $pids)"
  kill -s "$sig" $pids 2>/dev/null || true
  sleep 3
done
# containers left in runc state roots below the work dir
find "$dir" -maxdepth 7 -name state.json -path '*/*/state.json' 2>/dev/null | while read -r f; do
  root=$(dirname "$(dirname "$f")"); id=$(basename "$(dirname "$f")")
  runc --root "$root" delete -f "$id" >/dev/null 2>&1 && echo "cleanup: runc delete $id"
done
# mounts below the work dir, deepest first
for pass in 1 2; do
  awk -v d="$dir/" 'index($5, d) == 1 { print length($5) " " $5 }' /proc/self/mountinfo | sort -rn | cut -d' ' -f2- |
    while read -r m; do if [ $pass = 1 ]; then umount "$m" 2>/dev/null; else umount -l "$m" 2>/dev/null; fi; done
done
rm -rf "$dir"
echo "cleanup: removed $dir"
