"""Summarises bench/run.sh --steps pool: per scenario, the per-stream-thread
daemon (base) against the shared analysis threads waking per frame (frame)
and once per hop (hop). Medians over the rounds, and the median of the
per-round ratios to base (the order rotates each round, so the machine's
drift falls on every variant).

usage: pool.py RESULTS_DIR BASE_REV HEAD_REV"""
import json
import re
import statistics
import sys
from pathlib import Path

SCENARIOS = {
    "aligned16": "16 streams, every stream's frame due at the same instant (one multichannel interface)",
    "staggered16": "16 streams, frames due spread over the hop (separate interfaces)",
    "every16": "16 streams, every analysis on (classifier, denoiser, baseline, physics, envelope)",
    "one": "one stream",
}
VARIANTS = ["base", "frame", "hop"]


def figures(r):
    threads = r["cpu_seconds_by_thread_since_start"]
    wall = r["wall_seconds"]
    return {
        "cpu": r["cpu_percent_of_one_core"],
        "analysis": 100 * sum(v for k, v in threads.items() if k.startswith(("stream-", "infer-"))) / wall,
        "p99": r["latency_ms"]["p99"],
        "rss": r["peak_rss_kib"] / 1024,
        "losses": r["seq_gaps"] + r["daemon_dropped_frames"] + r["daemon_overrun_samples"],
        "streams": r["streams"],
    }


def main():
    out, base_rev, head_rev = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    pat = re.compile(r"^pool-([a-z0-9]+)-(\d+)-([a-z]+)\.json$")
    runs = {}
    for p in sorted(out.iterdir()):
        m = pat.match(p.name)
        if m:
            runs.setdefault(m.group(1), {}).setdefault(int(m.group(2)), {})[m.group(3)] = figures(json.loads(p.read_text()))
    print(f"# Shared analysis threads: {base_rev} (base: a thread per stream) against {head_rev}\n")
    print("`frame`: the pool (one thread per core) woken as soon as a frame is due (the default); "
          "`hop`: woken once per hop. CPU in % of one core for the whole daemon; per stream = CPU / streams. "
          "Ratios are the median of the rounds' head/base ratios.\n")
    for sc, title in SCENARIOS.items():
        rounds = runs.get(sc)
        if not rounds:
            continue
        full = [r for r in rounds.values() if all(v in r for v in VARIANTS)]
        n = full[0]["base"]["streams"]
        print(f"## {title}\n")
        print(f"{len(full)} rounds.\n")
        print("| variant | CPU % | per stream % | analysis threads % | p99 ms | peak RSS MB | losses | CPU / base | p99 - base ms |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for v in VARIANTS:
            med = {f: statistics.median(r[v][f] for r in full) for f in ["cpu", "analysis", "p99", "rss"]}
            losses = sum(r[v]["losses"] for r in full)
            ratio = statistics.median(r[v]["cpu"] / r["base"]["cpu"] for r in full)
            dp99 = statistics.median(r[v]["p99"] - r["base"]["p99"] for r in full)
            print(f"| {v} | {med['cpu']:.2f} | {med['cpu'] / n:.3f} | {med['analysis']:.2f} | {med['p99']:.2f} | "
                  f"{med['rss']:.1f} | {losses} | {ratio:.3f} | {dp99:+.2f} |")
        print()


if __name__ == "__main__":
    main()
