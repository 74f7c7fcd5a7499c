#!/usr/bin/env bash
# Collector overhead, side by side with the references, in one run on loopback:
#   direct   wrk -> mock upstream (nginx)
#   litellm  wrk -> LiteLLM proxy -> mock          (SKIP_LITELLM=1 leaves it out)
#   tally    wrk -> release `tally-collector` -> mock (key check, hashing, usage extraction, logging, all on)
# then a second run with a plain nginx hop as the floor (NGINX_PASS=0 leaves it out), and the collector's figures as
# ratios to each reference. Uses ../shared/bench/peer (overhead.sh prints req/s, p50/p90/p99, added latency and CPU
# per request); this script adds the collector's peak RSS and checks that every request it served was logged.
# Then (SLOW=0 leaves it out) many slow streams: a collector idle (its RSS), then SLOW_CALLS (2000) concurrent streaming
# calls to a mock that sends 100 events 100 ms apart, every one checked whole and logged, with the 1-connection added
# latency of plain calls measured meanwhile against the same mock's direct figure.
#
# RUNS (3) repeats the collector, direct and nginx measurements (and the time to first event) and reports medians; LiteLLM
# is measured in the first run only.
#
#   scripts/bench-collector.sh                      # chat + stream, 1 and 16 connections, 15 s each, 3 runs
#   DURATION=10 RUNS=5 SKIP_LITELLM=1 scripts/bench-collector.sh
#   OVERHEAD=0 SLOW_CALLS=500 scripts/bench-collector.sh      # only the slow streams
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
peer="$(cd "$repo/../shared/bench/peer" 2>/dev/null && pwd)" || { echo "bench: ../shared/bench/peer is missing" >&2; exit 1; }

scripts/setup.sh
"$peer/setup.sh"
# Release builds link the Swift runtime and Foundation statically, as docs/collector.md says to deploy it; the
# collector measured is the `tally-collector` executable.
swift build -c release --static-swift-stdlib --product tally-collector >/dev/null
collector="$(swift build -c release --static-swift-stdlib --show-bin-path)/tally-collector"

# On a shared host (a VM) the hypervisor can take CPU time away from this machine ("steal"), and every figure below
# then moves by a factor unrelated to the code. The bench says how much was taken while it ran, so a run can be
# judged: figures from a run with more than a few percent of steal are not comparable with a quiet one. Little steal
# is not proof of a quiet host: neighbours sharing its caches slow the collector's larger working set more than nginx's
# (seen here: the same binary's stream at 16 connections went from 140 to 220 us per call at 0.2% steal, while the
# direct and nginx figures held). Compare medians of runs made close together, and count instructions (callgrind) to
# judge a change to the code.
steal_ticks() { awk '/^cpu / {print $9}' /proc/stat; }
steal_start=$(steal_ticks) bench_start=$(date +%s)
report_steal() {
  local ticks=$(( $(steal_ticks) - steal_start )) secs=$(( $(date +%s) - bench_start )) cpus
  cpus=$(nproc)
  [ "$secs" -gt 0 ] || return 0
  python3 -c "import sys; t,s,c,hz=map(int,sys.argv[1:]); p=100*t/hz/(s*c); print(f'\nhost steal while the bench ran: {t/hz:.1f} CPU-s of {s*c} ({p:.1f}%)' + ('  -- above 3%: these figures are not comparable with a quiet run' if p > 3 else ''))" \
    "$ticks" "$secs" "$cpus" "$(getconf CLK_TCK)"
}

runs="${RUNS:-3}"
[ "$runs" -ge 1 ] 2>/dev/null || { echo "bench: RUNS must be a whole number of at least 1" >&2; exit 2; }
export MOCK_PORT="${MOCK_PORT:-18080}"
export PROXY_PORT="${PROXY_PORT:-15000}"
work="$(mktemp -d /tmp/tally-bench-XXXXXX)"
secret="tk-bench-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
sha="$(printf '%s' "$secret" | sha256sum | cut -d' ' -f1)"
# A collector config: file, collector id and log folder, then provider lines.
write_config() {
  local file="$1" id="$2" log="$3"
  shift 3
  {
    echo "default_provider: openai"
    echo "providers:"
    printf '  - %s\n' "$@"
    cat <<YAML
orgs: [{id: bench}]
teams: [{id: t, org: bench}]
users: [{id: u, team: t}]
keys:
  - {id: k-bench, sha256: $sha, user: u}
collector:
  id: $id
  log_dir: $log
  revocations: revoked.tsv
  fsync: interval
YAML
  } > "$file"
}
write_config "$work/tally.yaml" bench log \
  "{name: openai, kind: openai, base_url: \"http://127.0.0.1:$MOCK_PORT\", api_key_env: BENCH_UPSTREAM_KEY}" \
  "{name: anthropic, kind: anthropic, base_url: \"http://127.0.0.1:$MOCK_PORT\", api_key_env: BENCH_UPSTREAM_KEY}"
export BENCH_UPSTREAM_KEY="sk-bench-master" TALLY_HASH_SECRET="bench-secret"

# Peak RSS of the collector: the kernel keeps each process's peak (VmHWM), read here once a second from the pid the
# collector's command writes, with shell builtins only. Nothing here scans /proc: a `pgrep` every half second, which
# this sampler used to run, took the collector's 1-connection p99 from 0.20-0.44 ms to 0.77-1.55 ms (three 10 s runs
# each way, twice, on a quiet host); direct calls' p99 was 0.08-0.28 ms with it and 0.08-0.19 ms without.
rss_file="$work/peak-rss-kb" pid_file="$work/collector.pid"
echo 0 > "$rss_file"
( peak=0
  while sleep 1; do
    pid="" hwm=0
    { read -r pid < "$pid_file"; } 2>/dev/null || continue
    { while read -r field value _; do
        if [ "$field" = VmHWM: ]; then hwm=$value; fi
      done < "/proc/$pid/status"; } 2>/dev/null || continue
    if [ "$hwm" -gt "$peak" ]; then peak=$hwm; echo "$peak" > "$rss_file"; fi
  done ) &
sampler=$!
trap 'kill $sampler 2>/dev/null || true; report_steal' EXIT

if [ "${OVERHEAD:-1}" = 1 ]; then
# Each run measures direct, then the collector (and LiteLLM, in the first run only: it is slow to start and its figures
# are a hundred times the collector's), then direct again and the plain nginx hop. The figures reported are the medians
# over the runs, each collector figure beside the references of its own run.
for run in $(seq "$runs"); do
  [ "$runs" -gt 1 ] && echo && echo "== run $run of $runs"
  skip_litellm="${SKIP_LITELLM:-0}"
  [ "$run" -gt 1 ] && skip_litellm=1
  PROXY_CMD="echo \$\$ > '$pid_file'; exec '$collector' --config '$work/tally.yaml' --listen 127.0.0.1:$PROXY_PORT --log-level warning" \
  PROXY_NAME=tally PROXY_KEY="$secret" SCENARIOS="${SCENARIOS:-chat stream}" RESULTS_DIR="$work/results-$run-tally" \
  SKIP_LITELLM="$skip_litellm" "$peer/overhead.sh"
  if [ "${NGINX_PASS:-1}" = 1 ]; then
    PROXY_CMD='"$PEER_DIR"/nginx_passthrough.sh "$PROXY_PORT" "$MOCK_PORT"' PROXY_NAME=nginx-pass SKIP_LITELLM=1 \
    SCENARIOS="${SCENARIOS:-chat stream}" RESULTS_DIR="$work/results-$run-nginx" "$peer/overhead.sh"
  fi
done

events=$(find "$work/log" -name '*.jsonl*' -exec sh -c 'case "$1" in *.gz) zcat "$1";; *) cat "$1";; esac' _ {} \; | wc -l)
echo
echo "tally collector: peak RSS $(( $(cat "$rss_file") / 1024 )) MB; $events calls logged under $work/log"

python3 scripts/bench/overhead_summary.py "$work"
fi

[ "${SLOW:-1}" = 1 ] || exit 0

# Many slow streams. The slow mock is nginx again: 100 events, each flushed, 100 ms apart, then the usage and [DONE].
ulimit -n "$(ulimit -Hn)"
calls="${SLOW_CALLS:-2000}"
slow_port=$((MOCK_PORT + 2))
fast_port=$((MOCK_PORT + 3))
slow_proxy=$((PROXY_PORT + 1))
mkdir -p "$work/slow-mock/tmp"
python3 - "$work/slow-mock/nginx.conf" "$slow_port" <<'PY'
import sys
path, port = sys.argv[1], sys.argv[2]
chunk = ('data: {"id":"chatcmpl-slow","object":"chat.completion.chunk","created":1700000000,"model":"mock-gpt",'
         '"choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}],"usage":null}\\n\\n')
steps = "".join(f"            echo -n '{chunk}';\n            echo_flush;\n            echo_sleep 0.1;\n" for _ in range(100))
usage = ('data: {"id":"chatcmpl-slow","object":"chat.completion.chunk","created":1700000000,"model":"mock-gpt",'
         '"choices":[],"usage":{"prompt_tokens":25,"completion_tokens":100,"total_tokens":125}}\\n\\ndata: [DONE]\\n\\n')
open(path, "w").write(f"""load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
worker_processes 1;
pid nginx.pid;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=8192;
        location = /v1/chat/completions {{
            default_type text/event-stream;
{steps}            echo -n '{usage}';
        }}
    }}
}}
""")
PY
nginx -p "$work/slow-mock/" -e "$work/slow-mock/error.log" -c "$work/slow-mock/nginx.conf" -g 'daemon off;' &
slow_mock=$!
"$peer/mock_upstream.sh" "$fast_port" "$work/fast-mock" >/dev/null 2>&1 &
fast_mock=$!
write_config "$work/slow.yaml" slow slow-log \
  "{name: openai, kind: openai, base_url: \"http://127.0.0.1:$fast_port\", api_key_env: BENCH_UPSTREAM_KEY}" \
  "{name: slow, kind: openai, base_url: \"http://127.0.0.1:$slow_port\", api_key_env: BENCH_UPSTREAM_KEY}"
"$collector" --config "$work/slow.yaml" --listen "127.0.0.1:$slow_proxy" --log-level warning 2>"$work/slow-tally.log" &
slow_tally=$!
sleep 3
idle_rss=$(awk '/VmRSS/ {print $2}' "/proc/$slow_tally/status")
python3 scripts/bench/slow_streams.py 127.0.0.1 "$slow_proxy" "$secret" "$calls" > "$work/slow.json" &
driver=$!
sleep 4
# The 1-connection latency of plain calls while the streams run: through the collector, then straight to the mock.
probe() {
  WRK_API_KEY="$secret" wrk -t1 -c1 -d4s --latency -s "$peer/chat.lua" "$1" 2>/dev/null | grep -o '"p50_ms":[0-9.]*,[^}]*"p99_ms":[0-9.]*' |
    sed -E 's/"p50_ms":([0-9.]+).*"p99_ms":([0-9.]+)/\1 \2/'
}
through=$(probe "http://127.0.0.1:$slow_proxy")
direct=$(probe "http://127.0.0.1:$fast_port")
wait "$driver"
# Time to the first event of a stream, calls one at a time, with nothing else running: through the collector, direct,
# and through a plain nginx hop (no buffering) to the same mock, the floor for any proxy on this machine. Each run
# measures the three in turn; the medians of their p50s are reported.
"$peer/nginx_passthrough.sh" "$((PROXY_PORT + 2))" "$fast_port" "$work/ttfb-pass" >/dev/null 2>&1 &
ttfb_pass=$!
sleep 1
for run in $(seq "$runs"); do
  python3 scripts/bench/ttfb.py 127.0.0.1 "$slow_proxy" /v1/chat/completions "$secret" 2000 >> "$work/ttfb-through.jsonl"
  python3 scripts/bench/ttfb.py 127.0.0.1 "$fast_port" /v1/chat/completions "$secret" 2000 >> "$work/ttfb-direct.jsonl"
  python3 scripts/bench/ttfb.py 127.0.0.1 "$((PROXY_PORT + 2))" /v1/chat/completions "$secret" 2000 >> "$work/ttfb-nginx.jsonl"
done
kill "$ttfb_pass" 2>/dev/null || true
# Its peak RSS, as the kernel kept it (VmHWM): no sampling while the calls run.
awk '/VmHWM/ {print $2}' "/proc/$slow_tally/status" > "$work/slow-peak-rss"
kill -TERM "$slow_tally"; wait "$slow_tally" || true
kill "$slow_mock" "$fast_mock" 2>/dev/null || true
logged=$(find "$work/slow-log" -name '*.jsonl*' -exec sh -c 'case "$1" in *.gz) zcat "$1";; *) cat "$1";; esac' _ {} \; |
  grep '"provider":"slow"' | grep '"outcome":"ok"' | grep -c '"output":100' || true)
echo
echo "many slow streams: $(cat "$work/slow.json")"
echo "  logged with the provider's usage: $logged of $calls; collector RSS idle $(( idle_rss / 1024 )) MB, peak $(( $(cat "$work/slow-peak-rss" 2>/dev/null || echo 0) / 1024 )) MB"
read -r t50 t99 <<<"$through"; read -r d50 d99 <<<"$direct"
python3 -c "import sys; t50,t99,d50,d99=map(float,sys.argv[1:]); print(f'  1-connection chat meanwhile: through the collector p50 {t50:.3f} ms p99 {t99:.3f} ms; direct p50 {d50:.3f} ms p99 {d99:.3f} ms; added p50 +{t50-d50:.3f} ms, p99 +{t99-d99:.3f} ms')" "$t50" "$t99" "$d50" "$d99"
python3 - "$work" <<'PY'
import json, statistics, sys
from pathlib import Path
t, d, n = ([json.loads(line) for line in (Path(sys.argv[1]) / f"ttfb-{name}.jsonl").read_text().splitlines()]
           for name in ("through", "direct", "nginx"))
def med(rows, key):
    return statistics.median(r[key] for r in rows)
added = [a["ttfb_p50_ms"] - b["ttfb_p50_ms"] for a, b in zip(t, d)]
added_nginx = [a["ttfb_p50_ms"] - b["ttfb_p50_ms"] for a, b in zip(n, d)]
spread = lambda v: "" if len(v) < 2 else f" ({min(v):+.3f}..{max(v):+.3f})"
print(f"  stream time to first event (2000 calls one at a time, medians of {len(t)} run(s)): through the collector"
      f" p50 {med(t, 'ttfb_p50_ms'):.3f} ms p99 {med(t, 'ttfb_p99_ms'):.3f} ms; direct p50 {med(d, 'ttfb_p50_ms'):.3f} ms"
      f" p99 {med(d, 'ttfb_p99_ms'):.3f} ms; added p50 {statistics.median(added):+.3f} ms{spread(added)}"
      f" ({'met' if statistics.median(added) <= 0.1 else 'MISSED'}: <= 0.1)")
print(f"  the same through a plain nginx hop: p50 {med(n, 'ttfb_p50_ms'):.3f} ms p99 {med(n, 'ttfb_p99_ms'):.3f} ms;"
      f" added p50 {statistics.median(added_nginx):+.3f} ms{spread(added_nginx)}")
PY
