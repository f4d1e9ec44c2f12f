#!/usr/bin/env bash
# Runs the full comparison (30 runs, about 35 minutes with 2 workers) and writes models/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh
cd models/train && exec ../.venv/bin/python -m drsn_train table "$@"
