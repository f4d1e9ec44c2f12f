#!/usr/bin/env python3
"""What the envelope loses by running at the model rate (12 kHz, so bands
up to 6 kHz) on the rigs recorded faster: UESTC (20 kHz) and FEMTO
(25.6 kHz). A bearing's impacts ring the structure's resonances; where the
most impulsive one lies above 6 kHz, the envelope cannot use it.

Spectral kurtosis per 78-125 Hz bin (256-point STFT at the recording's own
rate, hop 64; 200 Hz up to 100 Hz below Nyquist): per UESTC fault
recording, and over the first and last 50 snapshots of each FEMTO bearing
(new, and just before failure). Prints the largest kurtosis below and
above 6 kHz and counts where the one above is larger.

    models/.venv/bin/python bench/envelope_band.py [--data ../shared]
"""
import argparse
import glob
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from anomaly_eval import read_wav  # noqa: E402

NFFT = 256
EDGE_HZ = 6000.0  # half the model rate
FEMTO_SNAPSHOT = 2560  # samples per 0.1 s snapshot (the data set's README)


def kurtosis(frames: list[np.ndarray], rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(bin frequencies, spectral kurtosis) over all STFT frames of `frames`."""
    hop = NFFT // 4
    power = []
    for x in frames:
        starts = np.arange((len(x) - NFFT) // hop)[:, None] * hop
        power.append(np.abs(np.fft.rfft(x[starts + np.arange(NFFT)] * np.hanning(NFFT), axis=1)) ** 2)
    p = np.concatenate(power)
    k = (p ** 2).mean(0) / (p.mean(0) ** 2 + 1e-30) - 2  # 0 for Gaussian noise
    f = np.fft.rfftfreq(NFFT, 1 / rate)
    keep = (f > 200) & (f < rate / 2 - 100)  # DC and Nyquist bins are real-valued
    return f[keep], k[keep]


def line(name: str, frames: list[np.ndarray], rate: int) -> bool:
    f, k = kurtosis(frames, rate)
    below, above = k[f < EDGE_HZ].max(), k[f >= EDGE_HZ].max()
    print(f"| {name} | {below:.2f} | {above:.2f} | {f[np.argmax(k)]:.0f} |")
    return above > below


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    a = ap.parse_args()
    head = "| recording | largest SK below 6 kHz | above | at (Hz) |\n|---|---:|---:|---:|"
    print(f"UESTC fault recordings\n\n{head}")
    paths = sorted(glob.glob(os.path.join(a.data, "uestc", "[BIO]_*.wav")))
    if not paths:
        sys.exit(f"{a.data}/uestc: no fault recordings")
    hits = sum(line(os.path.basename(p)[:-4], [np.asarray(read_wav(p)[0], np.float64)], read_wav(p)[1])
               for p in paths)
    print(f"\nUESTC: the most impulsive band is above 6 kHz on {hits} of {len(paths)} recordings\n")
    print(f"FEMTO, first and last 50 snapshots\n\n{head}")
    ends = {"first": 0, "last": 0}
    for p in sorted(glob.glob(os.path.join(a.data, "femto", "*.wav"))):
        x, rate = read_wav(p)
        snaps = np.asarray(x, np.float64)[: len(x) // FEMTO_SNAPSHOT * FEMTO_SNAPSHOT].reshape(-1, FEMTO_SNAPSHOT)
        for end, part in (("first", snaps[:50]), ("last", snaps[-50:])):
            ends[end] += line(f"{os.path.basename(p)[:-4]} {end}", list(part), rate)
    print(f"\nFEMTO: above 6 kHz for {ends['first']} of 6 bearings new, {ends['last']} of 6 before failure")


if __name__ == "__main__":
    main()
