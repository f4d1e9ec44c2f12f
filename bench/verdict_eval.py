#!/usr/bin/env python3
"""The verdict on a rig the judging network never saw (issue 34's honest
protocol), with the real binary: `drsnd classify --config --json`, the
stream's whole pipeline and monitor, as the daemon runs it.

- CWRU is judged with a network trained on UESTC only, UESTC with one
  trained on CWRU only (`python -m drsn_train train --rig uestc|cwru`, kept
  out of the shipped models; `--judges` is where they are).
- Each machine's baseline is learned from its own healthy recording with
  the judging network (CWRU: the first half of 1797_Normal_48k; UESTC:
  N_<rpm>_1 and _2) by `drsnd baseline learn` with the bearing, so that it
  holds the healthy envelope too (CWRU's 2 s are too short for that).
- Each fault recording is replayed healthy -> recording -> healthy (the
  healthy test part: CWRU the second half of 1797_Normal_48k, UESTC
  N_<rpm>_3), with the nominal rpm set -3, 0 and +3 % off the recording's,
  with the bearing (CWRU: the 6205's orders; UESTC: the orders estimated in
  docs/monitoring.md by bench/uestc_orders.py, and its speed range ±12 %)
  and without it.
- The verdict is the machine state the monitor reaches during the
  recording (its events): `right` (fault of the recording's family),
  `unknown` (fault(unknown) or anomaly: an alarm that names no family),
  `wrong` (another family), `missed` (no alarm). Beside it, the network
  alone (the family most of the recording's frames name; `normal` is a
  miss) and the envelope alone (the family most of its windows name).
- The healthy recordings replayed alone count false alarms.

Usage: models/.venv/bin/python bench/verdict_eval.py [--drsnd target/release/drsnd]
       [--judges models/work/honest] [--rigs cwru,uestc] [--parts 1,3,5]
Prints the tables docs/monitoring.md quotes ("The verdict").
"""
import argparse
import collections
import concurrent.futures
import json
import os
import subprocess
import tempfile

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))
ORDERS = {"cwru": (3.5848, 5.4152, 2.357, 0.39828), "uestc": (3.01, 4.92, 2.07, 0.385)}
# Where the real speed may be, relative to the nominal one: CWRU the default
# (±5 %); UESTC's speeds sit -2.5 to +8 % from the ones its file names give
# (bench/uestc_orders.py), so its "drive" is given ±12 %.
SPAN = {"cwru": None, "uestc": 0.12}
FAMILIES = {"B": "ball", "IR": "inner", "I": "inner", "O": "outer",
            "OR3": "outer", "OR6": "outer", "OR12": "outer"}
OFFSETS = (-0.03, 0.0, 0.03)
# 10.22 mV per m/s² (../shared/uestc/README.md) in mV/g.
UESTC_SENSITIVITY = 10.22 * 9.80665


def read(path):
    rate, x = wavfile.read(path)
    return rate, x.astype(np.float32)


def write(path, rate, x):
    wavfile.write(path, rate, np.asarray(x, dtype=np.float32))
    return path


class Case:
    """One fault recording on one machine."""

    def __init__(self, rig, machine, name, family, rpm, x, rate, excluded):
        self.rig, self.machine, self.name, self.family = rig, machine, name, family
        self.rpm, self.x, self.rate, self.excluded = rpm, x, rate, excluded


def cwru(parts):
    """(machines: name -> (rate, learn, healthy test)), cases."""
    rate, h = read(os.path.join(SHARED, "cwru", "1797_Normal_48k.wav"))
    h = resample_poly(h, 1, 4).astype(np.float32)  # 48 -> 12 kHz
    half = len(h) // 2
    machines = {"cwru": (12000, h[:half], h[half:], 1797)}
    cases = []
    for f in sorted(os.listdir(os.path.join(SHARED, "cwru"))):
        if "Normal" in f or not f.endswith(".wav"):
            continue
        rpm, kind, size = f[:-4].split("_")
        r, x = read(os.path.join(SHARED, "cwru", f))
        # Undiagnosable by envelope (Smith & Randall), or another make's bearing.
        excluded = size == "28" or (kind == "OR6" and size == "14")
        cases.append(Case("cwru", "cwru", f[:-4], FAMILIES[kind], float(rpm), x, r, excluded))
    return machines, cases


def uestc(parts):
    machines, cases = {}, []
    d = os.path.join(SHARED, "uestc")
    for rpm in (800, 1000, 1200, 1400):
        rate, a = read(os.path.join(d, f"N_{rpm}_1.wav"))
        _, b = read(os.path.join(d, f"N_{rpm}_2.wav"))
        _, t = read(os.path.join(d, f"N_{rpm}_3.wav"))
        machines[f"uestc-{rpm}"] = (rate, np.concatenate([a, b]), t[: 6 * rate], rpm)
        for kind in ("B", "I", "O"):
            for p in parts:
                _, x = read(os.path.join(d, f"{kind}_{rpm}_{p}.wav"))
                cases.append(Case("uestc", f"uestc-{rpm}", f"{kind}_{rpm}_{p}", FAMILIES[kind],
                                  float(rpm), x, rate, False))
    return machines, cases


def config(path, model, state, wav, rig, rpm, bearing):
    units = 'units = "g"' if rig == "cwru" else f'units = "V"\nsensitivity = {UESTC_SENSITIVITY:.2f}'
    o = ORDERS[rig]
    span = SPAN[rig]
    geometry = (f"rpm = {rpm:.1f}\nbearing = {{ bpfo = {o[0]}, bpfi = {o[1]}, bsf = {o[2]}, ftf = {o[3]} }}\n"
                + (f"rpm-range = [{rpm * (1 - span):.1f}, {rpm * (1 + span):.1f}]\n" if span else "")
                if bearing else "")
    with open(path, "w") as f:
        f.write(f'model = "{model}"\n[monitor]\nstate-dir = "{state}"\n'
                f'[[source]]\nkind = "wav"\npath = "{wav}"\nstreams = ["m"]\n{units}\n{geometry}')
    return path


def run(drsnd, cfg, wav):
    out = subprocess.run([drsnd, "classify", "--config", cfg, "--json", wav],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def majority(values):
    c = collections.Counter(v for v in values if v is not None)
    return c.most_common(1)[0][0] if c else None


def judge(lines, start, end, family):
    """(fused, first alarm s after start, network, envelope) for a recording at start..end s."""
    verdict, first = None, None
    state = None
    for m in lines:
        if m.get("type") != "event" or m["to"]["state"] == "iso-zone":
            continue
        t = m["stream_time_s"]
        if t > end:
            break
        state = m["to"]
        if t >= start and state["state"] in ("fault", "anomaly"):
            first = t - start if first is None else first
            verdict = state
    # A state raised before the recording started and still held counts too.
    if verdict is None and state and state["state"] in ("fault", "anomaly"):
        verdict, first = state, 0.0
    frames = [m for m in lines if m.get("type") == "frame" and start + 1.0 <= m["time"] <= end]
    net = majority(m.get("family") for m in frames)
    env = majority((m.get("envelope") or {}).get("family") for m in frames)

    def said(name):
        if name in (None, "normal", "none"):
            return "missed"
        return "right" if name == family else "wrong"

    if verdict is None:
        fused = "missed"
    elif verdict["state"] == "anomaly" or verdict.get("class") == "unknown":
        fused = "unknown"
    else:
        fused = said(verdict.get("class"))
    return fused, first, said(net), said(env) if env is not None else "missed"


def evaluate(args, rig, machines, cases, judge_model, work):
    states = {}
    for name, (rate, learn, _, _) in machines.items():
        state = os.path.join(work, name)
        os.makedirs(state, exist_ok=True)
        wav = write(os.path.join(work, f"{name}-learn.wav"), rate, learn)
        # With the bearing: the baseline learns the envelope on the healthy machine too.
        units = ["--units", "g"] if rig == "cwru" else ["--units", "V", "--sensitivity",
                                                        f"{UESTC_SENSITIVITY:.2f}"]
        rpm, span = machines[name][3], SPAN[rig]
        bearing = ["--rpm", str(rpm), "--bearing-orders", ",".join(map(str, ORDERS[rig]))]
        if span:
            bearing += ["--rpm-range", f"{rpm * (1 - span):.1f},{rpm * (1 + span):.1f}"]
        subprocess.run([args.drsnd, "baseline", "learn", "--model", judge_model, "--out",
                        os.path.join(state, "m.baseline.json"), *units, *bearing, wav],
                       check=True, capture_output=True)
        states[name] = state
    jobs = []
    for i, c in enumerate(cases):
        rate, _, healthy, _ = machines[c.machine]
        x = c.x if c.rate == rate else resample_poly(c.x, rate, c.rate).astype(np.float32)
        wav = write(os.path.join(work, f"case{i}.wav"), rate, np.concatenate([healthy, x, healthy]))
        start, end = len(healthy) / rate, (len(healthy) + len(x)) / rate
        for off in (*OFFSETS, None):
            cfg = config(os.path.join(work, f"case{i}-{off}.toml"), judge_model, states[c.machine], wav,
                         rig, c.rpm * (1 + (off or 0.0)), off is not None)
            jobs.append((c, off, cfg, wav, start, end))
    for name, (rate, _, healthy, rpm) in machines.items():
        wav = write(os.path.join(work, f"{name}-healthy.wav"), rate, healthy)
        for off in (*OFFSETS, None):
            cfg = config(os.path.join(work, f"{name}-healthy-{off}.toml"), judge_model, states[name], wav,
                         rig, rpm * (1 + (off or 0.0)), off is not None)
            jobs.append((None, off, cfg, wav, name, None))

    def one(job):
        c, off, cfg, wav, start, end = job
        lines = run(args.drsnd, cfg, wav)
        if c is None:
            alarms = [m for m in lines if m.get("type") == "event" and m["to"]["state"] in ("fault", "anomaly")]
            return job, len(alarms)
        return job, judge(lines, start, end, c.family)

    with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
        return list(pool.map(one, jobs))


def report(rig, judge_name, results):
    print(f"\n### {rig.upper()}, judged by `{judge_name}` (never trained on {rig.upper()})\n")
    healthy = [(job[1], n) for job, n in results if job[0] is None]
    runs = [(job[0], job[1], r) for job, r in results if job[0] is not None]
    print(f"Healthy replays: {sum(n for _, n in healthy)} alarms in {len(healthy)} runs.\n")
    print("| family | geometry | recordings | fused: right / unknown / wrong / missed | network alone: "
          "right / wrong / missed | envelope alone: right / wrong / none | alarm within 2 s |")
    print("|---|---|---|---|---|---|---|")
    for fam in ("inner", "outer", "ball"):
        for geo in (True, False):
            sel = [(c, r) for c, off, r in runs if c.family == fam and (off is not None) == geo]
            if not sel:
                continue
            f = collections.Counter(r[0] for _, r in sel)
            n = collections.Counter(r[2] for _, r in sel)
            e = collections.Counter(r[3] for _, r in sel)
            fast = sum(1 for _, r in sel if r[1] is not None and r[1] <= 2.0)
            env = f"{e['right']} / {e['wrong']} / {e['missed']}" if geo else "-"
            print(f"| {fam} | {'yes (3 offsets)' if geo else 'no'} | {len(sel)} | {f['right']} / {f['unknown']} / "
                  f"{f['wrong']} / {f['missed']} | {n['right']} / {n['wrong']} / {n['missed']} | {env} | "
                  f"{fast} of {len(sel)} |")
    for geo in (True, False):
        sel = [(c, r) for c, off, r in runs if (off is not None) == geo]
        races = [r for c, r in sel if c.family != "ball" and not c.excluded]
        right = sum(r[0] == "right" for r in races)
        wrong = sum(r[0] == "wrong" for _, r in sel)
        net_wrong = sum(r[2] == "wrong" for _, r in sel)
        print(f"\n{'With' if geo else 'Without'} geometry: race faults named right "
              f"{right} of {len(races)} ({100 * right / max(1, len(races)):.0f} %, OR6_14 and 28-mil not counted); "
              f"wrong family {wrong} of {len(sel)} fault runs ({100 * wrong / max(1, len(sel)):.1f} %; "
              f"the network alone: {net_wrong}, {100 * net_wrong / max(1, len(sel)):.1f} %).")
    for c, off, r in runs:
        if r[0] == "wrong":
            print(f"- wrong: {c.name} at nominal {off if off is None else f'{off:+.0%}'}: network {r[2]}, envelope {r[3]}")
    missed = collections.defaultdict(list)
    for c, off, r in runs:
        if off is not None and c.family != "ball" and not c.excluded and r[0] != "right":
            missed[c.name].append(f"{off:+.0%}")
    if missed:
        print("- race faults not named, with geometry: "
              + "; ".join(f"{name} at {', '.join(offs)}" for name, offs in sorted(missed.items())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drsnd", default=os.path.join(ROOT, "target/release/drsnd"))
    ap.add_argument("--judges", default=os.path.join(ROOT, "models/work/honest"))
    ap.add_argument("--rigs", default="cwru,uestc")
    ap.add_argument("--parts", default="1,3,5", help="UESTC parts replayed per condition")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    parts = [int(p) for p in args.parts.split(",")]
    for rig in args.rigs.split(","):
        other = "uestc" if rig == "cwru" else "cwru"
        judge_name = f"judge-{other}-only"
        model = os.path.join(args.judges, f"{judge_name}.json")
        if not os.path.exists(model):
            raise SystemExit(f"{model}: train it with `python -m drsn_train train --rig {other} "
                             f"--name {judge_name} --out {args.judges}` (models/train)")
        machines, cases = (cwru if rig == "cwru" else uestc)(parts)
        with tempfile.TemporaryDirectory() as work:
            report(rig, judge_name, evaluate(args, rig, machines, cases, model, work))


if __name__ == "__main__":
    main()
