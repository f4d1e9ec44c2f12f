"""Summarises bench/run.sh --steps http: the daemon's CPU by thread, the
socket subscribers' p99 and what the pages received, for [http] off, on
with no page, and on with 20 pages, medians over the alternating rounds."""
import json
import statistics
import sys
from pathlib import Path

out = Path(sys.argv[1])
variants = [("off", "[http] off"), ("idle", "[http] on, no page"), ("pages", "[http] on, 20 pages (focused on one stream)")]


def figures(r):
    threads = r["cpu_seconds_by_thread_since_start"]
    infer = sum(v for k, v in threads.items() if k.startswith(("stream-", "infer-")))
    wall = r["wall_seconds"]
    return {
        "cpu": r["cpu_percent_of_one_core"],
        "infer": 100 * infer / wall,
        "runtime": 100 * threads.get("drsnd", 0.0) / wall,
        "http": 100 * threads.get("http", 0.0) / wall,
        "p99": r["latency_ms"]["p99"],
        "complete": r["subscribers_with_every_frame"],
        "pages": r.get("page_messages", 0),
        "page_kb": r.get("page_bytes", 0) / 1024,
        "losses": r["seq_gaps"] + r["daemon_dropped_frames"] + r["daemon_overrun_samples"],
    }


print("# The HTTP sink's cost: 16 real-time streams, 100 socket subscribers\n")
print("Medians over alternating rounds. Thread CPU is % of one core over the whole run (start-up included);")
print("`http` is the sink's own thread, `drsnd` the runtime thread that serves the socket.\n")
print("| variant | daemon CPU % | inference threads % | socket runtime % | http thread % | subscribers' p99 ms | subscribers with every frame | page messages | page KiB | losses |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for key, name in variants:
    runs = [figures(json.loads(p.read_text())) for p in sorted(out.glob(f"http-*-{key}.json"))]
    if not runs:
        continue
    m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"| {name} | {m['cpu']:.1f} | {m['infer']:.1f} | {m['runtime']:.1f} | {m['http']:.2f} | {m['p99']:.2f} | "
          f"{m['complete']:.0f} / 100 | {m['pages']:.0f} | {m['page_kb']:.0f} | {m['losses']:.0f} |")
