#!/usr/bin/env python3
"""Do more context or deep filtering close the white-noise gap? (issue 38, items 1-2)

The shipped denoiser's units see about 1000 samples around each
coefficient (4 units, dilations 1-8, at stride 16), its thresholds pool
one 2048-sample frame, and it multiplies each coefficient by a mask.
Three levers, each trained from scratch with the 3000-step recipe of the
table's variants (seed 0, 64 channels, kernel 32, stride 16, DC gate, SNR
head on the thresholds, plant noise):

- deeper: 6 units (dilations to 32), so every coefficient sees the whole frame;
- longer: 4096 samples in (1024 either side of the frame), the loss and
  the output on the middle 2048 only, so the mask and the thresholds read
  twice the signal. The daemon would pay for 4096 samples per 2048;
- filter: deep filtering, a 5-tap filter over neighbouring steps per
  coefficient in place of the mask's one gain.

Beside them, the same recipe as it is (the table's seed-0 body at 3000
steps, from its cache or trained here). Gains on the table's test sets
and noise seeds.

    models/.venv/bin/python bench/denoise_levers.py [--rows deeper,longer,filter] [--steps 3000] [--threads 2]

About 8 minutes per row on 2 cores.
"""
import time

import numpy as np
import torch

from denoise_lab import body, fit, frames_of, recipe_shape, setup
from drsn_train import denoise_fit, denoise_table, denoiser
from drsn_train.data import FRAME, eq_knots, random_eq

CELLS = tuple((k, s) for k in ("gaussian", "laplacian", "pink") for s in denoise_fit.EVAL_SNRS)
SIDE = 1024  # context either side of the frame for the longer variant
TAPS = 5  # the deep filter's taps over neighbouring steps


class Crops(denoise_fit.CleanSampler):
    """CleanSampler's crops, `length` samples long."""

    def __init__(self, rigs, seed: int, length: int):
        super().__init__(rigs, seed)
        self.length = length
        self.knots = eq_knots(length // 2 + 1)

    def batch(self, n: int) -> np.ndarray:
        out = np.empty((n, self.length), dtype=np.float32)
        for i in range(n):
            segs = self.rigs[self.rng.integers(0, len(self.rigs))]
            seg = segs[self.rng.integers(0, len(segs))]
            start = self.rng.integers(0, len(seg) - self.length)
            out[i] = seg[start:start + self.length]
        return random_eq(out, self.rng, self.eq_db, self.knots)


def train(net, parts, steps: int, side: int = 0, seed: int = 0, lr: float = 3e-3) -> denoiser.Denoiser:
    """denoise_fit.train's loop for `net`, on crops with `side` samples of
    context either side of the frame, scored on the frame."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 2000)
    sampler = Crops(parts, seed, FRAME + 2 * side)
    return fit(net, sampler, rng, steps, lr, type(net).__name__, side)


class DeepFilter(denoiser.Denoiser):
    """The recipe's denoiser whose mask gives TAPS weights per coefficient,
    applied to it and its neighbours in time (deep filtering), where the
    mask gives one gain. The sigmoid mask is the filter with its centre tap
    alone; here the taps are free."""

    def __init__(self):
        super().__init__(*recipe_shape())
        c = self.channels
        self.mask = torch.nn.Conv1d(c, c * TAPS, 1)

    def masked(self, coef, h):
        n, c, t = coef.shape
        taps = self.mask(torch.nn.functional.relu(self.mask_bn(h))).view(n, c, TAPS, t)
        near = torch.nn.functional.pad(coef, (TAPS // 2, TAPS // 2)).unfold(-1, TAPS, 1)  # [n, c, t, TAPS]
        return (taps.permute(0, 1, 3, 2) * near).sum(-1)


def with_context(net):
    """A method for denoise_fit.evaluate: each 2048-sample frame of the
    signal with SIDE samples either side (reflected at the ends), the
    middle of the output kept. denoise_signal passes the frames in order."""
    @torch.no_grad()
    def method(x: np.ndarray) -> np.ndarray:
        ctx, k = frames_of(x, SIDE), 0

        def frames(part: np.ndarray) -> np.ndarray:
            nonlocal k
            y, _ = net(torch.from_numpy(ctx[k:k + len(part)]).unsqueeze(1))
            k += len(part)
            return y.squeeze(1).numpy()[:, SIDE:SIDE + FRAME]

        return denoise_fit.denoise_signal(frames, x)

    return method


def gains(method, tests) -> dict:
    res = denoise_fit.evaluate(method, tests, CELLS)
    return {c: res["improvement"][c[0]][c[1]] for c in CELLS}


def main():
    a, rigs, parts = setup(__doc__, rows="deeper,longer,filter")
    wanted = a.rows.split(",")
    kinds, span = denoise_table.NOISE_MIX["plant"]
    rows = []
    base = denoiser.load(body(a, 3000), *recipe_shape())
    rows.append(("4 units, 2048 in (the recipe)", denoiser.macs_per_frame(base),
                 lambda x, n=base: denoise_fit.denoise_signal(n, x)))
    t0 = time.time()
    if "deeper" in wanted:
        deeper, _ = denoise_fit.train("drsn", parts, 0, a.steps, 64, 6, kernel=32, stride=16, dc=True,
                                      snr_head=True, features="taus", kinds=kinds, span=span)
        rows.append(("6 units (dilations to 32), 2048 in", denoiser.macs_per_frame(deeper),
                     lambda x, n=deeper: denoise_fit.denoise_signal(n, x)))
    if "longer" in wanted:
        longer = train(denoiser.Denoiser(*recipe_shape()), parts, a.steps, SIDE)
        rows.append((f"4 units, {FRAME + 2 * SIDE} in, middle {FRAME} out",
                     denoiser.macs_per_frame(longer, FRAME + 2 * SIDE), with_context(longer)))
    if "filter" in wanted:
        filt = train(DeepFilter(), parts, a.steps)
        rows.append((f"deep filter, {TAPS} taps per coefficient", denoiser.macs_per_frame(filt),
                     lambda x, n=filt: denoise_fit.denoise_signal(n, x)))
    print(f"  trained in {time.time() - t0:.0f} s", flush=True)
    head = "| | MACs per frame | " + " | ".join(f"{k} {s:+d}" for k, s in CELLS) + " |"
    for rig in denoise_table.RIGS:
        tests = denoise_table._tests(rigs[rig])
        print(f"\n{rig}: SNR gain (dB), test sets, {a.steps} steps\n\n{head}\n|---|---:|"
              + "---:|" * len(CELLS))
        for label, macs, method in rows:
            g = gains(method, tests)
            print(f"| {label} | {macs / 1e6:.1f} M | " + " | ".join(f"{g[c]:+.2f}" for c in CELLS) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
