#!/usr/bin/env python3
"""Would knowing the noise level close the white-noise gap? (issue 38, items 1-2)

The denoiser reads each 2048-sample frame alone. A daemon could also track
the noise from the stream (minimum statistics over many frames) and give
the network that as a second input; that changes the model's contract, so
this measures first what it could be worth at most. The shipped recipe's
seed-0 body (before its head refit; the table's cache, or trained here in
about 32 minutes when the cache lacks it) is fine-tuned twice, with the
same frames, noise and seeds:

- control: its units' output passes a FiLM (a per-channel scale and shift
  from a small FC) fed 0, i.e. more of the same training;
- oracle: the FiLM fed each frame's TRUE noise level, log(noise RMS /
  frame RMS), which no tracker can beat for stationary noise.

Both FiLMs start as the identity. The gap between the two rows, on the
table's test sets (last 20 % of every recording, the table's noise seeds),
is the most a tracked noise level could add.

    models/.venv/bin/python bench/denoise_condition.py [--steps 3000] [--threads 2]

Prints the SNR gain per rig and cell for the body as shipped, the control
and the oracle; about 15 minutes on 2 cores.
"""
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from denoise_lab import body, fit, frames_of, recipe_shape, setup
from drsn_train import denoise_fit, denoise_table
from drsn_train.denoiser import Denoiser

BODY_STEPS = 12000  # the shipped recipe's steps
CELLS = tuple((k, s) for k in ("gaussian", "laplacian") for s in denoise_fit.EVAL_SNRS)
# A clean frame's level: far below any noise the training adds (-10 dB SNR
# at most is log 1.6; +10 dB is log 0.3).
CLEAN_LEVEL = -7.0


class Film(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.fc1 = nn.Linear(1, channels)
        self.fc2 = nn.Linear(channels, 2 * channels)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, level: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        g, b = self.fc2(F.relu(self.fc1(level))).chunk(2, dim=1)
        return h * (1.0 + g.unsqueeze(-1)) + b.unsqueeze(-1)


class Conditioned(Denoiser):
    """The shipped denoiser with a FiLM on the units' output (the mask's input)."""

    def __init__(self):
        super().__init__(*recipe_shape())
        self.film = Film(self.channels)
        self.level = None  # [N, 1], set before each run

    def encode(self, x):
        e = super().encode(x)
        return e._replace(h=self.film(self.level, e.h))


def levels(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """log(noise RMS / frame RMS) per row, each centred as the network centres it."""
    n = noisy - clean
    n = n - n.mean(axis=-1, keepdims=True)
    x = noisy - noisy.mean(axis=-1, keepdims=True)
    rn = np.sqrt((n * n).mean(axis=-1))
    rx = np.sqrt((x * x).mean(axis=-1)) + 1e-12
    return np.maximum(np.log(rn / rx + 1e-30), CLEAN_LEVEL).astype(np.float32)[:, None]


def fine_tune(rigs, path: str, oracle: bool, steps: int, seed: int = 0, lr: float = 1e-3) -> Conditioned:
    torch.manual_seed(seed)
    net = Conditioned()
    missing, unexpected = net.load_state_dict(torch.load(path, weights_only=True), strict=False)
    assert not unexpected and all(k.startswith("film.") for k in missing), (missing, unexpected)
    sampler = denoise_fit.CleanSampler(rigs, seed + 7000)
    rng = np.random.default_rng(seed + 8000)

    def level_in(noisy, clean):
        lv = levels(noisy, clean) if oracle else np.zeros((len(noisy), 1), np.float32)
        net.level = torch.from_numpy(lv)

    return fit(net, sampler, rng, steps, lr, "oracle" if oracle else "control", before=level_in)


@torch.no_grad()
def gains(net: Conditioned, tests, oracle: bool) -> dict:
    out = {}
    for kind, snr in CELLS:
        g = []
        for i, (_, clean) in enumerate(tests):
            noisy = denoise_fit.cell_noisy(clean, kind, snr, i)
            lv = levels(frames_of(noisy), frames_of(clean))
            k = 0

            def run(part):
                nonlocal k
                net.level = torch.from_numpy(lv[k:k + len(part)] if oracle else np.zeros((len(part), 1), np.float32))
                k += len(part)
                y, _, _ = net.run(torch.from_numpy(part).unsqueeze(1))
                return y.squeeze(1).numpy()

            y = denoise_fit.denoise_signal(run, noisy)
            g.append(denoise_fit.snr_db(clean, y) - denoise_fit.snr_db(clean, noisy))
        out[(kind, snr)] = float(np.mean(g))
    return out


def main():
    a, rigs, parts = setup(__doc__)
    path = body(a, BODY_STEPS)
    shipped = Conditioned()
    shipped.load_state_dict(torch.load(path, weights_only=True), strict=False)
    shipped.eval()
    rows = [(f"body as trained ({BODY_STEPS} steps)", shipped, False)]
    for oracle in (False, True):
        t0 = time.time()
        net = fine_tune(parts, path, oracle, a.steps)
        print(f"  fine-tuned in {time.time() - t0:.0f} s", flush=True)
        rows.append((f"+{a.steps} steps, {'the true noise level in' if oracle else 'control (0 in)'}",
                     net, oracle))
    head = "| | " + " | ".join(f"{k} {s:+d}" for k, s in CELLS) + " |"
    for rig in denoise_table.RIGS:
        tests = denoise_table._tests(rigs[rig])
        print(f"\n{rig}: SNR gain (dB), test sets\n\n{head}\n|---|" + "---|" * len(CELLS))
        for label, net, oracle in rows:
            g = gains(net, tests, oracle)
            print(f"| {label} | " + " | ".join(f"{g[c]:+.2f}" for c in CELLS) + " |", flush=True)


if __name__ == "__main__":
    main()
