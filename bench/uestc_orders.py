#!/usr/bin/env python3
"""UESTC's bearing defect orders, estimated from its own fault recordings
(its README publishes no geometry), then the envelope evidence of the real
binary on every UESTC recording with those orders. Prints what
docs/monitoring.md ("Envelope spectrum evidence", UESTC) quotes.

Estimate: each fault recording's squared envelope (band 1-9 kHz, Hilbert)
over the whole of `_1` (13 s, 0.08 Hz bins), in orders of the nominal speed;
the strongest line away from shaft harmonics in the range where that defect
can lie (outer 1.5-6, inner 3-9, ball 0.2-6 orders).

Usage: models/.venv/bin/python bench/uestc_orders.py [--drsnd target/release/drsnd]
       [--orders BPFO,BPFI,BSF,FTF]
"""
import argparse
import collections
import json
import os
import subprocess
import sys

import numpy as np
from scipy.io import wavfile
from scipy.signal import butter, hilbert, sosfiltfilt

sys.path.insert(0, os.path.dirname(__file__))
from envelope_eval import envelope_families  # noqa: E402

UESTC = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "uestc")
SPEEDS = (800, 1000, 1200, 1400)
RANGES = {"O": (1.5, 6.0), "I": (3.0, 9.0), "B": (0.2, 6.0)}
FAMILY = {"N": "none", "B": "ball", "I": "inner", "O": "outer"}
# 10.22 mV per m/s² (README) in mV/g.
SENSITIVITY = 10.22 * 9.80665


def strongest_orders(path, rpm, lo, hi, n=3):
    """The n strongest envelope lines in lo..hi orders, with their dB over
    the range's median."""
    rate, x = wavfile.read(path)
    sos = butter(4, [1000, 9000], "bandpass", fs=rate, output="sos")
    e = np.abs(hilbert(sosfiltfilt(sos, x.astype(np.float64))))
    e -= e.mean()
    power = np.abs(np.fft.rfft(e * np.hanning(len(e)))) ** 2
    orders = np.fft.rfftfreq(len(e), 1 / rate) / (rpm / 60)
    keep = (orders > lo) & (orders < hi) & (np.abs(orders - np.round(orders)) > 0.08)
    o, p = orders[keep], power[keep]
    top = np.argsort(p)[::-1][:n]
    return [(float(o[i]), float(10 * np.log10(p[i] / np.median(p)))) for i in top]


def envelope_windows(exe, path, rpm, orders, measure=False):
    """The family of each distinct envelope evaluation of `drsnd classify`,
    at the nominal speed (pinned) or, with `measure`, at the measured one."""
    pin = [] if measure else ["--rpm-range", f"{rpm},{rpm}"]
    out = subprocess.run([exe, "classify", "--json", "--units", "V", "--sensitivity",
                          f"{SENSITIVITY:.1f}", "--rpm", str(rpm), *pin, "--bearing-orders", orders, path],
                         check=True, capture_output=True, text=True).stdout
    return collections.Counter(envelope_families(json.loads(line) for line in out.splitlines()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drsnd", default="target/release/drsnd")
    ap.add_argument("--orders", default="3.16,4.84,2.2,0.40",
                    help="the orders to evaluate with (default: the estimate below, rounded)")
    ap.add_argument("--measure-speed", action="store_true",
                    help="place the lines at the speed measured from the signal, not the nominal one")
    args = ap.parse_args()
    print("## Strongest envelope lines of each fault recording (`_1`), orders of the nominal speed")
    print("| fault | " + " | ".join(f"{s} rpm" for s in SPEEDS) + " |")
    print("|---|" + "---|" * len(SPEEDS))
    for cond, (lo, hi) in RANGES.items():
        cells = []
        for rpm in SPEEDS:
            lines = strongest_orders(os.path.join(UESTC, f"{cond}_{rpm}_1.wav"), rpm, lo, hi)
            cells.append(", ".join(f"{o:.3f} ({db:.0f} dB)" for o, db in lines))
        print(f"| {FAMILY[cond]} | " + " | ".join(cells) + " |")
    print(f"\n## Envelope windows by family, `drsnd classify` with orders {args.orders}, every part")
    print("| recording | " + " | ".join(f"{s} rpm" for s in SPEEDS) + " |")
    print("|---|" + "---|" * len(SPEEDS))
    for cond in "NOIB":
        cells = []
        for rpm in SPEEDS:
            total = collections.Counter()
            for part in range(1, 6):
                path = os.path.join(UESTC, f"{cond}_{rpm}_{part}.wav")
                total += envelope_windows(args.drsnd, path, rpm, args.orders, args.measure_speed)
            right = total[FAMILY[cond]] / max(sum(total.values()), 1)
            cells.append(f"{right * 100:.0f} % ({', '.join(f'{k} {v}' for k, v in sorted(total.items()))})")
        print(f"| {FAMILY[cond]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
