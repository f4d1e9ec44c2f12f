"""The comparison behind models/RESULTS.md: four architectures x seeds x protocols.

Protocols:
  noisy  train with noise on every load, test on the last 20 % (the paper's)
  clean  train clean, test noisy (the WDCNN protocol, Zhang et al. 2017)
  lolo-K train with noise on the two other loads, test on load K (the healthy
         baseline exists only at 0 hp, so every fold uses its time split)
Results are cached in models/work/results.json so an interrupted run resumes.
"""
from __future__ import annotations

import json
import os
import platform
import time
from multiprocessing import get_context

import numpy as np
import torch

from . import data, fit, noise
from .model import ARCHS

NAMES = {"conv": "ConvNet", "res": "ResNet", "drsn-cs": "DRSN-CS", "drsn-cw": "DRSN-CW"}


def summary_line(m: dict) -> str:
    parts = [f"clean {m['clean'] * 100:.2f}%"]
    for kind in noise.KINDS:
        parts.append(f"{kind} -4dB {m['noisy'][kind][-4] * 100:.2f}% 0dB {m['noisy'][kind][0] * 100:.2f}%")
    return "; ".join(parts)


def split_for(protocol: str, recs: list[data.Recording]):
    if not protocol.startswith("lolo-"):
        return recs, recs
    held = int(protocol.split("-")[1])
    train = [r for r in recs if r.load != held or r.label == 0]
    test = [r for r in recs if r.load == held or r.label == 0]
    return train, test


def run_job(job: tuple) -> dict:
    protocol, arch, seed, steps, root = job
    torch.set_num_threads(1)
    recs = data.load_cwru(root)
    train_recs, test_recs = split_for(protocol, recs)
    x, y = data.test_frames(test_recs)
    net, seconds = fit.train(arch, train_recs, seed, steps, noisy=protocol != "clean")
    m = fit.evaluate(net, x, y, seed=seed)
    m["seconds"] = seconds
    print(f"[{time.strftime('%H:%M:%S')}] {protocol} {arch} seed {seed}: {summary_line(m)} "
          f"({seconds:.0f} s)", flush=True)
    return {"protocol": protocol, "arch": arch, "seed": seed, "steps": steps, **m}


def cmd_table(args) -> None:
    work = os.path.join(args.out, "work")
    os.makedirs(work, exist_ok=True)
    cache = os.path.join(work, "results.json")
    done = json.load(open(cache)) if os.path.exists(cache) else []
    key = lambda r: (r["protocol"], r["arch"], r["seed"], r["steps"])
    have = {key(r) for r in done}
    protocols = ["noisy", "clean", "lolo-0", "lolo-1", "lolo-2"]
    jobs = [(p, a, s, args.steps, args.data) for p in protocols for a in ARCHS
            for s in range(args.seeds) if (p, a, s, args.steps) not in have]
    print(f"{len(jobs)} runs to do, {len(have)} cached", flush=True)
    t0 = time.time()
    with get_context("spawn").Pool(args.workers) as pool:
        for r in pool.imap_unordered(run_job, jobs):
            done.append(r)
            with open(cache, "w") as f:
                json.dump(done, f)
    wall = time.time() - t0
    # The wall time of the run that computed the cache, for re-renders.
    wall_file = os.path.join(work, f"wall-{args.steps}.json")
    if jobs:
        prior = json.load(open(wall_file))["seconds"] if os.path.exists(wall_file) and have else 0.0
        wall += prior
        json.dump({"seconds": wall}, open(wall_file, "w"))
    elif os.path.exists(wall_file):
        wall = json.load(open(wall_file))["seconds"]
    rows = [r for r in done if r["steps"] == args.steps]
    with open(os.path.join(args.out, "RESULTS.md"), "w") as f:
        f.write(render(rows, args, wall))
    print(f"wrote {os.path.join(args.out, 'RESULTS.md')} ({wall / 60:.1f} min)")


def cell(vals: list[float]) -> str:
    v = np.array(vals) * 100
    return f"{v.mean():.2f} ± {v.std():.2f}" if len(v) else "—"


def pick(rows, protocol, arch):
    return [r for r in rows if r["protocol"] == protocol and r["arch"] == arch]


def noise_tables(rows, protocol) -> str:
    out = []
    for kind in noise.KINDS:
        out.append(f"\n**{kind.capitalize()} noise** (accuracy %, mean ± std over seeds)\n")
        out.append("| model | " + " | ".join(f"{s} dB" for s in fit.EVAL_SNRS) + " | clean |")
        out.append("|---" * (len(fit.EVAL_SNRS) + 2) + "|")
        for arch in ARCHS:
            rs = pick(rows, protocol, arch)
            cells = [cell([r["noisy"][kind][str(s)] if str(s) in r["noisy"][kind] else r["noisy"][kind][s]
                           for r in rs]) for s in fit.EVAL_SNRS]
            out.append(f"| {NAMES[arch]} | " + " | ".join(cells) + f" | {cell([r['clean'] for r in rs])} |")
    return "\n".join(out) + "\n"


def acc_at(r, kind, snr):
    d = r["noisy"][kind]
    return d[str(snr)] if str(snr) in d else d[snr]


def lolo_table(rows) -> str:
    out = ["| model | held-out load | clean | " + " | ".join(f"{k} -4 dB" for k in noise.KINDS)
           + " | " + " | ".join(f"{k} 0 dB" for k in noise.KINDS) + " |",
           "|---" * 9 + "|"]
    for arch in ARCHS:
        for load in range(3):
            rs = pick(rows, f"lolo-{load}", arch)
            cells = [cell([r["clean"] for r in rs])]
            cells += [cell([acc_at(r, k, -4) for r in rs]) for k in noise.KINDS]
            cells += [cell([acc_at(r, k, 0) for r in rs]) for k in noise.KINDS]
            rpm = {0: 1797, 1: 1772, 2: 1750}[load]
            out.append(f"| {NAMES[arch]} | {load} hp ({rpm} rpm) | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def confusion(rows) -> str:
    rs = [r for r in pick(rows, "noisy", "drsn-cw") if r["seed"] == 0]
    if not rs:
        return "(no DRSN-CW seed 0 run)\n"
    out = []
    ids = data.CLASS_IDS
    for kind in noise.KINDS:
        cm = rs[0]["confusion_0db"][kind]
        out.append(f"\n**{kind}, 0 dB** (rows: true class, columns: predicted)\n")
        out.append("| true \\ pred | " + " | ".join(ids) + " |")
        out.append("|---" * (len(ids) + 1) + "|")
        for i, row in enumerate(cm):
            out.append(f"| {ids[i]} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(out) + "\n"


def timing(rows) -> str:
    out = ["| model | seconds per run (mean, 1 thread) |", "|---|---|"]
    for arch in ARCHS:
        s = [r["seconds"] for r in rows if r["arch"] == arch]
        out.append(f"| {NAMES[arch]} | {np.mean(s):.0f} |" if s else f"| {NAMES[arch]} | — |")
    return "\n".join(out) + "\n"


def verdict(rows) -> str:
    """DRSN-CW against ResNet, cell by cell (mean over seeds), computed, not typed."""
    lines = []
    for protocol, title in [("noisy", "trained with noise"), ("clean", "trained clean"),
                            ("lolo", "leave one load out")]:
        cw_wins = res_wins = ties = 0
        diffs = []
        protos = [protocol] if protocol != "lolo" else ["lolo-0", "lolo-1", "lolo-2"]
        for pr in protos:
            cw, rs = pick(rows, pr, "drsn-cw"), pick(rows, pr, "res")
            if not cw or not rs:
                continue
            conds = [("clean", None)] + [(k, s) for k in noise.KINDS for s in fit.EVAL_SNRS]
            for kind, snr in conds:
                get = (lambda r: r["clean"]) if kind == "clean" else (lambda r, k=kind, s=snr: acc_at(r, k, s))
                d = np.mean([get(r) for r in cw]) - np.mean([get(r) for r in rs])
                diffs.append(d)
                if d > 0.0005:
                    cw_wins += 1
                elif d < -0.0005:
                    res_wins += 1
                else:
                    ties += 1
        if diffs:
            lines.append(f"- {title}: DRSN-CW ahead of ResNet in {cw_wins} cells, behind in {res_wins}, "
                         f"level in {ties} (mean difference {np.mean(diffs) * 100:+.2f} points)")
    return "\n".join(lines) + "\n"


def shipped(out_dir: str) -> str:
    """The shipped model's own held-out figures, from its manifest."""
    path = os.path.join(out_dir, "drsn-cw-cwru10.json")
    if not os.path.exists(path):
        return "(no shipped model manifest)\n"
    m = json.load(open(path))
    met, tr = m["metrics"], m["training"]
    rows = ["| noise | -4 dB | -2 dB | 0 dB | 2 dB | 4 dB |", "|---|---|---|---|---|---|"]
    for kind, accs in met["accuracy_noisy"].items():
        rows.append(f"| {kind} | " + " | ".join(f"{accs[str(s)] * 100:.2f}" for s in fit.EVAL_SNRS) + " |")
    ort = met["onnxruntime_ms_per_frame"]
    return (f"`{m['name']}` {m['version']}: {tr['recipe']} ({tr['steps']} steps, {tr['seconds'] / 60:.1f} min on "
            f"{tr['threads']} threads), one seed. Held-out last 20 % ({met['test_frames']} frames): "
            f"clean {met['accuracy_clean'] * 100:.2f} %.\n\n" + "\n".join(rows) +
            f"\n\nonnxruntime, one thread: {ort['batch_1']} ms/frame at batch 1, {ort['batch_16']} at batch 16 "
            "(tract beside it: BENCHMARKS.md, from `bench/run.sh --steps model`).\n")


def render(rows, args, wall) -> str:
    seeds = sorted({r["seed"] for r in rows})
    return f"""# Results: ConvNet vs ResNet vs DRSN-CS vs DRSN-CW on CWRU under noise

Generated by `python -m drsn_train table --steps {args.steps} --seeds {args.seeds}`
(`scripts/model-table.sh`); do not edit by hand. Machine: {platform.machine()},
{os.cpu_count()} cores, torch {torch.__version__}; {len(rows)} runs in {wall / 60:.1f} min
with {args.workers} workers (each run on one thread). Seeds: {seeds}.

Task: 10 classes (Normal, B/IR/OR6 at 7/14/21 mils), 12 kHz drive end, loads
0-2 hp; frames of 2048 samples. Every recording is split by time: first 80 %
train, last 20 % test (frames at hop 256, none straddling the cut). Each run
trains {args.steps} steps of 64 class-balanced frames, time-stretched by up to
±4 % and tilted by a random smooth spectral gain (N(0, {data.TrainSampler.EQ_DB} dB) at
{data.EQ_KNOTS} frequencies; why: models/README.md). Noise is added per frame
at the stated SNR (noise power = frame power / 10^(SNR/10)) with fixed seeds.
All four models share stem, layout, head and training; only the unit differs.

## The shipped model
{shipped(args.out)}
The tables below train every variant for {args.steps} steps (a tenth of the
shipped model's budget) so that 60 runs fit in the time limit; they compare
the units, not the final accuracy.

## Verdict: does shrinkage win? (computed from the tables below)
{verdict(rows)}
## 1. Trained with noise, tested on the held-out 20 %
Training noise: per frame clean (p=0.36) or Gaussian/Laplacian/pink at SNR U{fit.TRAIN_SNR} dB.
{noise_tables(rows, "noisy")}
## 2. Trained clean, tested noisy (WDCNN protocol)
For scale, WDCNN (Zhang et al. 2017) reports 51.75 % at -4 dB and 82.03 % at
0 dB with Gaussian noise on CWRU under this protocol.
{noise_tables(rows, "clean")}
## 3. Leave one load out (trained with noise on the two other loads)
The healthy baseline exists only at 0 hp, so its time split is used in every fold.

{lolo_table(rows)}
## 4. Confusion matrices at 0 dB (DRSN-CW, trained with noise, seed 0)
{confusion(rows)}
## 5. Training time
{timing(rows)}"""
