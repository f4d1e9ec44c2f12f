"""Noise models, added at a signal-to-noise ratio set per frame.

noise power = frame power / 10^(SNR/10). The paper's three (white Gaussian,
Laplacian, pink: 1/f power) are the table's main columns; brown (1/f^2
power) and hum (narrow lines at the mains frequency and its harmonics, as
motors, transformers and drives put on a sensor cable) are the coloured
noise a plant adds, trained on and reported beside them.
"""
from __future__ import annotations

import numpy as np

KINDS = ("gaussian", "laplacian", "pink")
COLOURED = ("brown", "hum")
TRAIN_KINDS = KINDS + COLOURED
RATE = 12000.0  # the models' sample rate: hum's lines are placed in Hz


def _shaped(shape: tuple[int, int], rng: np.random.Generator, gain) -> np.ndarray:
    """White Gaussian noise through gain(f in Hz) [rows or 1, bins]."""
    white = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    f = np.fft.rfftfreq(shape[-1], 1.0 / RATE)
    n = np.fft.irfft(white * gain(f), n=shape[-1], axis=-1)
    return n - n.mean(axis=-1, keepdims=True)


def _hum_gain(rows: int, rng: np.random.Generator):
    """Lines at k * f0 (f0 50 or 60 Hz, off by up to 1 %), k = 1..K, each a
    few Hz wide, falling by a random 0..12 dB per octave; one draw per row."""
    f0 = rng.choice([50.0, 60.0], rows) * rng.uniform(0.99, 1.01, rows)
    harmonics = rng.integers(3, 13, rows)
    slope = rng.uniform(0.0, 2.0, rows)  # amplitude ~ k^-slope
    width = rng.uniform(1.0, 4.0, rows)

    def gain(f: np.ndarray) -> np.ndarray:
        g = np.zeros((rows, f.size))
        for k in range(1, 13):
            on = (k <= harmonics)[:, None]
            bump = np.exp(-0.5 * ((f[None, :] - k * f0[:, None]) / width[:, None]) ** 2)
            g += on * k ** -slope[:, None] * bump
        return g + 1e-3  # a faint broadband floor, as on a real cable

    return gain


def unit_noise(kind: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Zero-mean noise with unit power per row."""
    if kind == "gaussian":
        n = rng.standard_normal(shape)
    elif kind == "laplacian":
        n = rng.laplace(0.0, 1.0 / np.sqrt(2.0), shape)
    elif kind in ("pink", "brown"):
        power = 1.0 if kind == "pink" else 2.0  # PSD ~ 1/f^power
        # DC gets the first bin's gain: finite, and removed anyway.
        n = _shaped(shape, rng, lambda f: np.maximum(f, f[1]) ** (-power / 2.0))
    elif kind == "hum":
        n = _shaped(shape, rng, _hum_gain(shape[0], rng))
    else:
        raise ValueError(f"unknown noise kind {kind!r} (expected one of {TRAIN_KINDS})")
    n /= np.sqrt((n**2).mean(axis=-1, keepdims=True)) + 1e-12
    return n


def add_noise(x: np.ndarray, kind: str, snr_db: np.ndarray | float, rng: np.random.Generator,
              span: int = 0) -> np.ndarray:
    """x [N, L] plus `kind` noise at snr_db (scalar or one per frame).

    With span > L the noise is made over `span` samples and cut to L: a
    frame of a continuous coloured noise carries its slow part (below the
    frame's lowest bin) as a drift, as a frame of the daemon's stream or of
    the test sets does; noise made frame by frame has none."""
    power = (x.astype(np.float64) ** 2).mean(axis=-1, keepdims=True)
    snr = np.broadcast_to(np.asarray(snr_db, dtype=np.float64), (x.shape[0],))[:, None]
    scale = np.sqrt(power / 10.0 ** (snr / 10.0))
    n = unit_noise(kind, (x.shape[0], max(span, x.shape[-1])), rng)[:, : x.shape[-1]]
    n /= np.sqrt((n**2).mean(axis=-1, keepdims=True)) + 1e-12
    return (x + scale * n).astype(np.float32)


def augment(x: np.ndarray, rng: np.random.Generator, snr_lo=-6.0, snr_hi=10.0, p_clean=0.15,
            kinds: tuple[str, ...] = KINDS, span: int = 0) -> np.ndarray:
    """Training noise: each frame clean, or one noise kind at a random SNR
    (made over `span` samples, see add_noise)."""
    out = x.copy()
    kind = rng.integers(0, len(kinds) + 1, x.shape[0])  # last index: clean
    kind[rng.random(x.shape[0]) < p_clean] = len(kinds)
    for k, name in enumerate(kinds):
        sel = kind == k
        if sel.any():
            snr = rng.uniform(snr_lo, snr_hi, sel.sum())
            out[sel] = add_noise(x[sel], name, snr, rng, span)
    return out
