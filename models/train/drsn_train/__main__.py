"""Command line: train | table | smoke | orders | ... Run with `python -m drsn_train CMD --help`."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch

from . import data, denoise_fit, denoise_table, denoiser, export, fit, orders, table
from .model import Net

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "cwru")
DEFAULT_UESTC = os.path.join(ROOT, "..", "shared", "uestc")


def load(args) -> list[data.Recording]:
    """Every recording of both rigs (or the user's folders)."""
    if args.folders:
        return data.load_folders(args.folders)
    return data.load_cwru(args.data, everything=True) + data.load_uestc(args.uestc)


def family_metrics(m: dict) -> dict:
    """Family accuracy and fault frames called normal, clean and at -4 / 0 dB."""
    fam = m["family"]
    out = {"clean": {k: fam["clean"][k] for k in ("family", "called_normal")}}
    for kind, by_snr in fam["noisy"].items():
        out[kind] = {str(s): {k: v[k] for k in ("family", "called_normal")} for s, v in by_snr.items()}
    return out


def cmd_train(args) -> None:
    torch.set_num_threads(args.threads)
    recs = load(args)
    ten = [r for r in recs if r.label != data.NO_CLASS]
    x_test, y_test, f_test = data.test_frames(ten, families=True)
    uestc = [r for r in recs if r.rig == "uestc"]
    print(f"{len(recs)} recordings, {len(y_test)} CWRU 10-class test frames; training {args.arch} "
          f"for {args.steps} steps", flush=True)
    net, seconds = fit.train(args.arch, recs, args.seed, args.steps, log_every=500, ema=args.ema,
                             fine_weight=args.fine_weight)
    metrics = fit.evaluate(net, x_test, y_test, f_test)
    print(table.summary_line(metrics), flush=True)
    held = {}
    for name, part in [("cwru_all", [r for r in recs if r.rig == "cwru"]), ("uestc", uestc)]:
        if part:
            x, y, f = data.test_frames(part, hop=512, families=True)
            held[name] = family_metrics(fit.evaluate(net, x, y, f, snrs=(-4, 0)))
            print(f"  {name}: family clean {held[name]['clean']['family'] * 100:.2f} %, called "
                  f"normal {held[name]['clean']['called_normal'] * 100:.2f} %", flush=True)
    os.makedirs(args.out, exist_ok=True)
    work = os.path.join(args.out, "work")
    os.makedirs(work, exist_ok=True)
    torch.save(net.state_dict(), os.path.join(work, f"{args.name}.pt"))  # to re-export without retraining
    onnx_file = f"{args.name}.onnx"
    onnx_path = os.path.join(args.out, onnx_file)
    export.export_onnx(net, onnx_path)
    parity = export.write_parity(net, os.path.join(args.out, f"{args.name}.parity.json"))
    worst = export.check_onnxruntime(onnx_path, parity)
    ort_ms = {b: export.time_onnxruntime(onnx_path, b) for b in (1, 16)}
    print(f"onnxruntime parity max |diff| {worst:.2e}; {ort_ms[1]:.3f} ms/frame batch 1, "
          f"{ort_ms[16]:.3f} ms/frame batch 16 (1 thread)", flush=True)
    training = {
        "data": "every recording of ../shared/cwru (drive end, 12 kHz, loads 0-2 hp, 10 fine classes "
                "plus the 28-mil, OR@3 and OR@12 recordings for the family head; 48 kHz healthy "
                "baseline decimated to 12 kHz) and of ../shared/uestc (20 kHz resampled to 12 kHz, "
                "4 speeds, family only); first 80 % of every recording"
                if not args.folders else f"folders under {args.folders}; first 80 % of every file",
        "recipe": f"python -m drsn_train train --arch {args.arch} --steps {args.steps} --seed {args.seed}"
                  + (f" --fine-weight {args.fine_weight:g}" if args.fine_weight != fit.FINE_WEIGHT else "")
                  + (f" --ema {args.ema:g}" if args.ema else ""),
        "noise": f"per frame: clean (p=0.36) or Gaussian/Laplacian/pink at SNR U{fit.TRAIN_SNR} dB",
        "loss": f"cross-entropy of the family + {args.fine_weight:g} x cross-entropy of the fine class "
                "(frames of the 10 classes only)",
        "augmentation": f"random crops balanced over (rig, family), time stretch U({1 - fit.STRETCH:g}, {1 + fit.STRETCH:g}), "
                        f"random smooth spectral tilt N(0, {data.TrainSampler.EQ_DB} dB) at "
                        f"{data.EQ_KNOTS} knots from 0 Hz to Nyquist",
        "steps": args.steps, "batch": 64, "seed": args.seed,
        "seconds": round(seconds, 1), "threads": args.threads,
    }
    metrics_doc = {
        "test_set": "last 20 % of every recording, frames at hop 256 (CWRU 10 classes) or 512 "
                    "(family rows)",
        "test_frames": int(len(y_test)),
        "accuracy_clean": metrics["clean"],
        "accuracy_noisy": metrics["noisy"],
        "family_cwru10": family_metrics(metrics),
        "family_held_out": held,
        "onnxruntime_ms_per_frame": {"batch_1": round(ort_ms[1], 4), "batch_16": round(ort_ms[16], 4)},
        "parity_max_abs_diff_onnxruntime": worst,
    }
    doc = export.manifest(net, args.name, args.version, onnx_file, onnx_path, training, metrics_doc)
    with open(os.path.join(args.out, f"{args.name}.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"wrote {onnx_path} and its manifest and parity vectors", flush=True)


def cmd_smoke(args) -> None:
    """A tiny model on a slice of the data, exported and checked: for CI."""
    torch.set_num_threads(args.threads)
    recs = [r for r in data.load_cwru(args.data) if r.load == 0]
    recs += [r for r in data.load_uestc(args.uestc) if r.rpm == 800 and r.name.endswith("_1.wav")]
    net, _ = fit.train("drsn-cw", recs, seed=0, steps=args.steps, batch=16)
    x, y, f = data.test_frames([r for r in recs if r.rig == "cwru"], hop=2048, families=True)
    acc = fit.evaluate(net, x[:64], y[:64], f[:64], snrs=(0,))["clean"]
    with tempfile.TemporaryDirectory() as d:
        onnx_path = os.path.join(d, "smoke.onnx")
        export.export_onnx(net, onnx_path)
        parity = export.write_parity(net, os.path.join(d, "smoke.parity.json"))
        worst = export.check_onnxruntime(onnx_path, parity)
        layout = net.threshold_layout()
        if len(layout) != 6 or any(c <= 0 for c in layout):
            sys.exit(f"smoke: unexpected threshold layout {layout}")
    print(f"smoke: {args.steps} steps, clean accuracy on 64 frames {acc:.3f}, "
          f"onnxruntime vs PyTorch max |diff| {worst:.2e} (<= {export.PARITY_TOLERANCE})")
    # The denoiser's recipe too: a few steps, exported and checked.
    from . import denoise_export, denoise_fit

    parts = [[r.train for r in recs if r.rig == "cwru"]]
    den, _ = denoise_fit.train("drsn", parts, seed=0, steps=args.steps, channels=8, units=2, batch=8)
    with tempfile.TemporaryDirectory() as d:
        onnx_path = os.path.join(d, "smoke-denoise.onnx")
        denoise_export.export_onnx(den, onnx_path)
        parity = denoise_export.write_parity(den, os.path.join(d, "smoke-denoise.parity.json"))
        worst = denoise_export.check_onnxruntime(onnx_path, parity)
    y = denoise_fit.denoise_signal(den, recs[0].test[:5000])
    if y.shape != (5000,) or not np.isfinite(y).all():
        sys.exit(f"smoke: the denoiser's overlap-add gave {y.shape}, finite {np.isfinite(y).all()}")
    print(f"smoke: denoiser {args.steps} steps, onnxruntime vs PyTorch max relative diff {worst:.2e}")


def cmd_denoise_train(args) -> None:
    """The shipped denoiser: train on both rigs, export, check, measure."""
    from . import denoise_export, denoise_fit, wavelet

    torch.set_num_threads(args.threads)
    shared = os.path.abspath(os.path.join(args.data, ".."))
    rigs = denoise_table.rigs_from(shared)
    if args.weights:
        # Weights this recipe saved before (models/work/<name>.pt): export
        # and measure again without the half hour of training.
        from .denoiser import Denoiser

        net = Denoiser(args.arch, args.channels, args.units, args.kernel, args.stride)
        net.load_state_dict(torch.load(args.weights, weights_only=True))
        net.eval()
        seconds = float(args.train_seconds)
    else:
        print(f"training the {args.arch} denoiser, {args.channels} channels, {args.units} units, "
              f"kernel {args.kernel} stride {args.stride}, {args.steps} steps", flush=True)
        net, seconds = denoise_fit.train(args.arch, denoise_table._train_parts(rigs), args.seed,
                                         args.steps, args.channels, args.units, log_every=250,
                                         kernel=args.kernel, stride=args.stride, loss_kind=args.loss)
    metrics = {"test_set": "last 20 % of every recording of ../shared/cwru and ../shared/uestc"}
    for r in denoise_table.RIGS:
        tests = denoise_table._tests(rigs[r])
        net_res = denoise_fit.evaluate(lambda x: denoise_fit.denoise_signal(net, x), tests)
        best = {k: {s: max(denoise_fit.evaluate(lambda x, rule=rule: wavelet.shrink(x, rule), tests)
                               ["improvement"][k][s] for rule in wavelet.RULES)
                    for s in denoise_fit.EVAL_SNRS} for k in ("gaussian",)}
        metrics[r] = {"snr_improvement_db": net_res["improvement"],
                      "transparency_db": net_res["transparency_db"],
                      "best_wavelet_gaussian_db": best["gaussian"]}
        print(f"  {r}: {json.dumps(net_res['improvement'])}; transparency "
              f"{net_res['transparency_db']:.1f} dB; best wavelet, Gaussian: {best['gaussian']}", flush=True)
    name = args.name
    onnx_file = f"{name}.onnx"
    onnx_path = os.path.join(args.out, onnx_file)
    denoise_export.export_onnx(net, onnx_path)
    parity = denoise_export.write_parity(net, os.path.join(args.out, f"{name}.parity.json"))
    worst = denoise_export.check_onnxruntime(onnx_path, parity)
    ms = export.time_onnxruntime(onnx_path)
    metrics.update({"parity_max_rel_diff_onnxruntime": worst,
                    "onnxruntime_ms_per_frame_batch_1": round(ms, 4)})
    training = {
        "data": "every recording of ../shared/cwru (12 kHz) and ../shared/uestc (20 kHz, "
                "resampled to 12 kHz), first 80 % of each",
        "recipe": f"python -m drsn_train denoise-train --arch {args.arch} --channels {args.channels} "
                  f"--units {args.units} --kernel {args.kernel} --stride {args.stride} --loss {args.loss} "
                  f"--steps {args.steps} --seed {args.seed}",
        "noise": f"per frame: clean (p=0.1 of the draws) or Gaussian/Laplacian/pink at SNR "
                 f"U{denoise_fit.TRAIN_SNR} dB; target: the recording",
        "loss": "-SNR of the output against the recording, capped at 30 dB"
                + (", plus the same per band (16 bands of 375 Hz)" if args.loss == "snr+bands" else ""),
        "steps": args.steps, "batch": 32, "seed": args.seed, "seconds": round(seconds, 1),
        "threads": args.threads,
    }
    doc = denoise_export.manifest(net, name, args.version, onnx_file, onnx_path, training, metrics)
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    work = os.path.join(args.out, "work")
    os.makedirs(work, exist_ok=True)
    torch.save(net.state_dict(), os.path.join(work, f"{name}.pt"))
    print(f"wrote {onnx_path}, its manifest and parity vectors; parity {worst:.2e}, "
          f"onnxruntime {ms:.3f} ms/frame", flush=True)


def cmd_verify(args) -> None:
    """The shipped model as committed: manifest, sha256, outputs, parity in onnxruntime."""
    import onnxruntime as ort

    with open(args.manifest) as f:
        m = json.load(f)
    base = os.path.dirname(os.path.abspath(args.manifest))
    onnx_path = os.path.join(base, m["onnx"])
    if export.sha256(onnx_path) != m["sha256"]:
        sys.exit(f"{onnx_path}: sha256 does not match {args.manifest}")
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    embedding = [m["embedding_output"]["name"]] if "embedding_output" in m else []
    if m.get("kind") == "denoiser":
        from . import denoise_export

        want = [m["denoised_output"], *[t["name"] for t in m["thresholds"]]]
        if names != want:
            sys.exit(f"{onnx_path}: outputs {names}, manifest says {want}")
        with open(onnx_path[: -len(".onnx")] + ".parity.json") as f:
            parity = json.load(f)
        worst = denoise_export.check_onnxruntime(onnx_path, parity)
        print(f"verify: {m['name']} {m['version']}: sha256 ok, {len(names)} outputs as the manifest "
              f"says, onnxruntime vs PyTorch parity max relative diff {worst:.2e} over "
              f"{len(parity['cases'])} cases (<= {parity['tolerance']})")
        return
    family = [m["family_output"]] if "family_output" in m else []
    want = [m["probs_output"], *family, *embedding, *[t["name"] for t in m["thresholds"]]]
    if names != want:
        sys.exit(f"{onnx_path}: outputs {names}, manifest says {want}")
    parity_path = onnx_path[: -len(".onnx")] + ".parity.json"
    with open(parity_path) as f:
        parity = json.load(f)
    worst = export.check_onnxruntime(onnx_path, parity)
    print(f"verify: {m['name']} {m['version']}: sha256 ok, {len(names)} outputs as the manifest says, "
          f"onnxruntime vs PyTorch parity max |diff| {worst:.2e} over {len(parity['cases'])} cases "
          f"(<= {parity['tolerance']})")


def cmd_reexport(args) -> None:
    """Exports a shipped model again from its weights (`<name>.pt` beside the
    manifest), keeping its training record: for a change of the exported
    outputs, not of the network."""
    with open(args.manifest) as f:
        old = json.load(f)
    base = os.path.dirname(os.path.abspath(args.manifest))
    net = Net(old["architecture"], len(old["classes"]), len(old.get("families", [])))
    net.load_state_dict(torch.load(os.path.join(base, f"{old['name']}.pt"), weights_only=True))
    net.eval()
    onnx_path = os.path.join(base, old["onnx"])
    export.export_onnx(net, onnx_path)
    parity = export.write_parity(net, os.path.join(base, f"{old['name']}.parity.json"))
    worst = export.check_onnxruntime(onnx_path, parity)
    metrics = dict(old["metrics"], parity_max_abs_diff_onnxruntime=worst)
    doc = export.manifest(net, old["name"], args.version, old["onnx"], onnx_path,
                          old["training"], metrics)
    with open(args.manifest, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"reexport: {old['name']} {args.version}: parity {worst:.2e}, sha256 {doc['sha256']}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m drsn_train")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--data", default=DEFAULT_DATA, help="CWRU folder (default ../shared/cwru)")
        sp.add_argument("--uestc", default=DEFAULT_UESTC, help="UESTC folder (default ../shared/uestc)")
        sp.add_argument("--threads", type=int, default=2)

    t = sub.add_parser("train", help="train and export one model")
    common(t)
    t.add_argument("--folders", help="your own data: DIR/<class id>/*.wav instead of CWRU")
    t.add_argument("--arch", default="drsn-cw", choices=["conv", "res", "drsn-cs", "drsn-cw"])
    t.add_argument("--steps", type=int, default=20000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--ema", type=float, default=0.0,
                   help="keep an exponential moving average of the weights with this decay (e.g. 0.999)")
    t.add_argument("--fine-weight", type=float, default=fit.FINE_WEIGHT,
                   help="weight of the fine-class loss beside the family loss")
    t.add_argument("--name", default="drsn-cw-cwru10")
    t.add_argument("--version", default="2.0.0")
    t.add_argument("--out", default=os.path.join(ROOT, "models"))
    t.set_defaults(func=cmd_train)

    tb = sub.add_parser("table", help="the full comparison; writes models/RESULTS.md")
    common(tb)
    tb.add_argument("--steps", type=int, default=1500)
    tb.add_argument("--seeds", type=int, default=3)
    tb.add_argument("--workers", type=int, default=2)
    tb.add_argument("--stretch", type=float, default=fit.STRETCH, help="random time stretch, +- (0.04 = 4 %%)")
    tb.add_argument("--protocols", default=",".join(table.PROTOCOLS),
                    help="comma-separated subset of: " + ", ".join(table.PROTOCOLS))
    tb.add_argument("--out", default=os.path.join(ROOT, "models"),
                    help="where the results go; runs are cached in OUT/work/results-2.json")
    tb.add_argument("--results", default="RESULTS.md", help="the file written in OUT")
    tb.set_defaults(func=table.cmd_table)

    s = sub.add_parser("smoke", help="tiny train + export + parity check (CI)")
    common(s)
    s.add_argument("--steps", type=int, default=20)
    s.set_defaults(func=cmd_smoke)

    dt = sub.add_parser("denoise-train", help="train and export the DRSN denoiser (both rigs)")
    common(dt)
    dt.add_argument("--arch", default="drsn", choices=["drsn", "relu"])
    dt.add_argument("--channels", type=int, default=denoiser.SHIPPED["channels"])
    dt.add_argument("--units", type=int, default=4)
    dt.add_argument("--kernel", type=int, default=denoiser.SHIPPED["kernel"],
                    help="the learned transform's length")
    dt.add_argument("--stride", type=int, default=denoiser.SHIPPED["stride"], help="the learned transform's hop")
    dt.add_argument("--loss", default="snr", choices=denoise_fit.LOSSES)
    dt.add_argument("--steps", type=int, default=denoiser.SHIPPED["steps"])
    dt.add_argument("--seed", type=int, default=0)
    dt.add_argument("--name", default="drsn-denoise")
    dt.add_argument("--version", default="1.1.0")
    dt.add_argument("--out", default=os.path.join(ROOT, "models"))
    dt.add_argument("--weights", help="export these weights (saved by an earlier run) instead of training")
    dt.add_argument("--train-seconds", default=0, help="with --weights: how long their training took")
    dt.set_defaults(func=cmd_denoise_train)

    dtb = sub.add_parser("denoise-table", help="DRSN vs ReLU vs wavelet; writes models/RESULTS-denoise.md")
    common(dtb)
    dtb.add_argument("--channels", type=int, default=denoiser.SHIPPED["channels"])
    dtb.add_argument("--units", type=int, default=4)
    dtb.add_argument("--kernel", type=int, default=denoiser.SHIPPED["kernel"])
    dtb.add_argument("--stride", type=int, default=denoiser.SHIPPED["stride"])
    dtb.add_argument("--steps", type=int, default=denoiser.SHIPPED["steps"])
    dtb.add_argument("--seeds", type=int, default=3)
    dtb.add_argument("--workers", type=int, default=2)
    dtb.add_argument("--out", default=os.path.join(ROOT, "models"))
    dtb.set_defaults(func=denoise_table.cmd_table)

    o = sub.add_parser("orders", help="experiment: train and test in the order domain (issue 14)")
    common(o)
    o.add_argument("--samples-per-rev", type=int, default=400)
    o.add_argument("--envelope", action="store_true", help="demodulate above 1 kHz first")
    o.add_argument("--protocols", default="cwru-only,loso-28,uestc-only,loss-1400")
    o.add_argument("--seeds", default="0,1,2")
    o.add_argument("--steps", type=int, default=1500)
    o.add_argument("--workers", type=int, default=2)
    o.set_defaults(func=orders.cmd_orders)

    v = sub.add_parser("verify", help="check a shipped model against its manifest and parity vectors")
    v.add_argument("manifest")
    v.set_defaults(func=cmd_verify)

    r = sub.add_parser("reexport", help="export a shipped model again from its .pt weights")
    r.add_argument("manifest")
    r.add_argument("--version", required=True)
    r.set_defaults(func=cmd_reexport)

    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
