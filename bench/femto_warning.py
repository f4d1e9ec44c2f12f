#!/usr/bin/env python3
"""Early warning on the six FEMTO run-to-failure bearings (issue 35, acceptance 1).

For each bearing, as a user would set drsnd up on a new machine:
  1. learn its baseline from its first 30 minutes of life
     (`drsnd baseline learn --units g`, the first 180 snapshots);
  2. `drsnd history import --times <bearing>.snapshots.csv` the whole
     recording through the daemon's own pipeline, which stores its 10 s rows
     and replays the trend watcher every `trend-interval-s` (300 s);
  3. take the first `degrading` event that stays (no `steady` after it).
Lead time = the bearing's running time from that event to its failure (the
end of its last snapshot), 10 s per snapshot: Bearing1_1's rig stood still
for 18 hours in the middle of its life, which is no warning time.

Beside it, the rule engineers use by default: the snapshot RMS above the mean
+ 3 standard deviations of the first 30 minutes, held for a minute (six
snapshots in a row); its lead is counted from the first of those six, which
reproduces the issue's figures (154, 8, 105, 94, 4, 5).

Nothing is tuned per bearing. Writes bench/results/femto_warning.json and the
table between the `femto-warning` markers of docs/monitoring.md.

  bench/femto_warning.py [--drsnd target/release/drsnd] [--femto ../shared/femto]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.io import wavfile

ROOT = Path(__file__).resolve().parent.parent
BEARINGS = ["Bearing1_1", "Bearing1_2", "Bearing2_1", "Bearing2_2", "Bearing3_1", "Bearing3_2"]
SNAP = 2560  # samples per snapshot (0.1 s at 25.6 kHz), one every 10 s
FIRST_30_MIN = 180  # snapshots
HOLD = 6  # snapshots: a minute
BEGIN, END = "<!-- femto-warning:begin -->", "<!-- femto-warning:end -->"


def snapshot_times(csv: Path, day: float) -> np.ndarray:
    """Unix seconds of each snapshot (time of day on `day`, wrapping past midnight)."""
    rows = csv.read_text().splitlines()
    col = rows[0].split(",").index("time_of_day_s")
    tod = np.array([float(r.split(",")[col]) for r in rows[1:] if r.strip()])
    wraps = np.concatenate([[0], np.cumsum(np.diff(tod) < 0)])
    return day + tod + 86400.0 * wraps


def operating_min(t: np.ndarray, at: float) -> float:
    """Minutes of the bearing's running from time `at` to its failure: 10 s per
    snapshot from the first one taken at or after `at` to the end of the last
    (Bearing1_1's rig stood still for 18 hours; that is not warning time)."""
    i = int(np.searchsorted(t, at - 1e-6))
    return (len(t) - i) * 10.0 / 60.0


def rms_rule(x: np.ndarray, t: np.ndarray) -> float | None:
    """Minutes of warning of the mean + 3 sd RMS rule, None if it never fires:
    counted from the first snapshot of the minute it held, as the issue did."""
    n = len(x) // SNAP
    rms = np.sqrt((x[: n * SNAP].reshape(n, SNAP).astype(np.float64) ** 2).mean(axis=1))
    ref = rms[:FIRST_30_MIN]
    above = rms > ref.mean() + 3 * ref.std()
    run = 0
    for i in range(FIRST_30_MIN, n):
        run = run + 1 if above[i] else 0
        if run == HOLD:
            return operating_min(t[:n], t[i - HOLD + 1])
    return None


def run(cmd: list) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: exit {out.returncode}\n{out.stderr}")
    return out


def drsnd_lead(drsnd: Path, work: Path, bearing: str, femto: Path, day: float) -> dict:
    wav = femto / f"{bearing}.wav"
    rate, x = wavfile.read(wav)
    state = work / "state"
    state.mkdir(exist_ok=True)
    first = work / f"{bearing}.first30.wav"
    wavfile.write(first, rate, x[: FIRST_30_MIN * SNAP].astype(np.float32))
    model = ROOT / "models" / "drsn-cw-cwru10.json"
    run(
        [str(drsnd), "baseline", "learn", "--model", str(model), "--units", "g",
         "--out", str(state / f"{bearing}.baseline.json"), str(first)])
    cfg = work / f"{bearing}.toml"
    cfg.write_text(
        f'model = "{model}"\n[monitor]\nstate-dir = "{state}"\n'
        f'[history]\npath = "{work / "history.sqlite"}"\n'
        f'[[source]]\nkind = "wav"\npath = "{wav}"\nstreams = ["{bearing}"]\n'
        'units = "g"\n')  # no rpm: the rig's bearing geometry is not given
    out = run(
        [str(drsnd), "history", "import", "--config", str(cfg), "--stream", bearing,
         "--times", str(femto / f"{bearing}.snapshots.csv"), "--day", str(int(day)), str(wav)])
    events = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    t = snapshot_times(femto / f"{bearing}.snapshots.csv", day)
    warned = None
    for e in events:
        if e["to"]["state"] == "degrading" and warned is None:
            warned = e
        elif e["to"]["state"] == "steady":
            warned = None
    lead = None if warned is None else operating_min(t, warned["time"])
    return {
        "bearing": bearing,
        "life_h": len(t) * 10.0 / 3600.0,
        "events": len(events),
        "drsnd_min": lead,
        "eta_h": None if warned is None else warned["evidence"]["trend"]["eta_h"],
        "rms_rule_min": rms_rule(x, t),
    }


def write_between(doc: Path, begin: str, end: str, body: str) -> None:
    """Puts `body` between the marker lines `begin` and `end` of `doc`."""
    text = doc.read_text()
    if begin not in text or end not in text:
        sys.exit(f"{doc}: no {begin} ... {end} markers")
    pre, rest = text.split(begin, 1)
    _, post = rest.split(end, 1)
    doc.write_text(f"{pre}{begin}\n{body}\n{end}{post}")


def fmt(v, digits=0):
    return "never" if v is None else f"{v:.{digits}f}"


def table(results: list) -> str:
    head = "| | " + " | ".join(r["bearing"] for r in results) + " |"
    lines = [head, "|---" * (len(results) + 1) + "|"]
    lines.append("| life (h) | " + " | ".join(fmt(r["life_h"], 1) for r in results) + " |")
    lines.append("| drsnd `degrading`, min before failure | "
                 + " | ".join(fmt(r["drsnd_min"]) for r in results) + " |")
    lines.append("| its time-to-alarm estimate then (h) | "
                 + " | ".join(fmt(r["eta_h"], 1) for r in results) + " |")
    lines.append("| RMS > mean + 3 sd held 1 min, min before failure | "
                 + " | ".join(fmt(r["rms_rule_min"]) for r in results) + " |")
    ours = [r["drsnd_min"] or 0 for r in results]
    rule = [r["rms_rule_min"] or 0 for r in results]
    longer = sum(o > r for o, r in zip(ours, rule))
    lines.append("")
    lines.append(f"Shortest warning: drsnd {min(ours):.0f} min, the RMS rule {min(rule):.0f} min; "
                 f"drsnd warns longer on {longer} of {len(results)} bearings. "
                 f"Generated by `bench/femto_warning.py`.")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drsnd", default=str(ROOT / "target" / "release" / "drsnd"))
    ap.add_argument("--femto", default=str(ROOT.parent / "shared" / "femto"))
    ap.add_argument("--doc", default=str(ROOT / "docs" / "monitoring.md"))
    a = ap.parse_args()
    # Two days ago at midnight UTC: inside the 10 s tier's 14 days.
    import time
    day = (time.time() // 86400 - 2) * 86400
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for b in BEARINGS:
            r = drsnd_lead(Path(a.drsnd), Path(tmp), b, Path(a.femto), day)
            print(json.dumps(r), flush=True)
            results.append(r)
    out = ROOT / "bench" / "results" / "femto_warning.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    write_between(Path(a.doc), BEGIN, END, table(results))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
