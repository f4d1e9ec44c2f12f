#!/usr/bin/env python3
"""Envelope evidence against the network, on the same windows of real CWRU
recordings, with the real binary: `drsnd classify --json --units g --rpm R
--bearing-orders ...`. Prints the table of docs/monitoring.md ("Envelope
spectrum evidence").

For every recording (IR, OR6 and B at 7, 14 and 21 mils; 0, 1 and 2 hp),
clean and with Gaussian noise at 0 dB SNR (noise power = the recording's
power, a fixed seed per file): the share of envelope windows (one every
8192 samples once 16384 are in) whose `envelope.family` is the recording's
family, and the share of the network's frames over the same span whose
class is of that family. The healthy recording shows how often each names
a fault where there is none. The 28-mil and OR@3/OR@12 recordings, faults
outside the network's classes, are listed apart: the 28-mil faults were
seeded in bearings of another make (NTN), whose defect orders differ from
the SKF orders given, so the envelope is not expected to name them.

Usage: models/.venv/bin/python bench/envelope_eval.py [--drsnd target/release/drsnd]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from anomaly_eval import CWRU, read_wav, write_wav  # noqa: E402

ORDERS = "3.5848,5.4152,2.357,0.39828"
FAMILY = {"IR": "inner", "OR6": "outer", "OR3": "outer", "OR12": "outer", "B": "ball",
          "Normal": "none"}


def net_family(label):
    """The family of one of the network's classes ("IR_14" -> inner)."""
    return FAMILY.get(label.split("_")[0], "none")


def envelope_families(frames):
    """The family of each distinct envelope evaluation in `drsnd classify
    --json` frames (an evaluation repeats on the frames until the next)."""
    windows, last = [], None
    for f in frames:
        e = f.get("envelope")
        if e is not None and e != last:
            windows.append(e["family"])
            last = e
    return windows


def run(exe, path, rpm):
    out = subprocess.run([exe, "classify", "--json", "--units", "g", "--rpm", str(rpm),
                          "--bearing-orders", ORDERS, path],
                         check=True, capture_output=True, text=True).stdout
    frames = [json.loads(l) for l in out.splitlines()]
    span = [net_family(f["label"]) for f in frames if f.get("envelope") is not None]
    return envelope_families(frames), span


def noisy(x, snr_db, seed):
    rng = np.random.default_rng(seed)
    p = float(np.mean((x - x.mean()) ** 2))
    return (x + rng.normal(0, np.sqrt(p / 10 ** (snr_db / 10)), len(x))).astype(np.float32)


def share(v, want):
    return 100.0 * sum(1 for f in v if f == want) / max(1, len(v))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drsnd", default=os.path.join(os.path.dirname(__file__), "..",
                                                     "target", "release", "drsnd"))
    a = ap.parse_args()
    names = sorted(n for n in os.listdir(CWRU) if n.endswith(".wav"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed, name in enumerate(names):
            stem = name[:-4]
            parts = stem.split("_")
            rpm, kind = int(parts[0]), parts[1]
            want = FAMILY[kind]
            x, rate = read_wav(os.path.join(CWRU, name))
            for cond in ["clean", "0 dB"]:
                path = os.path.join(CWRU, name)
                if cond != "clean":
                    path = os.path.join(tmp, f"{stem}_0dB.wav")
                    write_wav(path, noisy(x, 0.0, seed), rate)
                windows, span = run(a.drsnd, path, rpm)
                rows.append({"file": stem, "kind": kind, "size": parts[2] if len(parts) > 2 else "",
                             "cond": cond, "want": want, "windows": len(windows),
                             "env": share(windows, want), "net": share(span, want),
                             "env_counts": {f: windows.count(f) for f in set(windows)}})
                r = rows[-1]
                print(f"{stem:<18} {cond:<5} {r['windows']:>3} windows  envelope {r['env']:5.1f} %"
                      f"  network {r['net']:5.1f} %  {r['env_counts']}", file=sys.stderr)
    print_tables(rows)


def print_tables(rows):
    def group(pred):
        return [r for r in rows if pred(r)]

    print("| recordings | condition | windows | envelope names the family | network's frames of the family |")
    print("|---|---|---|---|---|")
    sets = [("IR 7/14/21", lambda r: r["kind"] == "IR" and r["size"] in ("7", "14", "21")),
            ("OR6 7/14/21", lambda r: r["kind"] == "OR6"),
            ("B 7/14/21", lambda r: r["kind"] == "B" and r["size"] in ("7", "14", "21")),
            ("Normal (names none)", lambda r: r["kind"] == "Normal")]
    for label, pred in sets:
        for cond in ["clean", "0 dB"]:
            g = group(lambda r: pred(r) and r["cond"] == cond)
            n = sum(r["windows"] for r in g)
            env = sum(r["env"] * r["windows"] for r in g) / max(1, n)
            net = np.mean([r["net"] for r in g]) if g else 0.0
            print(f"| {label} | {cond} | {n} | {env:.1f} % | {net:.1f} % |")
    print()
    print("| recording | condition | envelope names the family | network | envelope windows by family |")
    print("|---|---|---|---|---|")
    for r in rows:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r["env_counts"].items()))
        print(f"| {r['file']} | {r['cond']} | {r['env']:.0f} % | {r['net']:.0f} % | {counts} |")


if __name__ == "__main__":
    main()
