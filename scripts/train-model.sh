#!/usr/bin/env bash
# Trains the shipped DRSN-CW and writes models/drsn-cw-cwru10.{onnx,json,parity.json}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh
cd models/train && exec ../.venv/bin/python -m drsn_train train "$@"
