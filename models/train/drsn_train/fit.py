"""Training and evaluation on the time-split frames."""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from . import noise
from .data import TrainSampler, Recording
from .model import Net

EVAL_SNRS = (-4, -2, 0, 2, 4)
# Training SNR range (dB): weighted towards the hard end; see RESULTS.md.
TRAIN_SNR = (-8.0, 6.0)


def train(arch: str, recs: list[Recording], seed: int, steps: int, batch: int = 64,
          noisy: bool = True, lr: float = 3e-3, log_every: int = 0,
          snr: tuple[float, float] = TRAIN_SNR) -> tuple[Net, float]:
    """One model; returns it in eval mode with the wall-clock seconds taken."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1000)
    sampler = TrainSampler(recs, seed)
    net = Net(arch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    t0 = time.time()
    net.train()
    for step in range(steps):
        x, y = sampler.batch(batch)
        if noisy:
            x = noise.augment(x, rng, snr[0], snr[1])
        logits, _ = net(torch.from_numpy(x).unsqueeze(1))
        loss = F.cross_entropy(logits, torch.from_numpy(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"  {arch} seed {seed} step {step}/{steps} loss {loss.item():.4f}", flush=True)
    net.eval()
    return net, time.time() - t0


@torch.no_grad()
def predict(net: Net, x: np.ndarray, batch: int = 512) -> np.ndarray:
    out = []
    for i in range(0, len(x), batch):
        logits, _ = net(torch.from_numpy(x[i : i + batch]).unsqueeze(1))
        out.append(logits.argmax(dim=-1).numpy())
    return np.concatenate(out)


def evaluate(net: Net, x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict:
    """Accuracy clean and per noise kind per SNR (fixed seeds), and 0 dB confusions."""
    res = {"clean": float((predict(net, x) == y).mean()), "noisy": {}, "confusion_0db": {}}
    for k, kind in enumerate(noise.KINDS):
        res["noisy"][kind] = {}
        for snr in EVAL_SNRS:
            rng = np.random.default_rng([seed, k, snr + 100])
            pred = predict(net, noise.add_noise(x, kind, float(snr), rng))
            res["noisy"][kind][snr] = float((pred == y).mean())
            if snr == 0:
                cm = np.zeros((10, 10), dtype=np.int64)
                np.add.at(cm, (y, pred), 1)
                res["confusion_0db"][kind] = cm.tolist()
    return res
