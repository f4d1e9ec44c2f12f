#!/usr/bin/env bash
# tract vs onnxruntime on the shipped model, same machine, same run, one thread.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/drsn-cw-cwru10.json}
cargo build --release --quiet --example infer_speed
for round in 1 2; do
  echo "-- round $round"
  ./target/release/examples/infer_speed "$model"
  (cd models/train && ../.venv/bin/python -c "
import json, os, sys
from drsn_train import export
m = json.load(open('../../$model'))
onnx = os.path.join(os.path.dirname('../../$model'), m['onnx'])
for b in (1, 16):
    print(f'onnxruntime batch {b}: {export.time_onnxruntime(onnx, b, 4000 // b):.4f} ms/frame')
")
done
