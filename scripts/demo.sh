#!/usr/bin/env bash
# The main job: drsnd on real data, with a live view.
#   scripts/demo.sh                  replay ../shared/cwru in real time (no sound card needed)
#   scripts/demo.sh --device default capture from an audio input instead
# Stop with Ctrl-C. DEMO_FRAMES=N stops the view after N frames.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
cargo build --quiet
bin=target/debug/drsnd
dir=$(mktemp -d)
sock="$dir/drsn.sock"
cwru=${DRSN_CWRU:-../shared/cwru}
if [ "${1:-}" = "--device" ]; then
  args=(--device "${2:-default}")
else
  # Four machines at once: healthy, inner race, outer race and ball faults.
  args=(--loop)
  for f in 1797_Normal_48k 1772_IR_14 1750_OR6_21 1797_B_14; do
    args+=(--wav "$cwru/$f.wav")
  done
fi
port=${DEMO_HTTP_PORT:-9750}
printf '[http]\nlisten = "127.0.0.1:%s"\n' "$port" > "$dir/drsnd.toml"
"$bin" run --config "$dir/drsnd.toml" --socket "$sock" "${args[@]}" 2> "$dir/drsnd.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 600); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { cat "$dir/drsnd.log"; exit 1; }
echo "drsnd is serving $sock (log: $dir/drsnd.log); subscribe with: socat - UNIX-CONNECT:$sock"
echo "live page: http://127.0.0.1:$port/   metrics: http://127.0.0.1:$port/metrics"
"$bin" watch --socket "$sock" ${DEMO_FRAMES:+--count "$DEMO_FRAMES"}
