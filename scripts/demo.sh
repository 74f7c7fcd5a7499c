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
if ! swift build -c release --static-swift-stdlib --product tally >"$build_log" 2>&1; then
  cat "$build_log" >&2
  echo "demo: the build failed (output above)" >&2
  exit 1
fi
rm -f "$build_log"
tally="$(swift build -c release --show-bin-path)/tally"

# The demo's own prompt-hash secret; a real deployment sets its own.
export TALLY_HASH_SECRET="${TALLY_HASH_SECRET:-demo-only-hash-secret}"

"$tally" check-config --config "$config" 2>/dev/null
rm -rf var/demo/log var/demo/reports var/demo/tally.sqlite var/demo/tally.sqlite-wal var/demo/tally.sqlite-shm
"$tally" synth --config "$config" --events "$events" --days 30 --seed 1 --out var/demo/log

echo
"$tally" audit --config "$config"
# A second run finds nothing new: this is what cron sees between collector rotations.
"$tally" audit --config "$config"

# The logs span the last 30 days.
from="$(date -u -d '30 days ago' +%F)"
to="$(date -u +%F)"
echo
"$tally" report attribution --config "$config" --from "$from" --to "$to" --by team,model
"$tally" report attribution --config "$config" --from "$from" --to "$to" --by org,project --format csv > var/demo/attribution.csv
echo
"$tally" realloc list --config "$config"
"$tally" verify --config "$config"
echo
echo "demo: reports (CSV, FOCUS, HTML) written by the audit:"
ls var/demo/reports/latest/
echo
echo "demo: logs in var/demo/log, ledger in var/demo/tally.sqlite, CSV in var/demo/attribution.csv"
echo "demo: this month's report: var/demo/reports/latest/report.html (scripts/screenshot-report.sh renders it to PNG)"
echo "demo: try  $tally report attribution --config $config --period $(date -u +%Y-%m) --by user,day --format json"
