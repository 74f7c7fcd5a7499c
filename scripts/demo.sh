#!/usr/bin/env bash
# The main job on embedded defaults: synthesise a month of logs for the demo organisation, then audit them.
# Usage: scripts/demo.sh [EVENTS]      (default 300000)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-300000}"
config=fixtures/demo/tally.yaml

scripts/setup.sh
echo "demo: building tally (release; the first build takes several minutes)" >&2
build_log="$(mktemp)"
if ! swift build -c release --product tally >"$build_log" 2>&1; then
  cat "$build_log" >&2
  echo "demo: the build failed (output above)" >&2
  exit 1
fi
rm -f "$build_log"
tally="$(swift build -c release --show-bin-path)/tally"

# The demo's own prompt-hash secret; a real deployment sets its own.
export TALLY_HASH_SECRET="${TALLY_HASH_SECRET:-demo-only-hash-secret}"

"$tally" check-config --config "$config" 2>/dev/null
rm -rf var/demo/log
"$tally" synth --config "$config" --events "$events" --days 30 --seed 1 --out var/demo/log

echo
echo "demo: logs are in var/demo/log (one folder per collector, closed segments gzipped; zcat shows the lines)."
echo "demo: the auditor (tally audit) is not built yet, so the demo stops here: there is no ledger and no report to show."
