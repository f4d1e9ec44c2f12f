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
from .denoise_fit import COLOURED_CELLS, EVAL_SNRS, HOP, MAIN_CELLS, evaluate, load_rig
from .data import FRAME
from . import denoiser
from .denoiser import KERNEL, STRIDE

RIGS = ("cwru", "uestc")
CELLS = MAIN_CELLS + COLOURED_CELLS
# Training noise (kinds, span: see noise.add_noise): the paper's three
# kinds made frame by frame (model 1.1.0); the same made over 2 s, as the
# test sets' and a stream's noise is; and with the coloured noise of a plant
# added (denoiser 2).
NOISE_MIX = {"paper": (noise.KINDS, 0), "paper-long": (noise.KINDS, 24000),
             "brown": (noise.KINDS + ("brown",), 24000), "plant": (noise.TRAIN_KINDS, 24000)}
RIG_NAMES = {"cwru": "CWRU (12 kHz, 46 recordings)", "uestc": "UESTC (20 kHz resampled to 12 kHz, 80 recordings)"}


def rigs_from(shared: str) -> dict:
    return {r: load_rig(os.path.join(shared, r)) for r in RIGS}


def _tests(rig) -> list:
    return [(n, te) for n, _, te in rig]


def _train_parts(rigs: dict) -> list:
    return [[tr for _, tr, _ in rigs[r]] for r in RIGS]


# Variants, one seed each at 3000 steps, beside the 3-seed rows' recipe:
# the levers of denoiser 2 one by one, from model 1.1.0's recipe.
_BASE = {"channels": 64, "kernel": 32, "stride": 16, "steps": 3000}
VARIANTS = (
    ("model 1.1.0's recipe (noise made frame by frame, the paper's kinds)", {**_BASE, "mix": "paper"}),
    ("noise made over 2 s, as a stream's", {**_BASE, "mix": "paper-long"}),
    ("+ DC gate", {**_BASE, "mix": "paper-long", "dc": True}),
    ("+ DC gate, brown noise in training", {**_BASE, "mix": "brown", "dc": True}),
    ("+ DC gate, brown and hum in training", {**_BASE, "mix": "plant", "dc": True}),
    ("+ DC gate, brown and hum, loss capped at 50 dB", {**_BASE, "mix": "plant", "dc": True,
                                                        "loss": "snr50"}),
    ("+ DC gate, brown and hum, SNR head passing clean frames", {**_BASE, "mix": "plant", "dc": True,
                                                                 "snr_head": True}),
    ("the same, gate and head reading the units' thresholds (2.1.0)", {**_BASE, "mix": "plant", "dc": True,
                                                                        "snr_head": True, "features": "taus"}),
)


def _frames(net, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Denoised frames and the SNR head's estimate (None without one)."""
    import torch

    with torch.no_grad():
        y, _, snr = net.run(torch.from_numpy(frames).unsqueeze(1))
    return y.squeeze(1).numpy(), None if snr is None else snr[:, 0].numpy()


def run_one(job: dict) -> dict:
    """One trained row for one seed: train, evaluate on both rigs."""
    import torch

    from . import denoise_fit
    from .denoiser import macs_per_frame

    torch.set_num_threads(job["threads"])
    rigs = rigs_from(job["shared"])
    kinds, span = NOISE_MIX[job["mix"]]
    body = job.get("body")
    if body and os.path.exists(body + ".pt"):
        # The same recipe without the head's refit ran before: its body is
        # this run's body (training is deterministic), so only the head is fitted.
        net = denoiser.load(body + ".pt", job["arch"], job["channels"], job["units"], job["kernel"],
                            job["stride"], job["floor"], job["dc"], job["snr_head"], job["features"])
        with open(body + ".json") as f:
            seconds = json.load(f)["train_seconds"]
        seconds += denoise_fit.refit_snr_head(net, _train_parts(rigs), job["seed"], kinds, span)
    else:
        net, seconds = denoise_fit.train(job["arch"], _train_parts(rigs), job["seed"], job["steps"],
                                         job["channels"], job["units"], kernel=job["kernel"],
                                         stride=job["stride"], loss_kind=job["loss"], floor=job["floor"],
                                         dc=job["dc"], snr_head=job["snr_head"], features=job["features"],
                                         kinds=kinds, span=span, refit_head=job["refit_head"])
    res = {k: job[k] for k in ("arch", "channels", "units", "kernel", "stride", "loss", "seed", "steps",
                               "floor", "dc", "snr_head", "features", "mix", "refit_head")}
    res.update(train_seconds=round(seconds, 1), macs=macs_per_frame(net))
    for r in RIGS:
        tests = _tests(rigs[r])
        res[r] = evaluate(lambda x: denoise_fit.denoise_signal(net, x), tests, CELLS)
        res[r]["snr_estimate"] = denoise_fit.snr_estimate_errors(
            lambda fr: _frames(net, fr), tests, CELLS)
    path = job["path"]
    with open(path, "w") as f:
        json.dump(res, f)
    torch.save(net.state_dict(), path[: -len(".json")] + ".pt")
    return res


def job_for(shared: str, cache: str, seed: int, steps: int, threads: int, arch: str = "drsn",
            channels: int = 32, units: int = 4, kernel: int = KERNEL, stride: int = STRIDE,
            loss: str = "snr", floor: bool = False, dc: bool = False, snr_head: bool = False,
            features: str = "floor", mix: str = "paper", refit_head: bool = False) -> dict:
    tag = (f"{arch}-c{channels}-u{units}-k{kernel}s{stride}-{loss}{'-floor' if floor else ''}"
           f"{'-dc' if dc else ''}{'-snrhead' if snr_head else ''}{'-taus' if features == 'taus' else ''}-{mix}"
           f"-s{seed}-{steps}")
    refit = refit_head and snr_head
    return {"shared": shared, "arch": arch, "channels": channels, "units": units, "kernel": kernel,
            "stride": stride, "loss": loss, "floor": floor, "dc": dc, "snr_head": snr_head,
            "features": features, "mix": mix, "seed": seed, "steps": steps, "threads": threads,
            "refit_head": refit, "body": os.path.join(cache, tag) if refit else None,
            "path": os.path.join(cache, tag + ("-refit" if refit else "") + ".json")}


def oracle_lengths(rigs: dict, cache: str, lengths=(32, 64, 128, 256, 1024, 2048)) -> dict:
    """The oracle mask at other STFT lengths, every cell: the bound depends
    on the resolution, so the acceptance check takes the best."""
    from .denoise_fit import oracle

    path = os.path.join(cache, "oracle-lengths-3.json")
    if not os.path.exists(path):
        out = {r: {str(n): oracle(_tests(rigs[r]), n, CELLS)["improvement"] for n in lengths} for r in RIGS}
        with open(path, "w") as f:
            json.dump(out, f)
    with open(path) as f:
        return json.load(f)


def best_bound(lengths: dict, rig: str, kind: str, snr: int) -> tuple[float, str]:
    """The highest oracle gain over the STFT lengths, and that length."""
    return max((by_kind[kind][str(snr)], n) for n, by_kind in lengths[rig].items())


def classic_gain(classics: dict, rig: str, method: str, kind: str, snr: int) -> float:
    return classics[rig][method]["cells"][f"{kind} {snr}"]["test_gain"]


def best_blind(classics: dict, rig: str, kind: str, snr: int) -> tuple[float, str]:
    """The best blind classic in one cell (each at its setting chosen on training data)."""
    from .classic import BLIND

    return max((classic_gain(classics, rig, m, kind, snr), m) for m in BLIND)


def _denoiser_manifest(models_dir: str) -> dict:
    with open(os.path.join(models_dir, "drsn-denoise.json")) as f:
        return json.load(f)


def shipped_row(rigs: dict, models_dir: str, cache: str) -> dict:
    """The shipped denoiser itself (its ONNX in onnxruntime), evaluated as
    the trained rows are: the model users get, whatever the seeds' recipe."""
    import onnxruntime as ort

    from .denoise_fit import denoise_signal, snr_estimate_errors

    m = _denoiser_manifest(models_dir)
    path = os.path.join(cache, f"shipped-{m['sha256'][:16]}-3.json")
    if not os.path.exists(path):
        sess = ort.InferenceSession(os.path.join(models_dir, m["onnx"]), providers=["CPUExecutionProvider"])
        names = [m["denoised_output"]] + ([m["snr_output"]] if "snr_output" in m else [])

        def both(frames):
            """Denoised frames and the model's SNR output (None without one)."""
            outs = sess.run(names, {"signal": frames[:, None, :].astype(np.float32)})
            return outs[0][:, 0, :], outs[1][:, 0] if len(outs) > 1 else None

        def run(frames):
            return both(frames)[0]

        res = {"version": m["version"], "recipe": m["training"]["recipe"],
               "train_seconds": m["training"]["seconds"]}
        for r in RIGS:
            res[r] = evaluate(lambda x: denoise_signal(run, x), _tests(rigs[r]), CELLS)
            res[r]["snr_estimate"] = snr_estimate_errors(both, _tests(rigs[r]), CELLS)
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
WHITE = ("gaussian", "laplacian")
TRANSPARENCY_DB, BLIND_MARGIN_DB, ORACLE_GAP_DB, SNR_ERROR_DB = 60.0, 2.0, 1.0, 1.0


def _cols() -> list[tuple[str, int]]:
    return list(CELLS)


def _head(first: str, extra: str = "") -> list[str]:
    cols = _cols()
    return ["| " + first + " | " + " | ".join(f"{k} {s:+d} dB" for k, s in cols) + extra + " |",
            "|---|" + "---:|" * (len(cols) + (1 if extra else 0))]


def rig_lines(rig: str, classics: dict, trained: dict, shipped: dict | None, lengths: dict) -> list[str]:
    """One rig's table: the classics (settings from training data), the
    trained rows, the shipped model, then the two oracles."""
    from .classic import METHODS

    L = [f"## {RIG_NAMES[rig]}", ""] + _head("method", " | clean: output vs input SNR")
    for name, _, _, blind in METHODS:
        rows = classics[rig][name]
        label = name if blind else f"*{name}*"
        tr = f"{rows['transparency_db']:.1f} dB" if "transparency_db" in rows else ""
        L.append(f"| {label} | " + " | ".join(
            f"{classic_gain(classics, rig, name, k, s):+.2f}" for k, s in _cols()) + f" | {tr} |")
    for name, rows in ((n, trained[n]) for n in MAIN if n in trained):
        fmt = "{:+.2f} ± {:.2f}" if len(rows) > 1 else "{:+.2f}"
        L.append(f"| **{name}** ({len(rows)} seed{'s' if len(rows) > 1 else ''}) | " + " | ".join(
            fmt.format(*cell(rows, rig, k, s)[: 2 if len(rows) > 1 else 1]) for k, s in _cols())
            + " | {:.1f} dB |".format(np.mean([r[rig]["transparency_db"] for r in rows])))
    if shipped:
        L.append(f"| shipped model {shipped['version']} | " + " | ".join(
            f"{shipped[rig]['improvement'][k][str(s)]:+.2f}" for k, s in _cols())
            + f" | {shipped[rig]['transparency_db']:.1f} dB |")
    L.append("| *oracle: ideal ratio mask, best STFT length per cell* | " + " | ".join(
        "*{:+.2f}* ({})".format(*best_bound(lengths, rig, k, s)) for k, s in _cols()) + " | |")
    return L + [""]


def _setting(s: dict) -> str:
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items())


def settings_lines(classics: dict) -> list[str]:
    """What each classic ran with, as chosen on training data."""
    from .classic import METHODS

    L = ["## The classics' settings, chosen on training data", "",
         "Each setting of a method's grid ran on 2 s excerpts of the training parts (every third "
         "recording, noise of other seeds than the test sets'). A blind method gets the setting with "
         "the best mean gain over the nine cells of the paper's noise, one for the rig (it does not "
         "know the noise); a bound gets the best for each cell. `noise` is the noise estimate "
         "(classic.py: minimum statistics over `window_s`, a `q`-quantile of each bin, a flat floor "
         "from the top of the spectrum, or the known spectrum), times `bias`.", "",
         "| rig | method | cells | setting | mean gain on training data |", "|---|---|---|---|---:|"]
    for rig in RIGS:
        for name, _, _, blind in METHODS:
            rows = classics[rig][name]
            if blind:
                c = next(iter(rows["cells"].values()))
                L.append(f"| {rig} | {name} | all | {_setting(rows['setting'])} | {c['train_gain']:+.2f} |")
                continue
            for key, c in rows["cells"].items():
                L.append(f"| {rig} | {name} | {key} dB | {_setting(c['setting'])} | {c['train_gain']:+.2f} |")
    return L + [""]


def variant_lines(trained: dict[str, list[dict]], steps: int) -> list[str]:
    """Quality against cost: the 3-seed recipe's seed 0 beside each variant."""
    cols = [(r, k, s) for r in RIGS for k, s in (("gaussian", -4), ("gaussian", 4), ("pink", -4),
                                                   ("pink", 4), ("brown", 0), ("hum", 0))]
    L = ["## Variants tried (one seed each)", "",
         "Seed 0 of each, 3000 steps unless the name says more; the first row is seed 0 of the "
         f"3-seed rows above ({steps} steps). Cost in multiply-accumulates of the convolutions per "
         f"frame (the daemon denoises one frame every {HOP} samples); tract's time per call is in "
         "docs/denoise.md.", "",
         "| variant | MACs per frame | training, min | "
         + " | ".join(f"{r} {k} {s:+d} dB" for r, k, s in cols) + " | clean in, " + ", ".join(RIGS) + " |",
         "|---|---:|---:|" + "---:|" * (len(cols) + 1)]
    rows = [("the 3-seed rows' recipe", trained["DRSN denoiser"][0])] if "DRSN denoiser" in trained else []
    rows += [(name, runs[0]) for name, runs in trained.items() if name not in MAIN]
    for name, row in rows:
        L.append(f"| {name} | {row['macs'] / 1e6:.1f} M | {row['train_seconds'] / 60:.1f} | " + " | ".join(
            f"{row[r]['improvement'][k][str(s)]:+.2f}" for r, k, s in cols) + " | "
            + ", ".join(f"{row[r]['transparency_db']:.1f}" for r in RIGS) + " dB |")
    return L + [""]


def length_lines(lengths: dict) -> list[str]:
    ns = list(next(iter(lengths.values())))
    L = ["## The oracle mask at each STFT length", "",
         "The oracle's gain depends on the resolution: short windows follow UESTC's impacts, long "
         "ones resolve coloured noise. The tables and the acceptance check take the best length "
         "for each cell.", "",
         "| rig | noise | " + " | ".join(f"STFT {n}" for n in ns) + " |",
         "|---|---|" + "---:|" * len(ns)]
    for rig, by_n in lengths.items():
        for k, snr in CELLS:
            L.append(f"| {rig} | {k} {snr:+d} dB | "
                     + " | ".join(f"{by_n[n][k][str(snr)]:+.2f}" for n in ns) + " |")
    return L + [""]


def snr_estimate_lines(rows: list[tuple[str, dict]]) -> list[str]:
    """The per-frame input-SNR estimate (what the denoiser kept over what it
    removed) against each frame's true SNR."""
    L = ["## The input-SNR estimate per frame", "",
         "`denoise.snr_db` in every frame is the model's own estimate of the input SNR (the SNR "
         "head, denoiser 2.0.0 on; an older model: what it kept over what it removed), in dB. Against "
         "the true SNR of each frame (hop 1024, the test sets), the median of |error| and, in "
         "brackets, the median signed error:", ""] + _head("model, rig")
    for label, row in rows:
        for rig in RIGS:
            e = row[rig]["snr_estimate"]
            L.append(f"| {label}, {rig} | " + " | ".join(
                "{median_abs_db:.2f} ({median_db:+.2f})".format(**e[k][str(s)]) for k, s in _cols()) + " |")
    return L + [""]


def acceptance_lines(label: str, rows: list[dict], classics: dict, lengths: dict) -> list[str]:
    """Issue 38's acceptance items, computed for one candidate, per rig."""
    L = []
    for rig in RIGS:
        main = [c for c in CELLS if c in MAIN_CELLS]
        blind = [(cell(rows, rig, k, s)[0] - best_blind(classics, rig, k, s)[0], k, s) for k, s in main]
        known = [(cell(rows, rig, k, s)[0]
                  - classic_gain(classics, rig, "decision-directed Wiener, noise spectrum known", k, s), k, s)
                 for k, s in main]
        gap = [(best_bound(lengths, rig, k, s)[0] - cell(rows, rig, k, s)[0], k, s)
               for k, s in main if k in WHITE]
        coloured = min(worst(rows, rig, k, s) for k, s in COLOURED_CELLS)
        tr = min(r[rig]["transparency_db"] for r in rows)
        mb, mk, mg = min(blind), min(known), max(gap)
        L.append(
            f"- {rig}, {label}: over the best blind classic by at least {mb[0]:+.2f} dB ({mb[1]} {mb[2]:+d} dB; "
            f"target +{BLIND_MARGIN_DB:g}, met in {sum(m >= BLIND_MARGIN_DB for m, _, _ in blind)} of "
            f"{len(blind)} cells); over the decision-directed Wiener with the noise known by at least "
            f"{mk[0]:+.2f} dB ({mk[1]} {mk[2]:+d} dB; target 0, met in {sum(m >= 0 for m, _, _ in known)} "
            f"of {len(known)}); white noise under the best oracle by at most {mg[0]:.2f} dB ({mg[1]} "
            f"{mg[2]:+d} dB; target {ORACLE_GAP_DB:g}, met in {sum(g <= ORACLE_GAP_DB for g, _, _ in gap)} "
            f"of {len(gap)}); brown and hum at 0 dB, the worst single recording {coloured:+.2f} dB "
            f"(target: never negative); transparency {tr:.1f} dB at worst (target {TRANSPARENCY_DB:g}).")
        if "snr_estimate" in rows[0][rig]:
            errs = [r[rig]["snr_estimate"][k][str(s)]["median_abs_db"] for r in rows for k, s in main]
            L.append(f"- {rig}, {label}: input-SNR estimate, median |error| per cell at most "
                     f"{max(errs):.2f} dB (target {SNR_ERROR_DB:g}).")
    return L


def render(classics: dict, trained: dict[str, list[dict]], steps: int, classifier: dict, lengths: dict,
           shipped: dict | None = None) -> str:
    L = ["# The DRSN denoiser: results", "",
         "Generated by `python -m drsn_train denoise-table` (scripts/denoise-table.sh); do not edit.", "",
         "SNR improvement = output SNR - input SNR in dB, against the recording, on the last 20 % "
         "by time of every recording of each rig (never trained on), noise added over the whole "
         "held-out part at a fixed seed; mean over the recordings. Trained rows: mean ± std over "
         f"the seeds, {steps} steps each"
         + (", then the SNR head fitted again on the finished body (`--refit-head`)"
            if trained["DRSN denoiser"][0].get("refit_head") else "")
         + f", the whole signal denoised frame by frame ({FRAME} samples, "
         f"hop {HOP}) and overlap-added as the daemon does. The classic rows (models/train/drsn_train/"
         "classic.py) run at settings chosen on the training parts only: a blind method one setting "
         "per rig, a bound one per cell (see \"The classics' settings\"); rows in italics know the "
         "noise or the clean signal, so they are bounds, not methods.", ""]
    for rig in RIGS:
        L += rig_lines(rig, classics, trained, shipped, lengths)
    L += variant_lines(trained, steps) + length_lines(lengths) + settings_lines(classics)
    estimates = [(f"DRSN denoiser, seed {r['seed']}", r) for r in trained.get("DRSN denoiser", [])
                 if "snr_estimate" in r.get("cwru", {})]
    if shipped:
        estimates.append((f"shipped model {shipped['version']}", shipped))
    if estimates:
        L += snr_estimate_lines(estimates)
    L += ["## The classifier on raw and on denoised input", "",
          "The shipped DRSN-CW classifier, CWRU held-out 20 % (10 classes), frames at hop 1024; "
          "denoised = the shipped denoiser over the whole segment, overlap-added as in the daemon.", "",
          "| input | raw | denoised |", "|---|---:|---:|"]
    for cond, r in classifier.items():
        L.append(f"| {cond} | {100 * r['raw']:.2f} % | {100 * r['denoised']:.2f} % |")
    L += ["", "## Acceptance, computed", ""]
    if "DRSN denoiser" in trained:
        L += acceptance_lines(f"DRSN denoiser ({len(trained['DRSN denoiser'])} seeds)",
                              trained["DRSN denoiser"], classics, lengths)
    if shipped:
        L += acceptance_lines(f"shipped model {shipped['version']}", [shipped], classics, lengths)
    if "DRSN denoiser" in trained and "ReLU instead of soft thresholding" in trained:
        d, r = trained["DRSN denoiser"], trained["ReLU instead of soft thresholding"]
        grid = [(g, k, s) for g in RIGS for k, s in CELLS]
        wins = sum(cell(d, g, k, s)[0] > cell(r, g, k, s)[0] for g, k, s in grid)
        gap = np.mean([cell(d, g, k, s)[0] - cell(r, g, k, s)[0] for g, k, s in grid])
        L.append(f"- Soft thresholding against ReLU (same network, same training): the DRSN is better "
                 f"in {wins} of {len(grid)} cells, by {gap:+.2f} dB on average.")
    L.append("")
    secs = [r["train_seconds"] for name in MAIN for r in trained.get(name, [])]
    if secs:
        L += [f"Training took {np.mean(secs) / 60:.1f} min per run on average here (2 cores shared by "
              "two runs).", ""]
    return "\n".join(L)


def cmd_table(args) -> None:
    from . import classic_table

    shared = os.path.abspath(os.path.join(args.data, ".."))
    cache = os.path.join(args.out, "work", "denoise")
    os.makedirs(cache, exist_ok=True)
    t0 = time.time()
    rigs = rigs_from(shared)
    classics = classic_table.cached_rows(rigs, cache)
    lengths = oracle_lengths(rigs, cache)
    threads = max(1, args.threads // args.workers)
    recipe = {"channels": args.channels, "units": args.units, "kernel": args.kernel, "stride": args.stride,
              "floor": args.floor, "dc": args.dc, "snr_head": args.snr_head, "features": args.features,
              "mix": args.mix, "refit_head": args.refit_head}
    variants = {"DRSN denoiser": ("drsn", args.seeds), "ReLU instead of soft thresholding": ("relu", args.relu_seeds)}
    jobs, paths = [], {}
    for name, (arch, seeds) in variants.items():
        for seed in range(seeds):
            jobs.append(job_for(shared, cache, seed, args.steps, threads, arch, **recipe))
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
    text = render(classics, trained, args.steps, classifier, lengths, shipped)
    with open(os.path.join(args.out, "RESULTS-denoise.md"), "w") as f:
        f.write(text)
    print(text)
    print(f"denoise-table: {time.time() - t0:.0f} s", flush=True)
