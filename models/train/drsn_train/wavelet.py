"""The classic baseline: wavelet shrinkage (Donoho & Johnstone; Chang, Yu &
Vetterli), sym8 at level 5, soft thresholds, noise level from the median
absolute deviation of the finest details (sigma = MAD / 0.6745).

  visu   one threshold sigma * sqrt(2 ln N) for every detail band
  bayes  per band sigma^2 / sigma_x, sigma_x^2 = max(var(d) - sigma^2, 0)
         (a band with sigma_x = 0 is removed entirely)
"""
from __future__ import annotations

import numpy as np
import pywt

WAVELET, LEVEL = "sym8", 5
RULES = ("visu", "bayes")


def shrink(x: np.ndarray, rule: str, wavelet: str = WAVELET, level: int = LEVEL) -> np.ndarray:
    coeffs = pywt.wavedec(x.astype(np.float64), wavelet, level=level, mode="symmetric")
    sigma = np.median(np.abs(coeffs[-1])) / 0.6745
    out = [coeffs[0]]
    for d in coeffs[1:]:
        if rule == "visu":
            tau = sigma * np.sqrt(2.0 * np.log(len(x)))
        elif rule == "bayes":
            sx = np.sqrt(max(float(np.mean(d * d)) - sigma**2, 0.0))
            tau = sigma**2 / sx if sx > 0 else float(np.abs(d).max())
        else:
            raise ValueError(f"unknown wavelet rule {rule!r} (expected one of {RULES})")
        out.append(pywt.threshold(d, tau, mode="soft"))
    return pywt.waverec(out, wavelet, mode="symmetric")[: len(x)].astype(np.float32)
