"""Summarises a two-variant step of bench/run.sh (PREFIX-R-off.json and
PREFIX-R-on.json): daemon and inference-thread CPU, p99 and
RSS, medians over the alternating rounds, and the added cost per stream
as the median of the rounds' differences.

usage: side_by_side.py RESULTS_DIR PREFIX "what was turned on" """
import json
import statistics
import sys
from pathlib import Path

out, prefix, what = Path(sys.argv[1]), sys.argv[2], sys.argv[3]


def figures(r):
    threads = r["cpu_seconds_by_thread_since_start"]
    wall = r["wall_seconds"]
    return {
        "cpu": r["cpu_percent_of_one_core"],
        "infer": 100 * sum(v for k, v in threads.items() if k.startswith(("stream-", "infer-"))) / wall,
        "p99": r["latency_ms"]["p99"],
        "rss": r.get("peak_rss_kib", 0) / 1024,
        "streams": r["streams"],
    }


runs = {k: [figures(json.loads(p.read_text())) for p in sorted(out.glob(f"{prefix}-*-{k}.json"))]
        for k in ["off", "on"]}
if not runs["off"] or not runs["on"]:
    sys.exit(f"no {prefix}-*-off/on.json in {out}")
n = runs["on"][0]["streams"]
print(f"# Cost of the {what}: {n} real-time streams\n")
print("Medians over alternating rounds; CPU in % of one core.\n")
print("| variant | rounds | daemon CPU % | inference threads % | p99 ms | peak RSS MB |")
print("|---|---:|---:|---:|---:|---:|")
for k in ["off", "on"]:
    m = {f: statistics.median(r[f] for r in runs[k]) for f in ["cpu", "infer", "p99", "rss"]}
    print(f"| {k} | {len(runs[k])} | {m['cpu']:.2f} | {m['infer']:.2f} | {m['p99']:.2f} | {m['rss']:.1f} |")
diffs = [(b["cpu"] - a["cpu"]) / n for a, b in zip(runs["off"], runs["on"])]
print(f"\nAdded per stream, median of the rounds' differences: {statistics.median(diffs):.3f} % of a core "
      f"(rounds: {', '.join(f'{d:+.3f}' for d in diffs)}).")
