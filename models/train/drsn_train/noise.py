"""The paper's noise models, added at a signal-to-noise ratio set per frame.

noise power = frame power / 10^(SNR/10), for white Gaussian, Laplacian and
pink (1/f power) noise.
"""
from __future__ import annotations

import numpy as np

KINDS = ("gaussian", "laplacian", "pink")


def unit_noise(kind: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Zero-mean noise with unit power per row."""
    if kind == "gaussian":
        n = rng.standard_normal(shape)
    elif kind == "laplacian":
        n = rng.laplace(0.0, 1.0 / np.sqrt(2.0), shape)
    elif kind == "pink":
        white = np.fft.rfft(rng.standard_normal(shape), axis=-1)
        f = np.arange(white.shape[-1], dtype=np.float64)
        f[0] = 1.0  # keep DC finite; it is removed below
        n = np.fft.irfft(white / np.sqrt(f), n=shape[-1], axis=-1)
        n -= n.mean(axis=-1, keepdims=True)
    else:
        raise ValueError(f"unknown noise kind {kind!r} (expected one of {KINDS})")
    n /= np.sqrt((n**2).mean(axis=-1, keepdims=True)) + 1e-12
    return n


def add_noise(x: np.ndarray, kind: str, snr_db: np.ndarray | float, rng: np.random.Generator) -> np.ndarray:
    """x [N, L] plus `kind` noise at snr_db (scalar or one per frame)."""
    power = (x.astype(np.float64) ** 2).mean(axis=-1, keepdims=True)
    snr = np.broadcast_to(np.asarray(snr_db, dtype=np.float64), (x.shape[0],))[:, None]
    scale = np.sqrt(power / 10.0 ** (snr / 10.0))
    return (x + scale * unit_noise(kind, x.shape, rng)).astype(np.float32)


def augment(x: np.ndarray, rng: np.random.Generator, snr_lo=-6.0, snr_hi=10.0, p_clean=0.15) -> np.ndarray:
    """Training noise: each frame clean, or one noise kind at a random SNR."""
    out = x.copy()
    kind = rng.integers(0, len(KINDS) + 1, x.shape[0])  # last index: clean
    kind[rng.random(x.shape[0]) < p_clean] = len(KINDS)
    for k, name in enumerate(KINDS):
        sel = kind == k
        if sel.any():
            snr = rng.uniform(snr_lo, snr_hi, sel.sum())
            out[sel] = add_noise(x[sel], name, snr, rng)
    return out
