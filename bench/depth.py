"""Does a shallower DRSN change drsnd's CPU ratio against the PyTorch daemon?

At real-time pace a frame's cost follows the number of nodes, in tract and in
PyTorch eager alike. This builds DRSN-CW nets of 6 (as shipped), 4 and 3
units with random weights (the cost does not depend on the values) and times
them both ways; bench/run.sh runs tract's side with examples/paced_infer.

    python bench/depth.py export DIR      DIR/u6.onnx, DIR/u4.onnx, DIR/u3.onnx
    python bench/depth.py torch SECONDS   JSON: PyTorch thread CPU ms per call

The torch timing mirrors bench/pydaemon.py's call (one thread, inference
mode, softmax, results to numpy), one call per 42.667 ms, the layouts taking
turns call by call so that the machine's drift falls on all of them alike.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "models", "train"))
from drsn_train import export, model  # noqa: E402

LAYOUTS = {
    "u6": [(16, 2), (16, 1), (32, 2), (32, 1), (64, 2), (64, 1)],
    "u4": [(16, 2), (32, 2), (64, 2), (64, 1)],
    "u3": [(16, 2), (32, 2), (64, 2)],
}
PERIOD_S = 512 / 12000


def net(units: list[tuple[int, int]]) -> model.Net:
    saved = list(model.UNITS)
    model.UNITS[:] = units
    try:
        torch.manual_seed(0)
        return model.Net("drsn-cw").eval()
    finally:
        model.UNITS[:] = saved


def export_all(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for name, units in LAYOUTS.items():
        export.export_onnx(net(units), os.path.join(folder, f"{name}.onnx"))


def time_torch(seconds: float) -> dict:
    torch.set_num_threads(1)
    nets = {name: net(units) for name, units in LAYOUTS.items()}
    x = torch.randn(1, 1, export.FRAME)
    times: dict[str, list[float]] = {k: [] for k in nets}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for name, n in nets.items():
            time.sleep(PERIOD_S)
            t0 = time.thread_time_ns()
            with torch.inference_mode():
                logits, taus = n(x)
                probs = torch.softmax(logits, dim=-1)
            probs[0].numpy()
            [t[0].numpy() for t in taus]
            times[name].append((time.thread_time_ns() - t0) / 1e6)
    # The first calls load code and fill allocator pools; leave them out.
    return {k: {"calls": len(v) - 5, "cpu_ms_median": statistics.median(v[5:])} for k, v in times.items()}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "export":
        export_all(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "torch":
        print(json.dumps(time_torch(float(sys.argv[2]))))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
