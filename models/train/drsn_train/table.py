"""The comparison behind models/RESULTS.md: protocols x seeds, each run one
DRSN-CW (and, for the main protocol, a ResNet) with both heads.

Protocols (what each trains on and tests on):
  all        train on the first 80 % of every recording of both rigs; test on
             the last 20 % (CWRU 10-class fine table, family on both rigs)
  loso-28    train without any 28-mil recording; test on all of them, whole
  lopo       train without the OR@3 and OR@12 recordings; test on them, whole
  cwru-only  train on CWRU only; test on all of UESTC, whole
  uestc-only train on UESTC only; test on all of CWRU, whole
  loss-R     train on CWRU + UESTC without speed R rpm; test on UESTC at R, whole
Results are cached in models/work/results-2.json so an interrupted run resumes.
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

NAMES = {"conv": "ConvNet", "res": "ResNet", "drsn-cs": "DRSN-CS", "drsn-cw": "DRSN-CW"}
SPEEDS = (800, 1000, 1200, 1400)
PROTOCOLS = ["all", "loso-28", "lopo", "cwru-only", "uestc-only", *[f"loss-{s}" for s in SPEEDS]]
SHORT_SNRS = (-4, 0)


def summary_line(m: dict) -> str:
    parts = [f"fine clean {m['clean'] * 100:.2f}%" if m["clean"] is not None else "no fine classes"]
    fam = m["family"]
    parts.append(f"family clean {fam['clean']['family'] * 100:.2f}%")
    for kind in noise.KINDS:
        if -4 in fam["noisy"][kind]:
            parts.append(f"{kind} -4dB family {fam['noisy'][kind][-4]['family'] * 100:.2f}%")
    return "; ".join(parts)


def _is_28(r):
    return r.fault.endswith("_28")


def _is_op(r):
    return r.fault.startswith(("OR3_", "OR12_"))


def split_for(protocol: str, cwru: list, uestc: list):
    """(train recordings, [(test name, recordings, whole?, hop)])."""
    both = cwru + uestc
    if protocol == "all":
        ten = [r for r in cwru if r.label != data.NO_CLASS]
        return both, [("cwru10", ten, False, 256), ("cwru", cwru, False, 512),
                      ("uestc", uestc, False, 512)]
    if protocol == "loso-28":
        return [r for r in both if not _is_28(r)], [("cwru-28", [r for r in cwru if _is_28(r)], True, 512)]
    if protocol == "lopo":
        return [r for r in both if not _is_op(r)], [("cwru-or3-or12", [r for r in cwru if _is_op(r)], True, 512)]
    if protocol == "cwru-only":
        return cwru, [("uestc", uestc, True, 1024)]
    if protocol == "uestc-only":
        return uestc, [("cwru", cwru, True, 512)]
    if protocol.startswith("loss-"):
        rpm = int(protocol.split("-")[1])
        return ([r for r in both if r.rpm != rpm or r.rig != "uestc"],
                [(f"uestc-{rpm}", [r for r in uestc if r.rpm == rpm], True, 512)])
    raise ValueError(f"unknown protocol {protocol!r}")


def run_key(r: dict) -> tuple:
    """What makes two cached runs the same run (older caches carry no stretch)."""
    return r["protocol"], r["arch"], r["seed"], r["steps"], r.get("stretch", fit.STRETCH)


def run_job(job: tuple) -> dict:
    protocol, arch, seed, steps, stretch, cwru_dir, uestc_dir = job
    torch.set_num_threads(1)
    cwru = data.load_cwru(cwru_dir, everything=True)
    uestc = data.load_uestc(uestc_dir)
    train_recs, tests = split_for(protocol, cwru, uestc)
    net, seconds = fit.train(arch, train_recs, seed, steps, stretch=stretch)
    out = {"protocol": protocol, "arch": arch, "seed": seed, "steps": steps, "stretch": stretch,
           "seconds": seconds, "tests": {}}
    for name, recs, whole, hop in tests:
        x, y, f = data.test_frames(recs, hop=hop, whole=whole, families=True)
        snrs = fit.EVAL_SNRS if protocol == "all" else SHORT_SNRS
        m = fit.evaluate(net, x, y, f, seed=seed, snrs=snrs)
        m["frames"] = int(len(y))
        out["tests"][name] = m
        print(f"[{time.strftime('%H:%M:%S')}] {protocol} {arch} seed {seed} on {name}: "
              f"{summary_line(m)} ({seconds:.0f} s)", flush=True)
    return out


def cmd_table(args) -> None:
    work = os.path.join(args.out, "work")
    os.makedirs(work, exist_ok=True)
    cache = os.path.join(work, "results-2.json")
    done = json.load(open(cache)) if os.path.exists(cache) else []
    have = {run_key(r) for r in done}
    protocols = args.protocols.split(",")
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise SystemExit(f"table: unknown protocol(s) {', '.join(unknown)}; known: {', '.join(PROTOCOLS)}")
    jobs = [(p, a, s, args.steps, args.stretch, args.data, args.uestc)
            for p in protocols for a in (("drsn-cw", "res") if p == "all" else ("drsn-cw",))
            for s in range(args.seeds) if (p, a, s, args.steps, args.stretch) not in have]
    print(f"{len(jobs)} runs to do, {len(have)} cached", flush=True)
    t0 = time.time()
    with get_context("spawn").Pool(args.workers) as pool:
        for r in pool.imap_unordered(run_job, jobs):
            done.append(r)
            with open(cache, "w") as f:
                json.dump(done, f)
    wall = time.time() - t0
    suffix = "" if args.stretch == fit.STRETCH else f"-stretch{args.stretch:g}"
    wall_file = os.path.join(work, f"wall-2-{args.steps}{suffix}.json")
    if jobs:
        prior = json.load(open(wall_file))["seconds"] if os.path.exists(wall_file) and have else 0.0
        wall += prior
        json.dump({"seconds": wall}, open(wall_file, "w"))
    elif os.path.exists(wall_file):
        wall = json.load(open(wall_file))["seconds"]
    rows = [r for r in done if run_key(r)[3:] == (args.steps, args.stretch) and r["protocol"] in protocols]
    path = os.path.join(args.out, args.results)
    with open(path, "w") as f:
        f.write(render(rows, args, wall))
    print(f"wrote {path} ({wall / 60:.1f} min)")


def _get(d: dict, snr):
    return d[str(snr)] if str(snr) in d else d[snr]


def cell(vals: list[float]) -> str:
    v = np.array([x for x in vals if x is not None]) * 100
    return f"{v.mean():.2f} ± {v.std():.2f}" if len(v) else "—"


def pick(rows, protocol, arch="drsn-cw"):
    return [r for r in rows if r["protocol"] == protocol and r["arch"] == arch]


def conditions(snrs) -> list:
    return [("clean", None)] + [(k, s) for k in noise.KINDS for s in snrs]


def fine_at(m, kind, snr):
    return m["clean"] if kind == "clean" else _get(m["noisy"][kind], snr)


def family_at(m, kind, snr, key="family"):
    fam = m["family"]
    return fam["clean"][key] if kind == "clean" else _get(fam["noisy"][kind], snr)[key]


def fine_tables(rows) -> str:
    if not pick(rows, "all"):
        return ""
    out = []
    for kind in noise.KINDS:
        out.append(f"\n**{kind.capitalize()} noise**: fine class accuracy %, CWRU 10 classes, "
                   "held-out 20 %, mean ± std over seeds\n")
        out.append("| model | " + " | ".join(f"{s} dB" for s in fit.EVAL_SNRS) + " | clean |")
        out.append("|---" * (len(fit.EVAL_SNRS) + 2) + "|")
        for arch in ("res", "drsn-cw"):
            ms = [r["tests"]["cwru10"] for r in pick(rows, "all", arch)]
            cells = [cell([fine_at(m, kind, s) for m in ms]) for s in fit.EVAL_SNRS]
            out.append(f"| {NAMES[arch]} | " + " | ".join(cells) + f" | {cell([m['clean'] for m in ms])} |")
    return "\n".join(out) + "\n"


def family_noise_table(rows, test: str) -> str:
    if not pick(rows, "all"):
        return ""
    out = [f"\nFamily accuracy %, {test}, held-out 20 %\n",
           "| model | noise | " + " | ".join(f"{s} dB" for s in fit.EVAL_SNRS) + " | clean |",
           "|---" * (len(fit.EVAL_SNRS) + 3) + "|"]
    for arch in ("res", "drsn-cw"):
        ms = [r["tests"][test] for r in pick(rows, "all", arch)]
        for kind in noise.KINDS:
            cells = [cell([family_at(m, kind, s) for m in ms]) for s in fit.EVAL_SNRS]
            out.append(f"| {NAMES[arch]} | {kind} | " + " | ".join(cells)
                       + f" | {cell([family_at(m, 'clean', None) for m in ms])} |")
    return "\n".join(out) + "\n"


def protocol_table(rows, protocols: list[str]) -> str:
    """Family accuracy and fault frames called normal per protocol, clean
    and at -4 / 0 dB per noise kind ("" if none of them ran)."""
    if not any(pick(rows, p) for p in protocols):
        return ""
    conds = conditions(SHORT_SNRS)
    head = " | ".join("clean" if k == "clean" else f"{k} {s} dB" for k, s in conds)
    out = [f"| protocol: tested on | measure | {head} |", "|---" * (len(conds) + 2) + "|"]
    for p in protocols:
        rs = pick(rows, p)
        if not rs:
            continue
        for test in rs[0]["tests"]:
            ms = [r["tests"][test] for r in rs]
            for key, what in (("family", "family accuracy"), ("called_normal", "fault frames called normal")):
                cells = [cell([family_at(m, k, s, key) for m in ms]) for k, s in conds]
                out.append(f"| {p}: {test} ({ms[0]['frames']} frames) | {what} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def verdict(rows) -> str:
    """DRSN-CW against ResNet, cell by cell (mean over seeds), computed."""
    lines = []
    for test, title, get in [("cwru10", "fine class, CWRU", fine_at),
                             ("cwru", "family, CWRU", family_at), ("uestc", "family, UESTC", family_at)]:
        cw = [r["tests"][test] for r in pick(rows, "all", "drsn-cw")]
        rs = [r["tests"][test] for r in pick(rows, "all", "res")]
        if not cw or not rs:
            continue
        diffs = [np.mean([get(m, k, s) for m in cw]) - np.mean([get(m, k, s) for m in rs])
                 for k, s in conditions(fit.EVAL_SNRS)]
        ahead = sum(d > 0.0005 for d in diffs)
        behind = sum(d < -0.0005 for d in diffs)
        lines.append(f"- {title}: DRSN-CW ahead of ResNet in {ahead} of {len(diffs)} cells, behind in "
                     f"{behind} (mean difference {np.mean(diffs) * 100:+.2f} points)")
    return "\n".join(lines) + "\n" if lines else ""


def timing(rows) -> str:
    s = [r["seconds"] for r in rows]
    return f"{np.mean(s):.0f} s per run on average (one thread), {len(rows)} runs.\n" if s else ""


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
    fam = ["| test | measure | clean | " + " | ".join(f"{k} {s} dB" for k in noise.KINDS for s in SHORT_SNRS) + " |",
           "|---" * (3 + len(noise.KINDS) * len(SHORT_SNRS)) + "|"]
    for test, d in [("CWRU 10 classes", met.get("family_cwru10"))] + list(met.get("family_held_out", {}).items()):
        if not d:
            continue
        for key, what in (("family", "family accuracy"), ("called_normal", "fault frames called normal")):
            vals = [d["clean"][key]] + [d[k][str(s)][key] for k in noise.KINDS for s in SHORT_SNRS]
            fam.append(f"| {test} | {what} | " + " | ".join("—" if v is None else f"{v * 100:.2f}" for v in vals) + " |")
    ort = met["onnxruntime_ms_per_frame"]
    return (f"`{m['name']}` {m['version']}: {tr['recipe']} ({tr['steps']} steps, {tr['seconds'] / 60:.1f} min on "
            f"{tr['threads']} threads), one seed, trained on the first 80 % of every recording of both rigs. "
            f"Held-out last 20 % of CWRU's 10 classes ({met['test_frames']} frames): fine class clean "
            f"{met['accuracy_clean'] * 100:.2f} %.\n\n" + "\n".join(rows) +
            "\n\nIts family head on the held-out 20 %, frames at hop 256 (CWRU 10 classes) or 512:\n\n"
            + "\n".join(fam) +
            f"\n\nonnxruntime, one thread: {ort['batch_1']} ms/frame at batch 1, {ort['batch_16']} at batch 16 "
            "(tract beside it: BENCHMARKS.md, from `bench/run.sh --steps model`).\n")


def options(args) -> str:
    """The table command's options that differ from the defaults."""
    out = "" if args.stretch == fit.STRETCH else f" --stretch {args.stretch:g}"
    return out + ("" if args.protocols == ",".join(PROTOCOLS) else f" --protocols {args.protocols}")


SECTIONS = [
    ("1. Unseen fault sizes and positions (leave one out)",
     "`loso-28`: trained without any 28-mil recording (B_28, IR_28 at 3 loads),\n"
     "tested on them whole. `lopo`: trained without OR@3 and OR@12, tested on them.\n",
     lambda rows: protocol_table(rows, ["loso-28", "lopo"])),
    ("2. Across rigs",
     "`cwru-only`: trained on CWRU only, tested on all of UESTC. `uestc-only`:\n"
     "trained on UESTC only, tested on all of CWRU. `loss-R`: trained on CWRU +\n"
     "UESTC without speed R, tested on UESTC at R.\n",
     lambda rows: protocol_table(rows, ["cwru-only", "uestc-only", *[f"loss-{s}" for s in SPEEDS]])),
    ("3. DRSN-CW against ResNet, both rigs (`all`)", "",
     lambda rows: verdict(rows) + fine_tables(rows) + family_noise_table(rows, "cwru")
     + family_noise_table(rows, "uestc")),
    ("4. Training time", "", timing),
]


def render(rows, args, wall) -> str:
    seeds = sorted({r["seed"] for r in rows})
    head = f"""# Results: the DRSN-CW family and fine heads, within and across rigs

Generated by `python -m drsn_train table --steps {args.steps} --seeds {args.seeds}{options(args)}`
(`scripts/model-table.sh`); do not edit by hand. Machine: {platform.machine()},
{os.cpu_count()} cores, torch {torch.__version__}; {len(rows)} runs in {wall / 60:.1f} min
with {args.workers} workers (each run on one thread). Seeds: {seeds}.

Data: `../shared/cwru` (drive end, 12 kHz, loads 0-2 hp; the 10 fine classes
Normal, B/IR/OR6 at 7/14/21 mils, plus B_28, IR_28, OR3_7/21 and OR12_7/21,
which only the family head learns) and `../shared/uestc` (another rig: other
bearing, sensor and mounting, no load, 800-1400 rpm, 20 kHz resampled to 12
kHz; family only). Frames of 2048 samples. Every recording is split by time:
the first 80 % trains, the last 20 % tests; a recording a protocol leaves out
is tested whole. Each run trains {args.steps} steps of 64 frames balanced over
(rig, family), time-stretched by up to ±{args.stretch * 100:g} % and tilted by a random smooth
spectral gain; loss: family cross-entropy + {fit.FINE_WEIGHT} x fine cross-entropy
(10-class frames only). Training noise per frame: clean (p=0.36) or
Gaussian/Laplacian/pink at SNR U{fit.TRAIN_SNR} dB. Test noise is added per
frame at the stated SNR with fixed seeds. "Fault frames called normal": the
share of frames of fault recordings whose family is `normal`.

## The shipped model
{shipped(args.out)}
The tables below train each run for {args.steps} steps (the shipped model
trains 20000) so that {len(rows)} runs fit in the time limit.
"""
    parts = [head]
    for title, intro, body in SECTIONS:
        text = body(rows)
        if text:
            parts.append(f"\n## {title}\n{intro}" + (f"\n{text}" if intro else text))
    return "".join(parts)
