#!/usr/bin/env bash
# models/RESULTS-denoise.md: DRSN denoiser vs ReLU vs wavelet shrinkage, 3 seeds,
# both rigs (cached per run in models/work/denoise/, resumable).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh
cd models/train && exec ../.venv/bin/python -m drsn_train denoise-table "$@"
