"""The collector's overhead figures over several bench runs: medians, their spread, and the issue's targets.

    python3 overhead_summary.py WORK_DIR

Reads WORK_DIR/results-RUN-tally/results.json and WORK_DIR/results-RUN-nginx/results.json, as bench-collector.sh
writes them (the peer harness's rows: target, scenario, connections, rps, p50_ms, p99_ms, server_cpu_us_per_req).
Every "added" latency is a target's p50 or p99 minus direct's in the same harness run, and every ratio is taken within
one run before the median is taken, so that a slow minute moves a figure and its reference together.
"""
import json
import re
import statistics
import sys
from pathlib import Path

work = Path(sys.argv[1])
rows = []
for results in sorted(work.glob("results-*/results.json")):
    match = re.fullmatch(r"results-(\d+)-(\w+)", results.parent.name)
    if match:
        rows += [dict(r, run=int(match.group(1)), harness=results.parent.name) for r in json.loads(results.read_text())]
if not rows:
    sys.exit("bench: no results to summarise")
runs = sorted({r["run"] for r in rows})


def find(harness, target, scenario, connections):
    return next((r for r in rows if r["harness"] == harness and r["target"] == target
                 and r["scenario"] == scenario and r["connections"] == connections), None)


def added(r):
    """p50 and p99 over direct's in the same harness run."""
    direct = find(r["harness"], "direct", r["scenario"], r["connections"])
    return (r["p50_ms"] - direct["p50_ms"], r["p99_ms"] - direct["p99_ms"]) if direct else (None, None)


def spread(values, fmt):
    """The median, and the range when there is more than one value."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    median = fmt.format(statistics.median(values))
    return median if len(values) == 1 else f"{median} ({fmt.format(min(values))}..{fmt.format(max(values))})"


def per_run(target, scenario, connections, figure):
    """`figure(row)` for each run that measured `target`."""
    values = []
    for run in runs:
        harness = f"results-{run}-nginx" if target == "nginx-pass" else f"results-{run}-tally"
        r = find(harness, target, scenario, connections)
        if r is not None:
            values.append(figure(r))
    return values


def over_nginx(scenario, connections, key):
    """The collector's `key` over the nginx hop's, run by run (each pair from the same run)."""
    ratios = []
    for run in runs:
        t = find(f"results-{run}-tally", "tally", scenario, connections)
        n = find(f"results-{run}-nginx", "nginx-pass", scenario, connections)
        # Only the divisor must be non-zero: a collector that did nothing is a ratio of 0, not a missing run.
        if t and n and t.get(key) is not None and n[key]:
            ratios.append(t[key] / n[key])
    return ratios


cases = sorted({(r["scenario"], r["connections"]) for r in rows if r["target"] == "tally"})
print(f"\nmedians over {len(runs)} run(s), range in brackets; added = p50/p99 minus direct in the same harness run;"
      " CPU = the proxy's own processes per call")
for scenario, connections in cases:
    print(f"\n{scenario}, {connections} connection(s)")
    for target in ("direct", "tally", "nginx-pass", "litellm"):
        rps = per_run(target, scenario, connections, lambda r: r["rps"])
        if not rps:
            continue
        line = f"  {target:10s} req/s {spread(rps, '{:.0f}'):>24s}"
        if target != "direct":
            cpu = per_run(target, scenario, connections, lambda r: r["server_cpu_us_per_req"])
            a50 = per_run(target, scenario, connections, lambda r: added(r)[0])
            a99 = per_run(target, scenario, connections, lambda r: added(r)[1])
            line += (f"   CPU us/call {spread(cpu, '{:.0f}'):>18s}   added p50 ms {spread(a50, '{:+.3f}'):>26s}"
                     f"   p99 {spread(a99, '{:+.3f}')}")
        print(line)
    ratios = over_nginx(scenario, connections, "rps")
    if ratios:
        print(f"  tally / nginx-pass req/s, run by run: {spread(ratios, '{:.2f}')}")
    # A slow host slows nginx too, so the collector's CPU over nginx's in the same run cancels part of what it does.
    cpu_ratios = over_nginx(scenario, connections, "server_cpu_us_per_req")
    if cpu_ratios:
        print(f"  tally / nginx-pass CPU per call, run by run: {spread(cpu_ratios, '{:.2f}')}")


def median_of(target, scenario, connections, figure):
    values = [v for v in per_run(target, scenario, connections, figure) if v is not None]
    return statistics.median(values) if values else None


def check(label, value, limit, fmt, at_least=False):
    if value is None:
        print(f"  {label}: not measured")
        return
    met = value >= limit if at_least else value <= limit
    print(f"  {label}: {fmt.format(value)} ({'>=' if at_least else '<='} {fmt.format(limit)}) {'met' if met else 'MISSED'}")


print("\ntargets (issue 18), on the medians:")
check("chat, 16 connections, req/s", median_of("tally", "chat", 16, lambda r: r["rps"]), 10000, "{:.0f}", at_least=True)
check("chat, 16 connections, CPU us/call", median_of("tally", "chat", 16, lambda r: r["server_cpu_us_per_req"]), 120,
      "{:.0f}")
check("chat, 1 connection, added p50 ms", median_of("tally", "chat", 1, lambda r: added(r)[0]), 0.10, "{:.3f}")
check("chat, 1 connection, added p99 ms", median_of("tally", "chat", 1, lambda r: added(r)[1]), 0.5, "{:.3f}")
stream_ratios = over_nginx("stream", 16, "rps")
check("stream, 16 connections, req/s over nginx-pass", statistics.median(stream_ratios) if stream_ratios else None, 0.5,
      "{:.2f}", at_least=True)
