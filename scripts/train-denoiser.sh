#!/usr/bin/env bash
# Trains the shipped DRSN denoiser and writes models/drsn-denoise.{onnx,json,parity.json}
# (about 17 min on 2 cores; docs/denoise.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh
cd models/train && exec ../.venv/bin/python -m drsn_train denoise-train "$@"
