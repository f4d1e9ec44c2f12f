#!/usr/bin/env bash
# The one test command (README and CI).
#   scripts/test.sh          installs what is missing (Debian packages, the
#                            model pipeline's venv), then runs every check:
#                            formatting, lints, module layering, the model
#                            pipeline (shipped models verified in onnxruntime,
#                            a tiny train-export-check smoke run) and the Rust
#                            tests, which start the real binary on the real
#                            recordings in ../shared.
#   scripts/test.sh --quick  for development, after a build: formatting,
#                            layering and the in-process tier (unit tests and
#                            the stream pipeline on the real model); no setup,
#                            no binary started.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--quick" ]; then
  cargo fmt --all -- --check
  python3 scripts/check-modules.py > /dev/null
  exec cargo test --locked --lib --features fault-injection
fi

bash scripts/setup-system.sh
# The Rust test build (most of the run on a fresh clone) goes on while the
# model pipeline's venv is made and checked.
build_log=$(mktemp)
cargo test --locked --tests --features fault-injection --no-run > "$build_log" 2>&1 &
build=$!
bash scripts/setup-python.sh

echo "== model pipeline: shipped model in onnxruntime, then a smoke train + export"
(cd models/train && ../.venv/bin/python -m drsn_train verify ../drsn-cw-cwru10.json \
  && ../.venv/bin/python -m drsn_train verify ../drsn-denoise.json \
  && ../.venv/bin/python -m drsn_train smoke)

echo "== cargo test --no-run (built meanwhile)"
if ! wait $build; then
  cat "$build_log"
  exit 1
fi
tail -1 "$build_log"

echo "== cargo fmt, clippy, module layering"
cargo fmt --all -- --check
cargo clippy --all-targets --all-features --locked -- -D warnings
python3 scripts/check-modules.py

echo "== cargo test"
# --tests: unit and integration tests (there are no doc tests), so the run
# closes on the last integration suite, not on an empty doc-test pass.
# fault-injection: the test-only hooks of src/fault.rs (stalls, a failing
# reload); tests that need them fail without it.
# Four at a time on two cores: most integration tests wait on real time
# (real-time replays, a broker outage, TLS retries), so two leave the cores
# idle a third of the run (tests/it: 252 s with two, 139 s with four).
cargo test --locked --tests --features fault-injection -- --test-threads 4
