#!/usr/bin/env bash
# Builds @berth/image-store (and its dependencies), then runs the pull benchmark.
# Usage: bash bench/images/run.sh [--mb 100] [--layers 4] [--runs 1]
set -euo pipefail
cd "$(dirname "$0")/../.."
pnpm -s turbo run build --filter @berth/image-store... --output-logs=errors-only
node bench/images/pull-bench.mjs "$@"
