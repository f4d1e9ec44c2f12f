"""`smoke`: a tiny classifier and denoiser trained on a slice of the data,
exported and checked in onnxruntime, in about a minute: for CI."""
from __future__ import annotations

import sys
import tempfile

import numpy as np
import torch

from . import checks, data, denoise_export, denoise_fit, denoise_table, export, fit, ship


def cmd_smoke(args) -> None:
    """A tiny model on a slice of the data, exported and checked: for CI."""
    torch.set_num_threads(args.threads)
    recs = [r for r in data.load_cwru(args.data) if r.load == 0]
    recs += [r for r in data.load_uestc(args.uestc) if r.rpm == 800 and r.name.endswith("_1.wav")]
    net, _ = fit.train("drsn-cw", recs, seed=0, steps=args.steps, batch=16)
    x, y, f = data.test_frames([r for r in recs if r.rig == "cwru"], hop=2048, families=True)
    acc = fit.evaluate(net, x[:64], y[:64], f[:64], snrs=(0,))["clean"]
    with tempfile.TemporaryDirectory() as d:
        _, worst = ship.export_checked(export, net, d, "smoke")
        layout = net.threshold_layout()
        if len(layout) != 6 or any(c <= 0 for c in layout):
            sys.exit(f"smoke: unexpected threshold layout {layout}")
    print(f"smoke: {args.steps} steps, clean accuracy on 64 frames {acc:.3f}, "
          f"onnxruntime vs PyTorch max |diff| {worst:.2e} (<= {export.PARITY_TOLERANCE})")
    # The denoiser's recipe too (its gates, the plant's noise): a few steps,
    # exported and checked.
    parts = [[r.train for r in recs if r.rig == "cwru"]]
    kinds, span = denoise_table.NOISE_MIX["plant"]
    den, _ = denoise_fit.train("drsn", parts, seed=0, steps=args.steps, channels=8, units=2, batch=8,
                               floor=True, dc=True, snr_head=True, features="taus", kinds=kinds, span=span)
    check_head_refit(den, parts, kinds, span)
    with tempfile.TemporaryDirectory() as d:
        _, worst = ship.export_checked(denoise_export, den, d, "smoke-denoise")
    y = denoise_fit.denoise_signal(den, recs[0].test[:5000])
    if y.shape != (5000,) or not np.isfinite(y).all():
        sys.exit(f"smoke: the denoiser's overlap-add gave {y.shape}, finite {np.isfinite(y).all()}")
    print(f"smoke: denoiser {args.steps} steps, onnxruntime vs PyTorch max relative diff {worst:.2e}")
    checks.run_all()


def check_head_refit(den, parts, kinds, span) -> None:
    """The SNR head refitted on the body (a small pool): on fresh frames it
    must read the SNR better than the head trained beside the body, and
    no worse than the best constant guess (a 20-step body says little)."""
    z, t = denoise_fit.head_pool(den, denoise_fit.CleanSampler(parts, 7), np.random.default_rng(8), 1024,
                                 kinds, span)

    def error() -> float:
        with torch.no_grad():
            return float((den.snr.predict(z)[:, 0] - t).abs().median())

    before = error()
    small = {"frames": 2048, "steps": 300, "batch": 128, "lr": 3e-3}
    denoise_fit.refit_snr_head(den, parts, 0, kinds, span, small)
    after, const = error(), float((t - t.median()).abs().median())
    if not (after < before and after <= const):
        sys.exit(f"smoke: the refitted SNR head's median error {after:.2f} dB (before {before:.2f}, "
                 f"a constant {const:.2f})")
    print(f"smoke: SNR head refitted, median error {before:.2f} -> {after:.2f} dB (a constant: {const:.2f})")
