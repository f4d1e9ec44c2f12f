"""models/RESULTS-denoise.md: the DRSN denoiser against wavelet shrinkage
and against the same network without shrinkage, on the held-out 20 % of
both rigs. Every trained row is 3 seeds; results are cached per run in
models/work/denoise/ so an interrupted table resumes."""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from . import noise
from .denoise_fit import EVAL_SNRS, HOP, evaluate, load_rig
from .data import FRAME
from .denoiser import KERNEL, STRIDE

RIGS = ("cwru", "uestc")
RIG_NAMES = {"cwru": "CWRU (12 kHz, 46 recordings)", "uestc": "UESTC (20 kHz resampled to 12 kHz, 80 recordings)"}


def rigs_from(shared: str) -> dict:
    return {r: load_rig(os.path.join(shared, r)) for r in RIGS}


def _tests(rig) -> list:
    return [(n, te) for n, _, te in rig]


def _train_parts(rigs: dict) -> list:
    return [[tr for _, tr, _ in rigs[r]] for r in RIGS]


# Variants, one seed each, beside the 3-seed rows' recipe (the shipped one:
# 64 channels, transform 32/16, 12000 steps): quality against cost.
VARIANTS = (
    ("32 channels, transform 16/8 (model 1.0.0)", {"steps": 3000}),
    ("48 channels, transform 32/16", {"channels": 48, "kernel": 32, "stride": 16, "steps": 3000}),
    ("64 channels, transform 32/16", {"channels": 64, "kernel": 32, "stride": 16, "steps": 3000}),
    ("32 channels, transform 16/8, 6 units", {"units": 6, "steps": 3000}),
    ("32 channels, transform 16/8, band loss added (16 bands of 375 Hz)", {"loss": "snr+bands",
                                                                           "steps": 3000}),
)


def run_one(job: dict) -> dict:
    """One trained row for one seed: train, evaluate on both rigs."""
    import torch

    from . import denoise_fit
    from .denoiser import macs_per_frame

    torch.set_num_threads(job["threads"])
    rigs = rigs_from(job["shared"])
    net, seconds = denoise_fit.train(job["arch"], _train_parts(rigs), job["seed"], job["steps"],
                                     job["channels"], job["units"], kernel=job["kernel"],
                                     stride=job["stride"], loss_kind=job["loss"])
    res = {k: job[k] for k in ("arch", "channels", "units", "kernel", "stride", "loss", "seed", "steps")}
    res.update(train_seconds=round(seconds, 1), macs=macs_per_frame(net))
    for r in RIGS:
        res[r] = evaluate(lambda x: denoise_fit.denoise_signal(net, x), _tests(rigs[r]))
    path = job["path"]
    with open(path, "w") as f:
        json.dump(res, f)
    torch.save(net.state_dict(), path[: -len(".json")] + ".pt")
    return res


def job_for(shared: str, cache: str, seed: int, steps: int, threads: int, arch: str = "drsn",
            channels: int = 32, units: int = 4, kernel: int = KERNEL, stride: int = STRIDE,
            loss: str = "snr") -> dict:
    tag = f"{arch}-c{channels}-u{units}-k{kernel}s{stride}-{loss}-s{seed}-{steps}"
    return {"shared": shared, "arch": arch, "channels": channels, "units": units, "kernel": kernel,
            "stride": stride, "loss": loss, "seed": seed, "steps": steps, "threads": threads,
            "path": os.path.join(cache, tag + ".json")}


def oracle_lengths(rigs: dict, cache: str, lengths=(32, 64, 128, 256, 1024, 2048)) -> dict:
    """The oracle mask at other STFT lengths, every noise kind: the bound
    depends on the resolution, so the acceptance check takes the best."""
    from .denoise_fit import oracle

    path = os.path.join(cache, "oracle-lengths-2.json")
    if not os.path.exists(path):
        out = {r: {str(n): oracle(_tests(rigs[r]), n)["improvement"] for n in lengths} for r in RIGS}
        with open(path, "w") as f:
            json.dump(out, f)
    with open(path) as f:
        return json.load(f)


def best_wavelet(wave: dict, rig: str, kind: str, snr: int) -> float:
    """The better of VisuShrink and BayesShrink in one cell."""
    return max(w[rig]["improvement"][kind][str(snr)] for w in wave.values())


def best_bound(lengths: dict, rig: str, kind: str, snr: int) -> tuple[float, str]:
    """The highest oracle gain over the STFT lengths, and that length."""
    return max((by_kind[kind][str(snr)], n) for n, by_kind in lengths[rig].items())


def wavelet_rows(rigs: dict, cache: str) -> dict:
    from . import wavelet

    path = os.path.join(cache, "wavelet.json")
    if not os.path.exists(path):
        out = {}
        for rule in wavelet.RULES:
            out[rule] = {r: evaluate(lambda x, rule=rule: wavelet.shrink(x, rule), _tests(rigs[r]))
                         for r in RIGS}
        with open(path, "w") as f:
            json.dump(out, f)
    with open(path) as f:  # keys as JSON has them (SNRs as strings), as for the trained rows
        return json.load(f)


def _denoiser_manifest(models_dir: str) -> dict:
    with open(os.path.join(models_dir, "drsn-denoise.json")) as f:
        return json.load(f)


def shipped_row(rigs: dict, models_dir: str, cache: str) -> dict:
    """The shipped denoiser itself (its ONNX in onnxruntime), evaluated as
    the trained rows are: the model users get, whatever the seeds' recipe."""
    import onnxruntime as ort

    from .denoise_fit import denoise_signal

    m = _denoiser_manifest(models_dir)
    path = os.path.join(cache, f"shipped-{m['sha256'][:16]}.json")
    if not os.path.exists(path):
        sess = ort.InferenceSession(os.path.join(models_dir, m["onnx"]), providers=["CPUExecutionProvider"])

        def run(frames):
            return sess.run([m["denoised_output"]], {"signal": frames[:, None, :].astype(np.float32)})[0][:, 0, :]

        res = {"version": m["version"], "recipe": m["training"]["recipe"],
               "train_seconds": m["training"]["seconds"]}
        for r in RIGS:
            res[r] = evaluate(lambda x: denoise_signal(run, x), _tests(rigs[r]))
        with open(path, "w") as f:
            json.dump(res, f)
    with open(path) as f:
        return json.load(f)


def classifier_rows(models_dir: str, cwru_dir: str, cache: str) -> dict:
    """The shipped classifier on raw and on denoised input (the shipped
    denoiser, overlap-added as in the daemon), CWRU held-out 20 %, frames at
    hop 1024: is it better to classify the cleaned signal?"""
    import onnxruntime as ort

    from . import data
    from .denoise_fit import denoise_signal, noisy_copy

    sha = _denoiser_manifest(models_dir)["sha256"]
    path = os.path.join(cache, f"classifier-{sha[:16]}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    cls = ort.InferenceSession(os.path.join(models_dir, "drsn-cw-cwru10.onnx"),
                               providers=["CPUExecutionProvider"])
    den = ort.InferenceSession(os.path.join(models_dir, "drsn-denoise.onnx"),
                               providers=["CPUExecutionProvider"])

    def denoise(frames):
        return den.run(["denoised"], {"signal": frames[:, None, :].astype(np.float32)})[0][:, 0, :]

    def accuracy(segments, labels):
        ok = n = 0
        for seg, y in zip(segments, labels):
            k = (len(seg) - FRAME) // 1024 + 1
            fr = np.stack([seg[i * 1024: i * 1024 + FRAME] for i in range(k)]).astype(np.float32)
            p = cls.run(["probs"], {"signal": fr[:, None, :]})[0]
            ok += int((p.argmax(axis=1) == y).sum())
            n += k
        return ok / n

    recs = data.load_cwru(cwru_dir)
    out = {}
    for cond, kind, snr in (("clean", None, None), ("gaussian -4 dB", "gaussian", -4),
                            ("gaussian 0 dB", "gaussian", 0), ("pink -4 dB", "pink", -4)):
        segs = [r.test if kind is None else
                noisy_copy(r.test, kind, snr, (11, noise.KINDS.index(kind), snr + 100, i))
                for i, r in enumerate(recs)]
        labels = [r.label for r in recs]
        out[cond] = {"raw": accuracy(segs, labels),
                     "denoised": accuracy([denoise_signal(denoise, s) for s in segs], labels)}
    with open(path, "w") as f:
        json.dump(out, f)
    return out


def cell(rows: list[dict], rig: str, kind: str, snr: int) -> tuple[float, float]:
    v = [row[rig]["improvement"][kind][str(snr)] for row in rows]
    return float(np.mean(v)), float(np.std(v))


def worst(rows: list[dict], rig: str, kind: str, snr: int) -> float:
    return min(row[rig]["worst_recording"][kind][str(snr)] for row in rows)


MAIN = ("DRSN denoiser", "ReLU instead of soft thresholding")


def variant_lines(trained: dict[str, list[dict]], steps: int) -> list[str]:
    """Quality against cost: the shipped recipe's seed 0 beside each variant."""
    cols = [(r, k, s) for r in RIGS for k, s in (("gaussian", -4), ("gaussian", 0), ("gaussian", 4),
                                                   ("pink", -4))]
    L = ["## Variants tried (one seed each)", "",
         "Seed 0 of each, 3000 steps unless the name says more; the first row is seed 0 of the "
         f"3-seed rows above ({steps} steps). Cost in "
         "multiply-accumulates of the convolutions per frame (the daemon denoises one frame every "
         f"{HOP} samples); tract's time per call is in docs/denoise.md.", "",
         "| variant | MACs per frame | training, min | "
         + " | ".join(f"{r} {k} {s:+d} dB" for r, k, s in cols) + " |",
         "|---|---:|---:|" + "---:|" * len(cols)]
    rows = [("the 3-seed rows' recipe", trained["DRSN denoiser"][0])] if "DRSN denoiser" in trained else []
    rows += [(name, runs[0]) for name, runs in trained.items() if name not in MAIN]
    for name, row in rows:
        macs = f"{row['macs'] / 1e6:.1f} M" if "macs" in row else "-"
        L.append(f"| {name} | {macs} | {row['train_seconds'] / 60:.1f} | " + " | ".join(
            f"{row[r]['improvement'][k][str(s)]:+.2f}" for r, k, s in cols) + " |")
    return L + [""]


def length_lines(lengths: dict) -> list[str]:
    ns = list(next(iter(lengths.values())))
    L = ["## The oracle mask at other STFT lengths", "",
         "The bound in the tables above uses an STFT of 256. The oracle's gain depends on the "
         "resolution: short windows follow UESTC's impacts better. The acceptance check below "
         "takes the best length for each cell.", "",
         "| rig | noise | " + " | ".join(f"STFT {n}" for n in ns) + " |",
         "|---|---|" + "---:|" * len(ns)]
    for rig, by_n in lengths.items():
        for k in noise.KINDS:
            for snr in EVAL_SNRS:
                L.append(f"| {rig} | {k} {snr:+d} dB | "
                         + " | ".join(f"{by_n[n][k][str(snr)]:+.2f}" for n in ns) + " |")
    return L + [""]


def acceptance_line(rows: list[dict], rig: str, wave: dict) -> str:
    margins, met = [], 0
    for k in noise.KINDS:
        for s in EVAL_SNRS:
            margins.append((cell(rows, rig, k, s)[0] - best_wavelet(wave, rig, k, s), k, s))
            met += margins[-1][0] >= 5
    m, k, s = min(margins)
    lo = min(worst(rows, rig, k2, s2) for k2 in noise.KINDS for s2 in EVAL_SNRS)
    tr = min(r[rig]["transparency_db"] for r in rows)
    return (f"over the best wavelet by at least {m:+.2f} dB (smallest margin at {k} {s:+d} dB; "
            f"target +5, met in {met} of {len(margins)} cells); the worst single recording's "
            f"improvement {lo:+.2f} dB (target: never negative); transparency {tr:.1f} dB at worst "
            "(target 20).")


def render(wave: dict, trained: dict[str, list[dict]], steps: int, bound: dict,
           classifier: dict, lengths: dict, shipped: dict | None = None) -> str:
    L = ["# The DRSN denoiser: results", "",
         "Generated by `python -m drsn_train denoise-table` (scripts/denoise-table.sh); do not edit.", "",
         "SNR improvement = output SNR - input SNR in dB, against the recording, on the last 20 % "
         "by time of every recording of each rig (never trained on), noise added over the whole "
         "held-out part at a fixed seed; mean over the recordings. Trained rows: mean ± std over "
         f"3 seeds, {steps} steps each, the whole signal denoised frame by frame ({FRAME} samples, "
         f"hop {HOP}) and overlap-added as the daemon does. Wavelet: sym8, level 5, soft "
         "thresholds, noise from the MAD of the finest details; 'best wavelet' is the better of "
         "VisuShrink and BayesShrink in each cell, chosen on the test data itself (the strictest "
         "comparison for the network).", ""]
    checks = []
    for rig in RIGS:
        L += [f"## {RIG_NAMES[rig]}", "",
              "| method | " + " | ".join(f"{k} {s:+d} dB" for k in noise.KINDS for s in EVAL_SNRS)
              + " | clean: output vs input SNR |",
              "|---|" + "---:|" * (len(noise.KINDS) * len(EVAL_SNRS) + 1)]
        for rule, res in wave.items():
            L.append(f"| wavelet {rule} | " + " | ".join(
                f"{res[rig]['improvement'][k][str(s)]:+.2f}" for k in noise.KINDS for s in EVAL_SNRS)
                + f" | {res[rig]['transparency_db']:.1f} dB |")
        for name, rows in ((n, trained[n]) for n in MAIN if n in trained):
            L.append(f"| {name} | " + " | ".join(
                "{:+.2f} ± {:.2f}".format(*cell(rows, rig, k, s)) for k in noise.KINDS for s in EVAL_SNRS)
                + " | {:.1f} dB |".format(np.mean([r[rig]["transparency_db"] for r in rows])))
        if shipped:
            L.append(f"| shipped model {shipped['version']} | " + " | ".join(
                f"{shipped[rig]['improvement'][k][str(s)]:+.2f}" for k in noise.KINDS for s in EVAL_SNRS)
                + f" | {shipped[rig]['transparency_db']:.1f} dB |")
        L.append("| *bound: oracle ideal ratio mask (STFT 256; knows the clean signal)* | " + " | ".join(
            f"*{bound[rig]['improvement'][k][str(s)]:+.2f}*" for k in noise.KINDS for s in EVAL_SNRS) + " | |")
        short = [(k2, s2, *best_bound(lengths, rig, k2, s2)) for k2 in noise.KINDS for s2 in EVAL_SNRS
                 if best_wavelet(wave, rig, k2, s2) + 5 > best_bound(lengths, rig, k2, s2)[0]]
        if short:
            checks.append(f"- {rig}: in {len(short)} cell(s) the target (best wavelet + 5 dB) is above "
                          "even the best oracle mask over the STFT lengths: " + ", ".join(
                              f"{k2} {s2:+d} dB (oracle {b:+.2f} at {n})" for k2, s2, b, n in short) + ".")
        candidates = [("DRSN denoiser (3 seeds)", trained.get("DRSN denoiser"))]
        if shipped:
            candidates.append((f"shipped model {shipped['version']}", [shipped]))
        for label, rows in candidates:
            if rows:
                checks.append(f"- {rig}, {label}: " + acceptance_line(rows, rig, wave))
        L.append("")
    if "DRSN denoiser" in trained and "ReLU instead of soft thresholding" in trained:
        d, r = trained["DRSN denoiser"], trained["ReLU instead of soft thresholding"]
        wins = sum(cell(d, g, k, s)[0] > cell(r, g, k, s)[0]
                   for g in RIGS for k in noise.KINDS for s in EVAL_SNRS)
        total = len(RIGS) * len(noise.KINDS) * len(EVAL_SNRS)
        gap = np.mean([cell(d, g, k, s)[0] - cell(r, g, k, s)[0]
                       for g in RIGS for k in noise.KINDS for s in EVAL_SNRS])
        checks.append(f"- Soft thresholding against ReLU (same network, same training): the DRSN "
                      f"is better in {wins} of {total} cells, by {gap:+.2f} dB on average.")
    L += variant_lines(trained, steps) + length_lines(lengths)
    L += ["## The classifier on raw and on denoised input", "",
          "The shipped DRSN-CW classifier, CWRU held-out 20 % (10 classes), frames at hop 1024; "
          "denoised = the shipped denoiser over the whole segment, overlap-added as in the daemon.", "",
          "| input | raw | denoised |", "|---|---:|---:|"]
    for cond, r in classifier.items():
        L.append(f"| {cond} | {100 * r['raw']:.2f} % | {100 * r['denoised']:.2f} % |")
    L += ["", "## Acceptance, computed", ""] + checks + [""]
    secs = [r["train_seconds"] for name in MAIN for r in trained.get(name, [])]
    if secs:
        L += [f"Training took {np.mean(secs) / 60:.1f} min per run on average here (2 cores shared by "
              "two runs).", ""]
    return "\n".join(L)


def cmd_table(args) -> None:
    shared = os.path.abspath(os.path.join(args.data, ".."))
    cache = os.path.join(args.out, "work", "denoise")
    os.makedirs(cache, exist_ok=True)
    t0 = time.time()
    rigs = rigs_from(shared)
    wave = wavelet_rows(rigs, cache)
    lengths = oracle_lengths(rigs, cache)
    bound = {r: {"improvement": lengths[r]["256"]} for r in RIGS}  # the tables' bound row
    threads = max(1, args.threads // args.workers)
    variants = {"DRSN denoiser": "drsn", "ReLU instead of soft thresholding": "relu"}
    jobs, paths = [], {}
    for name, arch in variants.items():
        for seed in range(args.seeds):
            jobs.append(job_for(shared, cache, seed, args.steps, threads, arch, channels=args.channels,
                                units=args.units, kernel=args.kernel, stride=args.stride))
            paths.setdefault(name, []).append(jobs[-1]["path"])
    for name, kw in VARIANTS:
        kw = dict(kw)
        jobs.append(job_for(shared, cache, 0, kw.pop("steps"), threads, **kw))
        paths[name] = [jobs[-1]["path"]]
    # One run per path: a variant may be the 3-seed recipe's seed 0.
    jobs = list({j["path"]: j for j in jobs if not os.path.exists(j["path"])}.values())
    print(f"denoise-table: {len(jobs)} runs to train ({args.workers} at a time)", flush=True)
    with ProcessPoolExecutor(args.workers) as ex:
        for res in ex.map(run_one, jobs):
            print(f"  {res['arch']} C{res['channels']} seed {res['seed']}: {res['train_seconds']:.0f} s",
                  flush=True)
    trained = {}
    for name, ps in paths.items():
        trained[name] = []
        for p in ps:
            with open(p) as f:
                trained[name].append(json.load(f))
    classifier = classifier_rows(args.out, args.data, cache)
    shipped = shipped_row(rigs, args.out, cache)
    text = render(wave, trained, args.steps, bound, classifier, lengths, shipped)
    with open(os.path.join(args.out, "RESULTS-denoise.md"), "w") as f:
        f.write(text)
    print(text)
    print(f"denoise-table: {time.time() - t0:.0f} s", flush=True)
