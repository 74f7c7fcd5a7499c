#!/usr/bin/env bash
# Synth throughput: `tally synth` of EVENTS events (default 10 million) on the demo config, release build,
# RUNS times (default 3); prints each run and the median events/s and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-10000000}"
runs="${RUNS:-3}"
scripts/setup.sh
swift build -c release --static-swift-stdlib --product tally >/dev/null
tally="$(swift build -c release --show-bin-path)/tally"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
rates=()
rss=()
for i in $(seq "$runs"); do
  rm -rf "$out/log"
  /usr/bin/time -f "%e %M" -o "$out/time" "$tally" synth --config fixtures/demo/tally.yaml --events "$events" --days 30 \
    --seed 1 --out "$out/log" --end 2026-11-22T00:00:00Z >/dev/null
  read -r seconds kb < "$out/time"
  rate=$(python3 -c "print(int($events / $seconds))")
  echo "run $i: $events events in $seconds s = $rate events/s, peak RSS $((kb / 1024)) MB, $(du -sh "$out/log" | cut -f1) on disk"
  rates+=("$rate"); rss+=("$kb")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median: $(median "${rates[@]}") events/s, peak RSS $(( $(median "${rss[@]}") / 1024 )) MB ($(nproc) cores)"
