"""What bench/denoise_condition.py and bench/denoise_context.py share: the
command line, the rigs, and frames cut as the daemon cuts them."""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models", "train"))

from drsn_train import denoise_fit, denoise_table  # noqa: E402
from drsn_train.data import FRAME  # noqa: E402

WORK = os.path.join(HERE, "..", "models", "work", "denoise")


def setup(doc: str, cached: str):
    """(arguments, rigs, training parts); exits when `cached` (a body the
    table trains) is missing."""
    import torch

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared"))
    a = ap.parse_args()
    if not os.path.exists(cached):
        sys.exit(f"{cached}: missing; scripts/denoise-table.sh trains and caches it")
    torch.set_num_threads(a.threads)
    rigs = denoise_table.rigs_from(os.path.abspath(a.data))
    return a, rigs, denoise_table._train_parts(rigs)


def frames_of(x: np.ndarray, side: int = 0) -> np.ndarray:
    """x cut as denoise_fit.denoise_signal cuts it (FRAME at hop FRAME/2),
    each frame with `side` more samples either side, reflected at the ends."""
    n, hop = len(x), denoise_fit.HOP
    count = max(1, -(-(max(n, FRAME) - FRAME) // hop) + 1)
    padded = np.zeros((count - 1) * hop + FRAME, dtype=np.float32)
    padded[:n] = x
    wide = np.pad(padded, side, mode="reflect") if side else padded
    return wide[np.arange(count)[:, None] * hop + np.arange(FRAME + 2 * side)[None, :]]
