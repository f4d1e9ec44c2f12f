"""Checks of the denoiser's parts that need no training, run by `smoke`:
the noise kinds have the spectra they claim, the classic yardsticks do
what they are for, and the denoiser's DC gate passes a sensor's offset
whole. Synthetic signals only."""
from __future__ import annotations

import sys

import numpy as np
import torch

from . import classic, noise
from .denoise_fit import snr_db
from .denoiser import Denoiser


def _fail(msg: str) -> None:
    sys.exit(f"smoke: {msg}")


def noise_spectra() -> None:
    """Slope of the PSD per decade (pink -10 dB, brown -20 dB), and hum's
    power on the mains lines."""
    rng = np.random.default_rng(0)
    f = np.fft.rfftfreq(24000, 1 / noise.RATE)
    for kind, slope in (("gaussian", 0.0), ("pink", -10.0), ("brown", -20.0)):
        p = (np.abs(np.fft.rfft(noise.unit_noise(kind, (8, 24000), rng), axis=-1)) ** 2).mean(0)
        lo, hi = p[(f > 90) & (f < 110)].mean(), p[(f > 900) & (f < 1100)].mean()
        got = 10 * np.log10(hi / lo)
        if abs(got - slope) > 2.0:
            _fail(f"{kind} noise falls {got:+.1f} dB from 100 Hz to 1 kHz, expected {slope:+.0f}")
    p = (np.abs(np.fft.rfft(noise.unit_noise("hum", (8, 24000), rng), axis=-1)) ** 2).mean(0)
    near = np.zeros_like(f, dtype=bool)
    for k in range(1, 13):
        for f0 in (50.0, 60.0):
            near |= np.abs(f - k * f0) < 15
    share = p[near].sum() / p.sum()
    if share < 0.9:
        _fail(f"hum noise has {share:.0%} of its power near the mains lines, expected >= 90 %")


def classics() -> None:
    """On a tone in white noise at 0 dB, the Wiener filter with the noise
    known gains more than 10 dB, the blind one more than 5, and the ideal
    mask at least as much as either."""
    rng = np.random.default_rng(1)
    t = np.arange(24000) / noise.RATE
    clean = (np.sin(2 * np.pi * 437.0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    noisy = noise.add_noise(clean[None], "gaussian", 0.0, rng)[0]
    base = snr_db(clean, noisy)
    gains = {
        "known": snr_db(clean, classic.dd_wiener(noisy, clean, {"n": 1024, "a": 0.98, "xi_min_db": -25.0,
                                                                 "noise": "known"})) - base,
        "blind": snr_db(clean, classic.dd_wiener(noisy, clean, {"n": 1024, "a": 0.98, "xi_min_db": -20.0,
                                                                 "noise": "flat", "bias": 1.0})) - base,
        "irm": snr_db(clean, classic.irm(noisy, clean, {"n": 1024})) - base,
    }
    if gains["known"] < 10 or gains["blind"] < 5 or gains["irm"] < max(gains["known"], gains["blind"]):
        _fail(f"classic denoisers on a tone in white noise: {gains}")


@torch.no_grad()
def dc_gate() -> None:
    """With the gate set to drop every mean, a frame riding on an offset 100x
    its RMS keeps the offset, and a noise drift around zero is removed."""
    torch.manual_seed(0)
    net = Denoiser("drsn", 8, 2, 32, 16, floor=True, dc=True, features="taus").eval()
    net.dc.fc.bias.fill_(-30.0)  # keep nothing the gate acts on
    rng = np.random.default_rng(2)
    ac = torch.from_numpy(rng.standard_normal((1, 1, 2048)).astype(np.float32))
    y, _ = net(ac + 100.0)
    if abs(float(y.mean()) - 100.0) > 0.5:
        _fail(f"the DC gate moved a sensor offset of 100 to {float(y.mean()):.3f}")
    y, _ = net(ac + 0.5)
    if abs(float(y.mean())) > 0.05:
        _fail(f"the DC gate kept a mean of 0.5 (RMS 1) as {float(y.mean()):.3f}")


def run_all() -> None:
    noise_spectra()
    classics()
    dc_gate()
    print("smoke: noise spectra, classic denoisers and the DC gate checked")
