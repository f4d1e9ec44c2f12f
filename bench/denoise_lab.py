"""What bench/denoise_condition.py and bench/denoise_levers.py share: the
command line, the rigs, the recipe's body, the training loop, and frames
cut as the daemon cuts them."""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models", "train"))

from drsn_train import denoise_fit, denoise_table, noise  # noqa: E402
from drsn_train.data import FRAME  # noqa: E402
from drsn_train.denoiser import SHIPPED  # noqa: E402

WORK = os.path.join(HERE, "..", "models", "work", "denoise")


# The shipped recipe's shape and noise (its body, before the head's refit).
RECIPE = {"arch": "drsn", "units": 4,
          **{k: SHIPPED[k] for k in ("channels", "kernel", "stride", "floor", "dc", "snr_head", "features", "mix")}}


def recipe_shape(units: int = 4) -> tuple:
    """denoiser.Denoiser's (and denoiser.load's) shape arguments for the recipe."""
    r = RECIPE
    return (r["arch"], r["channels"], units, r["kernel"], r["stride"], r["floor"], r["dc"], r["snr_head"],
            r["features"])


def body(a, steps: int) -> str:
    """The recipe's seed-0 body trained for `steps` steps, as the table
    caches it; trained here when the cache lacks it (about 8 minutes per
    3000 steps on 2 cores). The same seed on another machine is not the
    same body to the bit: the 3000-step body retrained on a fresh machine
    moved the test gains by -0.11 to +0.04 dB."""
    shared = os.path.abspath(a.data)
    job = denoise_table.job_for(shared, WORK, 0, steps, a.threads, **RECIPE)
    path = job["path"][: -len(".json")] + ".pt"
    if not os.path.exists(path):
        print(f"{path}: not cached, training it ({steps} steps)", flush=True)
        os.makedirs(WORK, exist_ok=True)
        denoise_table.run_one(job)
    return path


def setup(doc: str, rows: str | None = None):
    """(arguments, rigs, training parts). `rows`: the default of a --rows option."""
    import torch

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared"))
    if rows:
        ap.add_argument("--rows", default=rows, help=f"comma-separated, of {rows}")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rigs = denoise_table.rigs_from(os.path.abspath(a.data))
    return a, rigs, denoise_table._train_parts(rigs)


def fit(net, sampler, rng, steps: int, lr: float, label: str, side: int = 0, before=None):
    """denoise_fit.train's loop for `net` on the plant noise: AdamW with a
    one-cycle rate, the SNR loss on the frame (the middle FRAME samples of
    crops with `side` samples of context either side) plus the SNR head's.
    `before(noisy, clean)` runs before each step's forward pass."""
    import torch

    kinds, span = denoise_table.NOISE_MIX["plant"]
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    mid = slice(side, side + FRAME)
    net.train()
    for step in range(steps):
        clean = sampler.batch(32)
        noisy = noise.augment(clean, rng, *denoise_fit.TRAIN_SNR, p_clean=0.1, kinds=kinds, span=span)
        if before:
            before(noisy, clean)
        out, _, snr = net.run(torch.from_numpy(noisy).unsqueeze(1))
        loss = denoise_fit.frame_loss("snr", torch.from_numpy(clean[:, mid]), out.squeeze(1)[:, mid])
        loss = loss + denoise_fit.SNR_HEAD_WEIGHT * (
            snr[:, 0] - torch.from_numpy(denoise_fit.true_snr(clean, noisy))).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        sched.step()
        if step % 500 == 0:
            print(f"  {label} step {step}/{steps} loss {loss.item():.2f} dB", flush=True)
    return net.eval()


def frames_of(x: np.ndarray, side: int = 0) -> np.ndarray:
    """x cut as denoise_fit.denoise_signal cuts it (FRAME at hop FRAME/2),
    each frame with `side` more samples either side, reflected at the ends."""
    n, hop = len(x), denoise_fit.HOP
    count = max(1, -(-(max(n, FRAME) - FRAME) // hop) + 1)
    padded = np.zeros((count - 1) * hop + FRAME, dtype=np.float32)
    padded[:n] = x
    wide = np.pad(padded, side, mode="reflect") if side else padded
    return wide[np.arange(count)[:, None] * hop + np.arange(FRAME + 2 * side)[None, :]]
