#!/usr/bin/env python3
"""Issue 34, optional item 6: does renormalising the network's statistics on
the machine's own healthy frames (AdaBN: every BatchNorm's mean and variance
recomputed over the baseline's frames) make its opinion on a rig it never
saw any better? Measured in PyTorch on the judges of the honest protocol
(bench/verdict_eval.py): UESTC judged by the network trained on CWRU only,
CWRU by the one trained on UESTC only.

- Adapted on the frames a baseline learns from (UESTC N_<rpm>_1 and _2;
  CWRU the first half of 1797_Normal_48k); the rest of the healthy
  recordings (UESTC N_<rpm>_3..5, CWRU the second half) count how often a
  healthy machine is called healthy.
- Every fault recording, whole, frames at hop 1024: the share of frames
  whose family is right, and per recording the family most frames name
  (right, wrong, or normal).

Usage: models/.venv/bin/python bench/adabn_eval.py [--judges models/work/honest]
Prints the table docs/monitoring.md quotes ("Adapting the network").
"""
import argparse
import copy
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "models", "train"))
from drsn_train import data  # noqa: E402
from drsn_train.fit import predict_both  # noqa: E402
from drsn_train.model import Net  # noqa: E402

FAMILIES = ["normal", "ball", "inner", "outer"]


def load_judge(judges: str, name: str) -> Net:
    with open(os.path.join(judges, f"{name}.json")) as f:
        m = json.load(f)
    net = Net(m["architecture"], len(m["classes"]), len(m["families"]))
    net.load_state_dict(torch.load(os.path.join(judges, "work", f"{name}.pt"), weights_only=True))
    return net.eval()


def frames(x: np.ndarray, hop: int) -> np.ndarray:
    n = (len(x) - data.FRAME) // hop + 1
    idx = np.arange(n)[:, None] * hop + np.arange(data.FRAME)[None, :]
    return x[idx].astype(np.float32)


def adapted(net: Net, healthy: np.ndarray) -> Net:
    """A copy whose BatchNorm statistics are the healthy frames' own."""
    net = copy.deepcopy(net)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over every batch
            m.train()
    with torch.no_grad():
        for i in range(0, len(healthy), 256):
            net(torch.from_numpy(healthy[i : i + 256]).unsqueeze(1))
    return net.eval()


def opinion(net: Net, faults: list, healthy_test: np.ndarray) -> dict:
    right = total = 0
    per_rec = {"right": 0, "wrong": 0, "normal": 0}
    by_family = {f: {"right": 0, "wrong": 0, "normal": 0} for f in FAMILIES[1:]}
    for r in faults:
        _, fam = predict_both(net, frames(r.whole, 1024))
        right += int((fam == r.family).sum())
        total += len(fam)
        top = int(np.bincount(fam, minlength=len(FAMILIES)).argmax())
        verdict = "right" if top == r.family else ("normal" if top == 0 else "wrong")
        per_rec[verdict] += 1
        by_family[FAMILIES[r.family]][verdict] += 1
    _, fam_h = predict_both(net, healthy_test)
    return {"frames_right": right / total, "recordings": per_rec, "by_family": by_family,
            "healthy_called_healthy": float(np.mean(fam_h == 0))}


def rig_sets(rig: str, recs: list) -> tuple[np.ndarray, np.ndarray, list]:
    """(baseline frames, held-out healthy frames, fault recordings)."""
    healthy = [r for r in recs if r.family == 0]
    if rig == "cwru":
        halves = [(r.whole[: len(r.whole) // 2], r.whole[len(r.whole) // 2 :]) for r in healthy]
        learn = np.concatenate([frames(a, 512) for a, _ in halves])
        test = np.concatenate([frames(b, 512) for _, b in halves])
    else:
        part = lambda r: int(r.name.rsplit("_", 1)[1].split(".")[0])  # noqa: E731
        learn = np.concatenate([frames(r.whole, 512) for r in healthy if part(r) <= 2])
        test = np.concatenate([frames(r.whole, 512) for r in healthy if part(r) > 2])
    return learn, test, [r for r in recs if r.family != 0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--judges", default=os.path.join(ROOT, "models/work/honest"))
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    rigs = {"cwru": data.load_cwru(os.path.join(args.shared, "cwru"), everything=True),
            "uestc": data.load_uestc(os.path.join(args.shared, "uestc"))}
    print("| rig (judge) | network | fault frames, family right | recordings: right / wrong / normal "
          "| ball | inner | outer | held-out healthy frames called healthy |")
    print("|---|---|---:|---|---|---|---|---:|")
    for rig, judge in (("uestc", "judge-cwru-only"), ("cwru", "judge-uestc-only")):
        net = load_judge(args.judges, judge)
        learn, test, faults = rig_sets(rig, rigs[rig])
        for label, n in (("as trained", net), ("AdaBN on the baseline's frames", adapted(net, learn))):
            o = opinion(n, faults, test)
            rec = o["recordings"]
            fams = " | ".join(f"{v['right']} / {v['wrong']} / {v['normal']}" for v in o["by_family"].values())
            print(f"| {rig.upper()} ({judge}) | {label} | {100 * o['frames_right']:.1f} % | "
                  f"{rec['right']} / {rec['wrong']} / {rec['normal']} | {fams} | "
                  f"{100 * o['healthy_called_healthy']:.1f} % |", flush=True)


if __name__ == "__main__":
    main()
