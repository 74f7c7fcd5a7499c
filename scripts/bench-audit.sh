#!/usr/bin/env bash
# Audit ingest speed and size: `tally synth` SIZES events (default "1000000 10000000"), then a release `tally audit`
# over them RUNS times (default 3) from an empty ledger, printing events/s, seconds and peak RSS, and the seconds the
# audit spent after the ingest (waste, budgets, reallocation, alerts, the list: "evaluated in"); then a re-run with
# nothing new (which is that evaluation alone), the ledger's bytes per event, and `tally report attribution` for the month. In the same run DuckDB does
# the same ingest-and-sum (read_json into its own file, GROUP BY team, model) as the reference; ratios are ours/DuckDB.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="${SIZES:-1000000 10000000}"
runs="${RUNS:-3}"
scripts/setup.sh
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -c 'import duckdb, yaml' 2>/dev/null || .venv/bin/pip install -q duckdb pyyaml
swift build -c release --static-swift-stdlib --product tally >/dev/null
tally="$(swift build -c release --show-bin-path)/tally"
work="$(mktemp -d "${TMPDIR:-/tmp}/tally-bench-audit.XXXXXX")"
trap 'rm -rf "$work"' EXIT
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "bench-audit: $(nproc) cores, $(date -u +%FT%TZ), sizes: $sizes, runs: $runs"
for n in $sizes; do
  dir="$work/$n"
  mkdir -p "$dir"
  sed "s#../../var/demo#$dir#g" fixtures/demo/tally.yaml > "$dir/tally.yaml"
  "$tally" synth --config "$dir/tally.yaml" --events "$n" --days 30 --seed 1 --end 2026-11-22T00:00:00Z >/dev/null
  echo "== $n events: $(du -sh "$dir/log" | cut -f1) of gzipped segments"
  secs=(); rss=(); duck=(); evals=()
  for i in $(seq "$runs"); do
    rm -f "$dir"/tally.sqlite*
    /usr/bin/time -f "%e %M" -o "$dir/time" "$tally" audit --config "$dir/tally.yaml" --quiet > "$dir/summary" 2>/dev/null
    read -r s kb < "$dir/time"
    secs+=("$s"); rss+=("$kb")
    evals+=("$(grep -o 'evaluated in [0-9.]*' "$dir/summary" | cut -d' ' -f3)")
    d=$(.venv/bin/python scripts/bench-audit.py "$dir/tally.yaml" "$dir/log" "$dir/duck.db" | cut -d' ' -f1)
    duck+=("$d")
    echo "run $i: tally $s s ($(python3 -c "print(int($n / $s))") events/s, peak RSS $((kb / 1024)) MB); duckdb $d s"
  done
  cat "$dir/summary"
  s=$(median "${secs[@]}"); d=$(median "${duck[@]}")
  echo "median: tally $s s = $(python3 -c "print(int($n / $s))") events/s, peak RSS $(( $(median "${rss[@]}") / 1024 )) MB;" \
       "duckdb $d s = $(python3 -c "print(int($n / $d))") events/s; tally/duckdb time ratio $(python3 -c "print(f'{$s / $d:.2f}')")"
  echo "audit excluding ingest (evaluated in, after the ingest): median $(median "${evals[@]}") s"
  rerun=(); rerss=()
  for i in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -o "$dir/time" "$tally" audit --config "$dir/tally.yaml" --quiet >/dev/null 2>&1
    read -r s kb < "$dir/time"
    rerun+=("$s"); rerss+=("$kb")
  done
  bytes=$(stat -c %s "$dir/tally.sqlite")
  echo "re-run with nothing new (the whole audit but the ingest): median $(median "${rerun[@]}") s, peak RSS $(( $(median "${rerss[@]}") / 1024 )) MB;" \
       "ledger $((bytes / 1048576)) MB = $((bytes / n)) bytes/event"
  report=()
  for i in $(seq "$runs"); do
    /usr/bin/time -f "%e" -o "$dir/time" "$tally" report attribution --config "$dir/tally.yaml" --period 2026-11 --by team,model >/dev/null
    report+=("$(cat "$dir/time")")
  done
  echo "report attribution --period 2026-11 --by team,model: median $(median "${report[@]}") s"
  files=(); filesrss=()
  for i in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -o "$dir/time" "$tally" report --config "$dir/tally.yaml" --period 2026-11 --out "$dir/report-files" >/dev/null
    read -r s kb < "$dir/time"
    files+=("$s"); filesrss+=("$kb")
  done
  echo "report --period 2026-11 (every CSV, focus.csv, report.html; $(du -sh "$dir/report-files" | cut -f1)): median $(median "${files[@]}") s," \
       "peak RSS $(( $(median "${filesrss[@]}") / 1024 )) MB; the audit wrote its reports in $(grep -o 'reports in [^ ]* ([0-9.]* s)' "$dir/summary" | grep -o '[0-9.]* s')"
  rm -rf "$dir"
done
