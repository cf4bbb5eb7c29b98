#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, lints, typechecks, runs unit tests
# and the e2e tests (real runc/conmon and real clients when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The public specs the contract tests validate against: required in CI, else those tests skip.
if [[ "${CI:-}" == "true" ]]; then
  bash scripts/fetch-specs.sh --if-missing
else
  bash scripts/fetch-specs.sh --if-missing || echo "==> specs unavailable: the tests that validate against them skip"
fi

echo "==> build";     pnpm -s turbo run build --output-logs=errors-only
echo "==> lint";      pnpm -s eslint .
echo "==> typecheck"; pnpm -s turbo run typecheck --output-logs=errors-only

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0
echo "==> unit tests"
pnpm -s vitest run --project '!@berth/e2e' --reporter=default --reporter=json --outputFile.json="$results/unit.json" || status=1
echo "==> e2e tests"
pnpm -s vitest run --project '@berth/e2e' --reporter=default --reporter=json --outputFile.json="$results/e2e.json" || status=1

node -e '
  const fs = require("fs"); let p = 0, f = 0, s = 0;
  for (const n of ["unit", "e2e"]) {
    const file = process.argv[1] + "/" + n + ".json";
    if (!fs.existsSync(file)) { f++; console.log(n + ": no results (runner failed)"); continue; }
    const r = JSON.parse(fs.readFileSync(file, "utf8"));
    p += r.numPassedTests; f += r.numFailedTests; s += r.numPendingTests + (r.numTodoTests || 0);
    console.log(n + ": " + r.numPassedTests + " passed, " + r.numFailedTests + " failed, " + r.numPendingTests + " skipped");
  }
  console.log("total: " + p + " passed, " + f + " failed, " + s + " skipped");
' "$results"
exit $status
