#!/usr/bin/env bash
# Fuzzes one target for SECONDS (default 600) and keeps its corpus:
#   fuzz/run.sh config 600
# Targets: config client_command wav_reader raw_reader assembler.
# cargo-fuzz drives libFuzzer; the toolchain here is stable, so its -Z
# flags are allowed with RUSTC_BOOTSTRAP, and no sanitizer is used (safe Rust;
# the coverage instrumentation is what matters).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
target=$1
seconds=${2:-600}
mkdir -p "fuzz/corpus/$target"
RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$target" "fuzz/corpus/$target" -- \
  -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1
