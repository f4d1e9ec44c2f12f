#!/usr/bin/env python3
"""UESTC's shaft speeds and bearing defect orders, measured from its own
recordings (its README gives nominal speeds and no geometry), then the
envelope evidence and the speed of the real binary on every UESTC recording
with those orders. Prints what docs/monitoring.md quotes (UESTC under
"Shaft speed from the signal" and "Envelope spectrum evidence").

1. Speed: each condition's five parts are one continuous recording (59 s,
   0.017 Hz bins). Its shaft speed is the best of a harmonic comb over that
   whole spectrum (six harmonics of the 1x line minus the half-way points,
   on the log spectrum minus its local median), within ±12 % of the nominal.
2. Orders: the squared envelope (band 1-9 kHz, Hilbert) of the same 59 s,
   in orders of that speed, minus the healthy recording's at the same
   nominal speed; the line the fault adds most within where each defect can
   lie for an 8-ball bearing (outer 2.5-3.6, inner 4.4-5.6, ball 1.6-2.6).
   BPFI is the median over speeds; BPFO too (its lines move with the cage's
   slip); d/D from BPFI = n/2 (1 + d/D); BSF and FTF from n and d/D.
3. The binary: `drsnd classify --json` on every part with those orders, the
   nominal rpm set -3, 0 and +3 % off with `--rpm-range` ±12 % around it:
   the envelope windows by family, and the measured speed per part (the
   median of the frames measured from the signal) against the continuous
   recording's, and against the defect line (the order the line sits at,
   at the measured speed, against the rig's order).

Usage: models/.venv/bin/python bench/uestc_orders.py [--drsnd target/release/drsnd]
       [--orders BPFO,BPFI,BSF,FTF] [--span 0.12]
"""
import argparse
import collections
import concurrent.futures
import json
import os
import subprocess
import sys

import numpy as np
from scipy.io import wavfile
from scipy.ndimage import median_filter
from scipy.signal import butter, hilbert, sosfiltfilt

sys.path.insert(0, os.path.dirname(__file__))
from envelope_eval import envelope_families  # noqa: E402

UESTC = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "uestc")
SPEEDS = (800, 1000, 1200, 1400)
RANGES = {"O": (2.5, 3.6), "I": (4.4, 5.6), "B": (1.6, 2.6)}
FAMILY = {"N": "none", "B": "ball", "I": "inner", "O": "outer"}
OFFSETS = (-0.03, 0.0, 0.03)
BALLS = 8
# 10.22 mV per m/s² (README) in mV/g.
SENSITIVITY = 10.22 * 9.80665


def continuous(cond, rpm):
    parts = [wavfile.read(os.path.join(UESTC, f"{cond}_{rpm}_{p}.wav")) for p in range(1, 6)]
    return parts[0][0], np.concatenate([x.astype(np.float64) for _, x in parts])


def flat_log_spectrum(x, rate, rpm):
    """Log power minus its median over ±10 % of the nominal shaft frequency."""
    x = (x - x.mean()) * np.hanning(len(x))
    log = np.log(np.abs(np.fft.rfft(x)) ** 2 + 1e-30)
    df = rate / len(x)
    w = max(4, int(round(0.1 * rpm / 60 / df)))
    return log - median_filter(log, size=2 * w + 1, mode="nearest"), df


def shaft_speed(x, rate, rpm, span=0.12, harmonics=6):
    """The harmonic comb's best speed within ±span of rpm, rev/min."""
    flat, df = flat_log_spectrum(x, rate, rpm)
    hz = np.arange(rpm * (1 - span), rpm * (1 + span), 0.00002 * rpm) / 60
    k = np.arange(1, harmonics + 1)[:, None]
    on = np.interp(k * hz / df, np.arange(len(flat)), flat)
    off = np.interp((k - 0.5) * hz / df, np.arange(len(flat)), flat)
    return float(hz[np.argmax((on - off).mean(0))] * 60)


def envelope_db(x, rate, rpm):
    """(orders of rpm, squared-envelope spectrum in dB over its ±0.5-order median)."""
    sos = butter(4, [1000, 9000], "bandpass", fs=rate, output="sos")
    e = np.abs(hilbert(sosfiltfilt(sos, x))) ** 2
    e -= e.mean()
    db = 10 * np.log10(np.abs(np.fft.rfft(e * np.hanning(len(e)))) ** 2 + 1e-30)
    orders = np.fft.rfftfreq(len(e), 1 / rate) / (rpm / 60)
    w = int(round(0.5 / orders[1]))
    return orders, db - median_filter(db, size=2 * w + 1, mode="nearest")


def measure():
    """{(cond, rpm): speed}, {(cond, rpm): (line order, dB)} for the faults."""
    speeds, lines = {}, {}
    for rpm in SPEEDS:
        rate, x = continuous("N", rpm)
        speeds["N", rpm] = shaft_speed(x, rate, rpm)
        healthy = envelope_db(x, rate, speeds["N", rpm])
        for cond, (lo, hi) in RANGES.items():
            rate, x = continuous(cond, rpm)
            speeds[cond, rpm] = s = shaft_speed(x, rate, rpm)
            orders, db = envelope_db(x, rate, s)
            added = db - np.maximum(np.interp(orders, *healthy), 0.0)
            i = int(np.argmax(np.where((orders > lo) & (orders < hi), added, -np.inf)))
            lines[cond, rpm] = (float(orders[i]), float(db[i]))
    return speeds, lines


def fit(lines):
    """BPFO, BPFI, BSF, FTF for a BALLS-ball bearing from the measured lines."""
    bpfi = float(np.median([lines["I", r][0] for r in SPEEDS]))
    bpfo = float(np.median([lines["O", r][0] for r in SPEEDS]))
    ratio = bpfi / (BALLS / 2) - 1  # d/D cos(contact)
    return bpfo, bpfi, (1 - ratio ** 2) / (2 * ratio), (1 - ratio) / 2


def classify(exe, path, rpm, span, orders):
    out = subprocess.run([exe, "classify", "--json", "--units", "V", "--sensitivity", f"{SENSITIVITY:.1f}",
                          "--rpm", f"{rpm:.1f}", "--rpm-range", f"{rpm * (1 - span):.1f},{rpm * (1 + span):.1f}",
                          "--bearing-orders", orders, path], check=True, capture_output=True, text=True).stdout
    frames = [json.loads(line) for line in out.splitlines()]
    frames = [f for f in frames if f.get("type") == "frame"]
    measured = [f["speed"]["rpm"] for f in frames if (f.get("speed") or {}).get("source") == "signal"]
    return envelope_families(frames), (float(np.median(measured)) if measured else None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drsnd", default="target/release/drsnd")
    ap.add_argument("--orders", help="the orders to evaluate with (default: the estimate, rounded)")
    ap.add_argument("--span", type=float, default=0.12, help="--rpm-range around the nominal rpm, ±")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    speeds, lines = measure()
    print("## Shaft speed of each continuous recording, rev/min (off the nominal)")
    print("| condition | " + " | ".join(f"{s} rpm" for s in SPEEDS) + " |")
    print("|---|" + "---|" * len(SPEEDS))
    for cond in "NIOB":
        print(f"| {FAMILY[cond]} | " + " | ".join(f"{speeds[cond, r]:.1f} ({speeds[cond, r] / r - 1:+.1%})"
                                                 for r in SPEEDS) + " |")
    print("\n## The line each fault adds to the envelope, orders of the measured speed (dB over floor)")
    print("| fault | " + " | ".join(f"{s} rpm" for s in SPEEDS) + " |")
    print("|---|" + "---|" * len(SPEEDS))
    for cond in RANGES:
        print(f"| {FAMILY[cond]} | " + " | ".join(f"{lines[cond, r][0]:.3f} ({lines[cond, r][1]:.0f} dB)"
                                                 for r in SPEEDS) + " |")
    fitted = fit(lines)
    print(f"\nFitted ({BALLS} balls): BPFO {fitted[0]:.4f}, BPFI {fitted[1]:.4f}, BSF {fitted[2]:.4f}, "
          f"FTF {fitted[3]:.4f}; d/D {fitted[1] / (BALLS / 2) - 1:.4f}")
    orders = args.orders or ",".join(f"{o:.3g}" for o in (round(fitted[0], 2), round(fitted[1], 2),
                                                           round(fitted[2], 2), round(fitted[3], 3)))
    rig = dict(zip(("outer", "inner"), map(float, orders.split(",")[:2])))
    jobs = [(c, r, p, o) for c in "NOIB" for r in SPEEDS for p in range(1, 6) for o in OFFSETS]

    def one(job):
        c, r, p, o = job
        return job, classify(args.drsnd, os.path.join(UESTC, f"{c}_{r}_{p}.wav"), r * (1 + o), args.span, orders)

    with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
        results = dict(pool.map(one, jobs))
    print(f"\n## `drsnd classify` with orders {orders}, nominal -3/0/+3 % off, --rpm-range ±{args.span:.0%}")
    print("Envelope windows naming the recording's family (all windows of every part and offset):\n")
    print("| recording | " + " | ".join(f"{s} rpm" for s in SPEEDS) + " |")
    print("|---|" + "---|" * len(SPEEDS))
    for cond in "NOIB":
        cells = []
        for rpm in SPEEDS:
            total = collections.Counter()
            for (c, r, _, _), (fams, _) in results.items():
                if (c, r) == (cond, rpm):
                    total += collections.Counter(fams)
            right = total[FAMILY[cond]] / max(sum(total.values()), 1)
            cells.append(f"{right * 100:.0f} % ({', '.join(f'{k} {v}' for k, v in sorted(total.items()))})")
        print(f"| {FAMILY[cond]} | " + " | ".join(cells) + " |")
    print("\nMeasured speed per part (median of its frames measured from the signal) against the continuous "
          "recording's, and the fault's line against the rig's order at the measured speed:\n")
    near, agree, n, n_line, never = 0, 0, 0, 0, 0
    worst = collections.defaultdict(float)
    for (c, r, p, o), (_, measured) in sorted(results.items()):
        n += 1
        if measured is None:
            never += 1
            continue
        err = measured / speeds[c, r] - 1
        near += abs(err) <= 0.005
        if abs(err) > 0.005:
            print(f"- {c}_{r}_{p} at {o:+.0%}: {measured:.1f} rpm, {err:+.2%} off {speeds[c, r]:.1f}")
        if c in ("I", "O"):
            family = FAMILY[c]
            # Where the line sits, in orders of this part's measured speed.
            line_hz = lines[c, r][0] * speeds[c, r] / 60
            off = line_hz / (rig[family] * measured / 60) - 1
            n_line += 1
            agree += abs(off) <= 0.005
            worst[family, r] = max(worst[family, r], abs(off))
    print(f"\nMeasured within 0.5 % of the continuous recording's speed: {near} of {n - never} part runs "
          f"measured ({never} of {n} never measured: parts shorter than the speed's window).")
    print(f"Defect line within 0.5 % of the rig's order at the measured speed: {agree} of {n_line} "
          "inner and outer part runs; largest miss per speed: "
          + ", ".join(f"{f} {r} {v:.2%}" for (f, r), v in sorted(worst.items())))


if __name__ == "__main__":
    main()
