"""The classic STFT denoisers the DRSN denoiser is measured against, and the
two oracles that bound every mask.

  subtraction   power spectral subtraction (Boll; Berouti's over-subtraction
                and spectral floor), blind noise estimate
  dd-wiener     Wiener gain on the decision-directed a-priori SNR
                (Ephraim & Malah), blind noise estimate, or the true noise's
                long-term spectrum (known: a bound for any tracker)
  fixed-wiener  one Wiener filter Ps / (Ps + Pn) from the true long-term
                spectra of the recording and of the noise (oracle)
  irm           the ideal ratio mask per bin and frame (oracle; in
                denoise_fit.oracle)

The blind noise estimates (_noise_power) are minimum statistics (after
Martin 2001, simplified: the periodogram smoothed over frames, its minimum
over a sliding window), a low quantile of each bin, or a flat floor from
the top of the spectrum, each times a bias factor. A machine's vibration
never pauses the way speech does, so a minimum sits under the noise by a
factor that depends on the signal: the estimate and its factor are
settings, chosen on the training parts like every other.

Every method is `f(noisy, clean, setting) -> estimate`; the blind ones never
read `clean` (the oracles and the known-noise bound take the noise as
noisy - clean).
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy.ndimage import minimum_filter1d
from scipy.signal import istft, lfilter, stft

RATE = 12000.0


def _stft(x: np.ndarray, n: int) -> np.ndarray:
    return stft(x.astype(np.float64), nperseg=n)[2]  # Hann, 50 % overlap


def _istft(spec: np.ndarray, n: int, length: int) -> np.ndarray:
    y = istft(spec, nperseg=n)[1][:length]
    return np.pad(y, (0, length - len(y))).astype(np.float32)


def min_stats(power: np.ndarray, window_s: float, bias: float, n: int, smooth: float = 0.85) -> np.ndarray:
    """Noise power per bin and frame from the periodogram [bins, frames]."""
    zi = power[:, :1] * smooth  # start the recursion at the first frame
    smoothed = lfilter([1.0 - smooth], [1.0, -smooth], power, axis=1, zi=zi)[0]
    if not np.isfinite(window_s):
        return bias * smoothed.min(axis=1, keepdims=True)
    frames = max(1, int(round(window_s * RATE / (n // 2))))
    return bias * minimum_filter1d(smoothed, size=frames, axis=1, mode="nearest")


def _noise_power(noisy_power: np.ndarray, clean: np.ndarray, noisy: np.ndarray, s: dict) -> np.ndarray:
    """The noise power per bin (and frame) a method works with:
      known      the added noise's long-term spectrum (a bound)
      min-stats  minimum statistics over `window_s` (inf: the whole segment)
      quantile   the q-quantile of each bin over the whole segment
      flat       white noise assumed: the median of the top quarter of the
                 spectrum, for every bin (as wavelet shrinkage's MAD of the
                 finest details assumes)
    each blind one times `bias`."""
    if s["noise"] == "known":
        return (np.abs(_stft(noisy - clean, s["n"])) ** 2).mean(axis=1, keepdims=True)
    if s["noise"] == "min-stats":
        return min_stats(noisy_power, s["window_s"], s["bias"], s["n"])
    if s["noise"] == "quantile":
        return s["bias"] * np.quantile(noisy_power, s["q"], axis=1, keepdims=True)
    if s["noise"] == "flat":
        top = noisy_power[3 * noisy_power.shape[0] // 4 :]
        return np.full((noisy_power.shape[0], 1), s["bias"] * float(np.median(top)))
    raise ValueError(f"unknown noise estimate {s['noise']!r}")


def subtraction(noisy: np.ndarray, clean: np.ndarray, s: dict) -> np.ndarray:
    spec = _stft(noisy, s["n"])
    power = np.abs(spec) ** 2
    noise = _noise_power(power, clean, noisy, s)
    gain = np.sqrt(np.maximum(1.0 - s["over"] * noise / (power + 1e-30), s["floor"]))
    return _istft(spec * gain, s["n"], len(noisy))


def dd_wiener(noisy: np.ndarray, clean: np.ndarray, s: dict) -> np.ndarray:
    spec = _stft(noisy, s["n"])
    power = np.abs(spec) ** 2
    noise = np.broadcast_to(_noise_power(power, clean, noisy, s), power.shape) + 1e-30
    post = power / noise  # a-posteriori SNR
    xi_min = 10.0 ** (s["xi_min_db"] / 10.0)
    gain = np.empty_like(power)
    prev = np.maximum(post[:, 0] - 1.0, 0.0)  # |S|^2 / N of the frame before
    for t in range(power.shape[1]):
        xi = np.maximum(s["a"] * prev + (1.0 - s["a"]) * np.maximum(post[:, t] - 1.0, 0.0), xi_min)
        gain[:, t] = xi / (1.0 + xi)
        prev = gain[:, t] ** 2 * post[:, t]
    return _istft(spec * gain, s["n"], len(noisy))


def fixed_wiener(noisy: np.ndarray, clean: np.ndarray, s: dict) -> np.ndarray:
    ps = (np.abs(_stft(clean, s["n"])) ** 2).mean(axis=1, keepdims=True)
    pn = (np.abs(_stft(noisy - clean, s["n"])) ** 2).mean(axis=1, keepdims=True)
    return _istft(_stft(noisy, s["n"]) * ps / (ps + pn + 1e-30), s["n"], len(noisy))


def irm(noisy: np.ndarray, clean: np.ndarray, s: dict) -> np.ndarray:
    sp, np_ = np.abs(_stft(clean, s["n"])) ** 2, np.abs(_stft(noisy - clean, s["n"])) ** 2
    return _istft(_stft(noisy, s["n"]) * sp / (sp + np_ + 1e-30), s["n"], len(noisy))


def wavelet_shrink(noisy: np.ndarray, clean: np.ndarray, s: dict) -> np.ndarray:
    from . import wavelet

    return wavelet.shrink(noisy, s["rule"], s["wavelet"], s["level"])


def _grid(**axes) -> list[dict]:
    keys = list(axes)
    return [dict(zip(keys, v)) for v in itertools.product(*axes.values())]


BIAS = (0.75, 1.0, 1.5, 3.0)
# The blind noise estimates searched (see _noise_power).
BLIND_NOISE = (_grid(noise=("min-stats",), window_s=(0.3, 1.0, float("inf")), bias=BIAS)
               + _grid(noise=("quantile",), q=(0.1, 0.3, 0.5), bias=BIAS)
               + _grid(noise=("flat",), bias=BIAS))


def _with_noise(grid: list[dict], estimates: list[dict]) -> list[dict]:
    return [{**g, **e} for g in grid for e in estimates]


# (row name, function, settings searched on the training parts, blind?)
METHODS = (
    ("wavelet shrinkage", wavelet_shrink,
     _grid(rule=("visu", "bayes"), wavelet=("sym8", "db4"), level=(3, 4, 5, 6)), True),
    ("spectral subtraction, blind noise estimate", subtraction,
     _with_noise(_grid(n=(256, 1024), over=(1.0, 2.0, 4.0), floor=(0.01,)), BLIND_NOISE), True),
    ("decision-directed Wiener, blind noise estimate", dd_wiener,
     _with_noise(_grid(n=(256, 1024), a=(0.8, 0.9, 0.98), xi_min_db=(-20.0,)), BLIND_NOISE), True),
    ("decision-directed Wiener, noise spectrum known", dd_wiener,
     _grid(n=(256, 512, 1024, 2048), a=(0.8, 0.9, 0.98), xi_min_db=(-25.0, -15.0), noise=("known",)),
     False),
    ("fixed Wiener filter, true long-term spectra (oracle)", fixed_wiener,
     _grid(n=(256, 1024, 2048)), False),
)
BLIND = tuple(name for name, _, _, blind in METHODS if blind)
