"""Summarises bench/run.sh --compare: per round, the base revision's drsnd
and this tree's, side by side; medians over the rounds and the median of the
per-round ratios (the rounds alternate, so the machine's drift falls on both
alike).

usage: compare.py BASE_REV HEAD_REV RESULTS_DIR [PREFIX [TITLE]]
(PREFIX-R-base.json and PREFIX-R-head.json; default "compare", one stream)"""
import json
import re
import statistics
import sys
from pathlib import Path


def load(out: Path, prefix: str, which: str):
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)-{which}\.json$")
    rounds = sorted((int(m.group(1)), p) for p in out.iterdir() if (m := pattern.match(p.name)))
    return [json.loads(p.read_text()) for _, p in rounds]


def figures(r):
    return (r["cpu_percent_of_one_core"], r["latency_ms"]["p99"], r["peak_rss_kib"] / 1024,
            r["seq_gaps"] + r["daemon_dropped_frames"] + r["daemon_overrun_samples"])


def main():
    base_rev, head_rev, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    prefix = sys.argv[4] if len(sys.argv) > 4 else "compare"
    title = sys.argv[5] if len(sys.argv) > 5 else "One real-time stream, 1797_IR_14.wav at 12 kHz"
    base, head = load(out, prefix, "base"), load(out, prefix, "head")
    print(f"# {title}: {base_rev} (base) against {head_rev} (head)\n")
    print(f"{len(base)} alternating rounds of {base[0]['seconds']:.0f} s each, {base[0]['streams']} stream(s).\n")
    print("| round | CPU % base | CPU % head | p99 ms base | p99 ms head | RSS MB base | RSS MB head | losses base/head | snapshots base/head |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|---|")
    ratios = {"cpu": [], "p99": [], "rss": []}
    for i, (b, h) in enumerate(zip(base, head), 1):
        fb, fh = figures(b), figures(h)
        snaps = f"{b.get('snapshots_written', 0)}/{h.get('snapshots_written', 0)}"
        print(f"| {i} | {fb[0]:.2f} | {fh[0]:.2f} | {fb[1]:.3f} | {fh[1]:.3f} | {fb[2]:.1f} | {fh[2]:.1f} | {fb[3]}/{fh[3]} | {snaps} |")
        ratios["cpu"].append(fh[0] / fb[0])
        ratios["p99"].append(fh[1] / fb[1])
        ratios["rss"].append(fh[2] / fb[2])
    med = lambda xs: statistics.median(xs)
    print()
    print("| figure | base (median) | head (median) | head/base, median of rounds | range of round ratios |")
    print("|---|---:|---:|---:|---|")
    for k, name, j, fmt in [("cpu", "CPU % of one core", 0, "{:.2f}"), ("p99", "p99 latency ms", 1, "{:.3f}"),
                            ("rss", "peak RSS MB", 2, "{:.1f}")]:
        bm = med([figures(r)[j] for r in base])
        hm = med([figures(r)[j] for r in head])
        rr = ratios[k]
        print(f"| {name} | {fmt.format(bm)} | {fmt.format(hm)} | {med(rr):.3f} | {min(rr):.3f} - {max(rr):.3f} |")


main()
