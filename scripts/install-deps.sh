#!/usr/bin/env bash
# Installs what berth needs on a Debian 12 machine: OS packages (as root), pnpm, node modules.
# Idempotent: skips what is already there. Used by both README commands.
set -euo pipefail
cd "$(dirname "$0")/.."

# criu: runc's checkpoint/restore (its e2e runs where `criu check` passes and skips with CRIU's complaint elsewhere)
# containerd: the second runtime backend (@berth/runtime-containerd); its e2e starts its own containerd
# containernetworking-plugins: the CNI plugins (bridge, host-local, loopback, tuning, portmap — which runs iptables) in /usr/lib/cni that @berth/plugin-network-cni runs
# docker-compose: Debian's compose 1.29 (docker-py), driven against berthd in the volumes and compose e2e
# python3-docker: docker-py itself (images.build in the build e2e; also pulled in by docker-compose)
# openssl: the CLI makes the CRI streaming server's self-signed certificate (plugin config streamingTls.selfSigned)
APT_PACKAGES=(runc conmon tini busybox-static criu containerd containernetworking-plugins iproute2 iptables docker-registry apache2-utils skopeo umoci apparmor zstd python3 gcc libc6-dev docker-compose python3-docker openssl)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian's docker-registry starts a system service on :5000; tests start their own.
    if command -v systemctl >/dev/null; then systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi
    # Debian's containerd starts a system service too; berth's tests start their own on a temp socket.
    if command -v systemctl >/dev/null; then systemctl disable --now containerd >/dev/null 2>&1 || true; fi
  fi
else
  echo "==> not root (or no apt): skipping OS packages; e2e tests that need runc/conmon will skip"
fi

if ! command -v pnpm >/dev/null || ! pnpm --version | grep -q '^10\.'; then
  echo "==> npm install -g pnpm@10"
  npm install -g pnpm@10 >/dev/null
fi

echo "==> pnpm install"
pnpm install --frozen-lockfile --reporter=silent
