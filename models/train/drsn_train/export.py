"""ONNX export, manifest and parity vectors, checked against onnxruntime."""
from __future__ import annotations

import hashlib
import json
import time
import warnings

import numpy as np
import torch

from .data import CLASSES, FAMILIES, FRAME, RATE, family_of
from .model import Exported, Net, POWER_FLOOR

OPSET = 17
PARITY_TOLERANCE = 1e-4


def threshold_names(net: Net) -> list[str]:
    return [f"tau_{i + 1}" for i in range(len(net.threshold_layout()))]


def output_names(net: Net) -> list[str]:
    """The ONNX outputs, in the order `Exported` returns them."""
    family = ["family_probs"] if net.fc_family is not None else []
    return ["probs", *family, "embedding", *threshold_names(net)]


def export_onnx(net: Net, path: str) -> None:
    export_module(Exported(net), output_names(net), path)


def export_module(module: torch.nn.Module, names: list[str], path: str) -> None:
    """`module` (input `signal` [N, 1, FRAME]) to ONNX with outputs `names`,
    the batch dimension dynamic. Shared by the classifier and the denoiser."""
    # The TorchScript exporter warns about its own deprecation and about
    # shape inference; neither concerns this static graph.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    dyn = {n: {0: "N"} for n in ["signal", *names]}
    torch.onnx.export(
        module.eval(),
        (torch.zeros(1, 1, FRAME),),
        path,
        input_names=["signal"],
        output_names=names,
        dynamic_axes=dyn,
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )


def parity_inputs() -> dict[str, np.ndarray]:
    """Synthetic frames only: no excerpt of any recording."""
    rng = np.random.default_rng(20200701)
    t = np.arange(FRAME) / RATE
    impulses = np.zeros(FRAME)
    impulses[::200] = 3.0  # a bearing-like impact train, 60 Hz
    return {
        "zeros": np.zeros(FRAME),
        "gaussian_0.1g": 0.1 * rng.standard_normal(FRAME),
        "sine_160hz_1g": np.sin(2 * np.pi * 160 * t),
        "two_sines": 0.3 * np.sin(2 * np.pi * 29.95 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t),
        "impulses_3g": impulses,
        "impulses_in_noise": impulses + 0.05 * rng.standard_normal(FRAME),
        "large_50g": 50.0 * rng.standard_normal(FRAME),
        "dc_offset_2g": 2.0 + 0.01 * rng.standard_normal(FRAME),
    }


@torch.no_grad()
def torch_outputs(net: Net, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    outs = Exported(net).eval()(torch.from_numpy(x).unsqueeze(1))
    return {n: o.numpy() for n, o in zip(names, outs)}


def write_parity(net: Net, path: str) -> dict:
    inputs = parity_inputs()
    x = np.stack(list(inputs.values())).astype(np.float32)
    names = output_names(net)
    return save_parity(path, list(inputs), x, torch_outputs(net, x, names), relative=False)


def save_parity(path: str, case_names: list[str], x: np.ndarray, outs: dict, relative: bool,
                absolute: dict | None = None) -> dict:
    """The parity file: each case's input and every output, per case.
    `relative`: differences are judged against max(1, the output's scale).
    `absolute`: output name -> the largest |difference| allowed for it,
    instead (an output in dB)."""
    cases = [
        {"name": name, "signal": [float(v) for v in x[i]],
         "outputs": {n: [float(v) for v in np.ravel(o[i])] for n, o in outs.items()}}
        for i, name in enumerate(case_names)
    ]
    doc = {"tolerance": PARITY_TOLERANCE, "frame_length": FRAME, "cases": cases}
    if relative:
        doc["relative"] = True
    if absolute:
        doc["absolute"] = absolute
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    return doc


def check_onnxruntime(onnx_path: str, parity: dict) -> float:
    """Largest |onnxruntime - PyTorch| over every output of every parity case
    (divided by max(1, max|PyTorch|) for a relative parity file)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    x = np.array([c["signal"] for c in parity["cases"]], dtype=np.float32)[:, None, :]
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"signal": x})))
    worst = 0.0
    absolute = parity.get("absolute", {})
    for i, case in enumerate(parity["cases"]):
        for name, want in case["outputs"].items():
            want = np.array(want)
            diff = float(np.abs(np.ravel(got[name][i]) - want).max())
            if name in absolute:
                if not diff <= absolute[name]:
                    raise SystemExit(f"{onnx_path}: {name} differs from PyTorch's by {diff:.3g} "
                                     f"> {absolute[name]} in case {case['name']}")
                continue
            scale = max(1.0, float(np.abs(want).max())) if parity.get("relative") else 1.0
            worst = max(worst, diff / scale)
    if not worst <= parity["tolerance"]:
        raise SystemExit(f"{onnx_path}: onnxruntime differs from PyTorch by {worst:.3g} > {parity['tolerance']}")
    return worst


def time_onnxruntime(onnx_path: str, batch: int = 1, runs: int = 2000) -> float:
    """Milliseconds per frame, one thread."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch, 1, FRAME)).astype(np.float32)
    for _ in range(50):
        sess.run(None, {"signal": x})
    t0 = time.perf_counter()
    for _ in range(runs):
        sess.run(None, {"signal": x})
    return (time.perf_counter() - t0) / runs / batch * 1e3


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def manifest(net: Net, name: str, version: str, onnx_file: str, onnx_path: str,
             training: dict, metrics: dict) -> dict:
    layout = net.threshold_layout()
    return {
        "name": name,
        "version": version,
        "onnx": onnx_file,
        "sha256": sha256(onnx_path),
        "architecture": net.arch,
        "sample_rate": RATE,
        "frame_length": FRAME,
        "input": {
            "name": "signal",
            "shape": ["N", 1, FRAME],
            "units": "g",
            "preprocessing": "in-graph: subtract the frame mean, divide by sqrt(mean square + "
                             f"{POWER_FLOOR:g} g^2)",
        },
        "probs_output": "probs",
        **({"family_output": "family_probs", "families": FAMILIES} if net.fc_family is not None else {}),
        "embedding_output": {"name": "embedding", "dims": net.fc.in_features},
        "classes": [{"id": c, "description": d, "family": FAMILIES[family_of(c)]}
                    for c, d in CLASSES],
        "thresholds": [
            {"name": n, "unit": i + 1, "channels": c}
            for i, (n, c) in enumerate(zip(threshold_names(net), layout))
        ],
        "training": training,
        "metrics": metrics,
    }
