"""The denoiser's ONNX export, manifest and parity vectors (as export.py
does for the classifier)."""
from __future__ import annotations

import numpy as np
import torch

from .data import FRAME, RATE
from .denoiser import Denoiser, ExportedDenoiser
from .export import check_onnxruntime, export_module, parity_inputs, save_parity, sha256  # noqa: F401
from .model import POWER_FLOOR

# The largest |difference| in dB allowed between a runtime's SNR output
# and PyTorch's (write_parity).
SNR_PARITY_DB = 0.05


def output_names(net: Denoiser) -> list[str]:
    taus = [f"tau_{i + 1}" for i in range(len(net.threshold_layout()))]
    return ["denoised", *taus] + (["snr_db"] if net.snr is not None else [])


def export_onnx(net: Denoiser, path: str) -> None:
    export_module(ExportedDenoiser(net), output_names(net), path)


@torch.no_grad()
def write_parity(net: Denoiser, path: str) -> dict:
    """The classifier's synthetic frames (no excerpt of any recording) and
    PyTorch's outputs for them, judged relative to each frame's scale (the
    50 g frame's output is ~50 g)."""
    inputs = parity_inputs()
    x = np.stack(list(inputs.values())).astype(np.float32)
    names = output_names(net)
    outs = ExportedDenoiser(net).eval()(torch.from_numpy(x).unsqueeze(1))
    outs = {n: o.numpy().reshape(len(x), -1) for n, o in zip(names, outs)}
    # The SNR output is read from the log of the thresholds: a relative
    # rounding error e of every tau moves it by about 8.7 e dB (20 log10 of
    # an amplitude), so tract's 1e-3 becomes ~0.02 dB. Judged in dB, 15
    # times finer than the estimate's own median error (0.8 dB).
    absolute = {"snr_db": SNR_PARITY_DB} if net.snr is not None else None
    return save_parity(path, list(inputs), x, outs, relative=True, absolute=absolute)


def manifest(net: Denoiser, name: str, version: str, onnx_file: str, onnx_path: str,
             training: dict, metrics: dict) -> dict:
    return {
        "kind": "denoiser",
        "name": name,
        "version": version,
        "onnx": onnx_file,
        "sha256": sha256(onnx_path),
        "architecture": f"{net.arch}-denoiser",
        "sample_rate": RATE,
        "frame_length": FRAME,
        "input": {
            "name": "signal",
            "shape": ["N", 1, FRAME],
            "units": "any (the output is in the input's units)",
            "preprocessing": "in-graph: subtract the frame mean, divide by sqrt(mean square + "
                             f"{POWER_FLOOR:g}); undone on the output",
        },
        "denoised_output": "denoised",
        **({"snr_output": "snr_db"} if net.snr is not None else {}),
        "layers": {"channels": net.channels, "units": net.n_units,
                   "transform": f"Conv1d kernel {net.kernel} stride {net.stride} / ConvTranspose1d"},
        "overlap_add": {"hop": FRAME // 2, "window": "periodic Hann (weight 1 where no frame overlaps)"},
        "thresholds": [
            {"name": f"tau_{i + 1}", "unit": i + 1, "channels": c}
            for i, c in enumerate(net.threshold_layout())
        ],
        "training": training,
        "metrics": metrics,
    }
