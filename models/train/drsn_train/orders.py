"""An experiment for issue 14, not the shipped recipe: does resampling every
recording to a fixed number of samples per shaft revolution (order domain)
help the family head judge faults and rigs it never saw?

Both rigs publish their shaft speed per recording (CWRU 1750-1797 rpm,
UESTC 800-1400 rpm), so a recording at `rpm` is resampled from its own rate
to rpm / 60 x `samples_per_rev` Hz. At 400 samples per revolution CWRU
stays near 12 kHz (11 667-11 980 Hz) while UESTC goes to 5 333-9 333 Hz:
a defect's impacts then sit the same number of samples apart at every
speed, but a resonance fixed in Hz moves. `--envelope` first demodulates
(high-pass at 1 kHz, Hilbert magnitude) at the recording's own rate, so
that the resonance drops out and only the impacts' timing is left.

Everything else is `table`'s protocol and recipe (1500 steps, family +
fine loss, stretch and tilt, noise added to the frames the network sees).
With `--envelope` that noise is added after demodulation, so its noisy
figures are not comparable; read its clean ones only.

    python -m drsn_train orders --samples-per-rev 400 --protocols cwru-only,loso-28 --seeds 0,1,2

prints one line per run; the figures in models/README.md ("Order domain")
came from it.
"""
from __future__ import annotations

import os
import time
from fractions import Fraction
from multiprocessing import get_context

import numpy as np
import torch
from scipy.signal import butter, hilbert, resample_poly, sosfiltfilt

from . import data, fit, table


def demodulate(x: np.ndarray, rate: int) -> np.ndarray:
    """The envelope of everything above 1 kHz, its mean removed."""
    sos = butter(4, 1000.0, "highpass", fs=rate, output="sos")
    e = np.abs(hilbert(sosfiltfilt(sos, x.astype(np.float64))))
    return (e - e.mean()).astype(np.float32)


def to_orders(path: str, rpm: int, samples_per_rev: int, envelope: bool) -> np.ndarray:
    """The recording at `path` resampled to `samples_per_rev` per revolution."""
    rate, x = data.read_wav(path)
    if envelope:
        x = demodulate(x, rate)
    ratio = Fraction(rpm / 60.0 * samples_per_rev / rate).limit_denominator(500)
    return resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)


def load(cwru_dir: str, uestc_dir: str, samples_per_rev: int, envelope: bool):
    """Both rigs as `table` loads them, each recording re-cut 80/20 in the
    order domain."""
    cwru = data.load_cwru(cwru_dir, everything=True)
    uestc = data.load_uestc(uestc_dir)
    for root, recs in ((cwru_dir, cwru), (uestc_dir, uestc)):
        for r in recs:
            x = to_orders(os.path.join(root, r.name), r.rpm, samples_per_rev, envelope)
            cut = int(len(x) * data.TRAIN_FRACTION)
            r.train, r.test = x[:cut], x[cut:]
    return cwru, uestc


def run_job(job: tuple) -> str:
    protocol, seed, args = job
    torch.set_num_threads(1)
    cwru, uestc = load(args.data, args.uestc, args.samples_per_rev, args.envelope)
    train_recs, tests = table.split_for(protocol, cwru, uestc)
    net, seconds = fit.train("drsn-cw", train_recs, seed, args.steps)
    parts = []
    for name, recs, whole, hop in tests:
        x, y, f = data.test_frames(recs, hop=hop, whole=whole, families=True)
        fam = fit.evaluate(net, x, y, f, seed=seed, snrs=(-4,))["family"]
        worst = min(fam["noisy"][k][-4]["family"] for k in fam["noisy"])
        called = fam["clean"]["called_normal"]
        parts.append(f"{name}: family clean {fam['clean']['family'] * 100:.1f} %, called normal "
                     f"{'-' if called is None else f'{called * 100:.1f} %'}, worst -4 dB {worst * 100:.1f} %")
    return (f"[{time.strftime('%H:%M:%S')}] {protocol} seed {seed}, {args.samples_per_rev} samples/rev"
            f"{', envelope' if args.envelope else ''}: {'; '.join(parts)} ({seconds:.0f} s)")


def cmd_orders(args) -> None:
    protocols = args.protocols.split(",")
    unknown = [p for p in protocols if p not in table.PROTOCOLS]
    if unknown:
        raise SystemExit(f"--protocols: unknown {unknown}; known: {table.PROTOCOLS}")
    jobs = [(p, int(s), args) for p in protocols for s in args.seeds.split(",")]
    with get_context("spawn").Pool(args.workers) as pool:
        for line in pool.imap_unordered(run_job, jobs):
            print(line, flush=True)
