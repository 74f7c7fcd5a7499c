#!/usr/bin/env bash
# Collector overhead, side by side with the references, in one run on loopback:
#   direct   wrk -> mock upstream (nginx)
#   litellm  wrk -> LiteLLM proxy -> mock          (SKIP_LITELLM=1 leaves it out)
#   tally    wrk -> release `tally collect` -> mock (key check, hashing, usage extraction, logging, all on)
# then a second run with the issue's reference, a bare Hummingbird + AsyncHTTPClient forwarder on their defaults
# (Benchmarks/BareForwarder: no parsing, hashing or logging; BARE=0 leaves it out), and, with NGINX_PASS=1, a third
# with a plain nginx hop as the floor. It ends with the collector's figures as ratios to each reference.
# Uses ../shared/bench/peer (overhead.sh prints req/s, p50/p90/p99, added latency and CPU per request);
# this script adds the collector's peak RSS and checks that every request it served was logged.
#
#   scripts/bench-collector.sh                      # chat + stream, 1 and 16 connections, 15 s each
#   DURATION=10 SKIP_LITELLM=1 scripts/bench-collector.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
peer="$(cd "$repo/../shared/bench/peer" 2>/dev/null && pwd)" || { echo "bench: ../shared/bench/peer is missing" >&2; exit 1; }

scripts/setup.sh
"$peer/setup.sh"
swift build -c release --product tally >/dev/null
swift build -c release --product bare-forwarder >/dev/null
tally="$(swift build -c release --show-bin-path)/tally"
bare="$(swift build -c release --show-bin-path)/bare-forwarder"

export MOCK_PORT="${MOCK_PORT:-18080}"
export PROXY_PORT="${PROXY_PORT:-15000}"
work="$(mktemp -d /tmp/tally-bench-XXXXXX)"
secret="tk-bench-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
sha="$(printf '%s' "$secret" | sha256sum | cut -d' ' -f1)"
cat > "$work/tally.yaml" <<YAML
default_provider: openai
providers:
  - {name: openai, kind: openai, base_url: "http://127.0.0.1:$MOCK_PORT", api_key_env: BENCH_UPSTREAM_KEY}
  - {name: anthropic, kind: anthropic, base_url: "http://127.0.0.1:$MOCK_PORT", api_key_env: BENCH_UPSTREAM_KEY}
orgs: [{id: bench}]
teams: [{id: t, org: bench}]
users: [{id: u, team: t}]
keys:
  - {id: k-bench, sha256: $sha, user: u}
collector:
  id: bench
  log_dir: log
  revocations: revoked.tsv
  fsync: interval
YAML
export BENCH_UPSTREAM_KEY="sk-bench-master" TALLY_HASH_SECRET="bench-secret"

# Peak RSS of the collector, sampled while it runs (overhead.sh owns its lifetime).
rss_file="$work/peak-rss-kb"
echo 0 > "$rss_file"
( while sleep 0.5; do
    for pid in $(pgrep -f "tally collect --config $work/tally.yaml" || true); do
      hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ "${hwm:-0}" -gt "$(cat "$rss_file")" ] && echo "$hwm" > "$rss_file"
    done
  done ) &
sampler=$!
trap 'kill $sampler 2>/dev/null || true' EXIT

PROXY_CMD="exec '$tally' collect --config '$work/tally.yaml' --listen 127.0.0.1:$PROXY_PORT --log-level warning" \
PROXY_NAME=tally PROXY_KEY="$secret" SCENARIOS="${SCENARIOS:-chat stream}" RESULTS_DIR="$work/results" \
  "$peer/overhead.sh"

if [ "${BARE:-1}" = 1 ]; then
  PROXY_CMD="exec '$bare' $PROXY_PORT http://127.0.0.1:$MOCK_PORT" PROXY_NAME=bare-hb-ahc SKIP_LITELLM=1 \
  SCENARIOS="${SCENARIOS:-chat stream}" RESULTS_DIR="$work/results-bare" "$peer/overhead.sh"
fi

if [ "${NGINX_PASS:-0}" = 1 ]; then
  PROXY_CMD='"$PEER_DIR"/nginx_passthrough.sh "$PROXY_PORT" "$MOCK_PORT"' PROXY_NAME=nginx-pass SKIP_LITELLM=1 \
  SCENARIOS="${SCENARIOS:-chat stream}" RESULTS_DIR="$work/results-nginx" "$peer/overhead.sh"
fi

events=$(find "$work/log" -name '*.jsonl*' -exec sh -c 'case "$1" in *.gz) zcat "$1";; *) cat "$1";; esac' _ {} \; | wc -l)
echo
echo "tally collector: peak RSS $(( $(cat "$rss_file") / 1024 )) MB; $events calls logged under $work/log"

# The collector against each reference, from the same run.
python3 - "$work" <<'PY'
import json, sys
from pathlib import Path
rows = []
for d in sorted(Path(sys.argv[1]).glob("results*")):
    f = d / "results.json"
    if f.exists():
        rows += [dict(r, run=d.name) for r in json.loads(f.read_text())]
def added(r):
    direct = next((x for x in rows if x["run"] == r["run"] and x["target"] == "direct"
                   and x["scenario"] == r["scenario"] and x["connections"] == r["connections"]), None)
    return (r["p50_ms"] - direct["p50_ms"], r["p99_ms"] - direct["p99_ms"]) if direct else (None, None)
tally = [r for r in rows if r["target"] == "tally"]
refs = sorted({r["target"] for r in rows if r["target"] not in ("tally", "direct")})
print("\ncollector vs references (req/s ratio = tally / reference; added = p50/p99 minus direct in the same run)")
print(f"{'scenario':10s} {'conns':>5s} {'tally req/s':>11s} {'tally +p50/+p99 ms':>19s}  " + "  ".join(f"{r:>26s}" for r in refs))
for t in tally:
    a50, a99 = added(t)
    cells = []
    for name in refs:
        ref = next((x for x in rows if x["target"] == name and x["scenario"] == t["scenario"] and x["connections"] == t["connections"]), None)
        if ref is None:
            cells.append(f"{'-':>26s}")
            continue
        r50, r99 = added(ref)
        cells.append(f"{ref['rps']:8.0f}/s x{t['rps'] / ref['rps']:5.2f} +{r50:.3f}/+{r99:.3f}")
    print(f"{t['scenario']:10s} {t['connections']:5d} {t['rps']:11.0f} {'+%.3f/+%.3f' % (a50, a99):>19s}  " + "  ".join(cells))
PY
