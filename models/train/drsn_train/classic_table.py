"""The classic rows of the denoiser tables, each method's settings chosen on
training data only.

Every setting in a method's grid (classic.METHODS) is run on a 2 s excerpt
from the middle of the training part of every third recording, with noise
of other seeds than the test sets'; the setting with the highest mean SNR
gain there is the one measured on the held-out 20 %. A blind method gets
one setting per rig (the best over the paper's nine cells: it does not know
the noise); a bound, which knows the noise, the best for each cell. No
method sees the test data. Results are cached per rig in
models/work/denoise/.
"""
from __future__ import annotations

import json
import os

import numpy as np

from . import classic
from .denoise_fit import COLOURED_CELLS, MAIN_CELLS, cell_noisy, evaluate, snr_db

CELLS = MAIN_CELLS + COLOURED_CELLS
SELECT_SEED = 13  # noise seeds for choosing settings; the test sets use 7
EXCERPT = 24000  # 2 s at 12 kHz


def train_excerpts(rig: list) -> list[tuple[str, np.ndarray]]:
    """Every third recording's excerpt: enough to rank settings, a third of the time."""
    out = []
    for name, train, _ in rig[::3]:
        mid = max(0, len(train) // 2 - EXCERPT // 2)
        out.append((name, train[mid : mid + EXCERPT]))
    return out


def choose(f, grid: list[dict], excerpts: list, cells) -> tuple[dict, float]:
    """The setting with the highest mean gain over `cells` on the training
    excerpts."""
    scores = np.zeros(len(grid))
    for cell in cells:
        pairs = [(c, cell_noisy(c, *cell, i, SELECT_SEED)) for i, (_, c) in enumerate(excerpts)]
        before = [snr_db(c, x) for c, x in pairs]
        scores += [np.mean([snr_db(c, f(x, c, s)) - b for (c, x), b in zip(pairs, before)]) for s in grid]
    k = int(np.argmax(scores))
    return grid[k], float(scores[k] / len(cells))


def rig_rows(rig: list) -> dict:
    """{method: {"setting" (blind: one for every cell), "cells": {"kind snr":
    {setting, train_gain, test_gain, worst}}, "transparency_db" (blind)}}.

    A blind method does not know the noise, so it gets one setting for the
    rig: the best on average over the paper's cells. The bounds know the
    noise, so they get the best setting for each cell."""
    excerpts = train_excerpts(rig)
    tests = [(n, te) for n, _, te in rig]
    out: dict = {}
    for name, f, grid, blind in classic.METHODS:
        rows = out[name] = {"cells": {}}
        if blind:
            rows["setting"], train_gain = choose(f, grid, excerpts, MAIN_CELLS)
        for cell in CELLS:
            setting = rows["setting"] if blind else None
            if setting is None:
                setting, train_gain = choose(f, grid, excerpts, (cell,))
            res = evaluate(lambda x, c, s=setting: f(x, c, s), tests, (cell,), informed=True)
            rows["cells"][f"{cell[0]} {cell[1]}"] = {
                "setting": setting, "train_gain": train_gain,
                "test_gain": res["improvement"][cell[0]][cell[1]],
                "worst": res["worst_recording"][cell[0]][cell[1]]}
            if blind:
                rows["transparency_db"] = res["transparency_db"]
        print(f"  classic: {name} done", flush=True)
    return out


def cached_rows(rigs: dict, cache: str) -> dict:
    """rig -> rig_rows, computed once per rig (one process each)."""
    from concurrent.futures import ProcessPoolExecutor

    paths = {r: os.path.join(cache, f"classic-{r}.json") for r in rigs}
    todo = [r for r, p in paths.items() if not os.path.exists(p)]
    with ProcessPoolExecutor(max(1, len(todo))) as ex:
        for r, rows in zip(todo, ex.map(rig_rows, [rigs[r] for r in todo])):
            with open(paths[r], "w") as f:
                json.dump(rows, f)
    out = {}
    for r, p in paths.items():
        with open(p) as f:
            out[r] = json.load(f)
    return out
