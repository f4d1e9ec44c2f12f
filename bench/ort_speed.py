"""onnxruntime's time per frame on an ONNX model, one thread, batch 1 and 16.

    python bench/ort_speed.py models/drsn-cw-cwru10.onnx
bench/run.sh runs it in turn with tract's examples/infer_speed.rs.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "models", "train"))
from drsn_train import export  # noqa: E402

for b in (1, 16):
    ms = export.time_onnxruntime(sys.argv[1], b, 4000 // b)
    print(f"onnxruntime batch {b}: {ms:.4f} ms/frame")
