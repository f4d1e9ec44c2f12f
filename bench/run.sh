#!/usr/bin/env bash
# Every benchmark in one command; writes bench/results/*.json and BENCHMARKS.md.
#   bench/run.sh           the full set (about 25 minutes)
#   bench/run.sh --quick   short runs of everything (about 6 minutes), for a check
#   bench/run.sh --steps e2e,scale   only those parts, keeping the other results
#                          (parts: model e2e python scale classify criterion)
#   bench/run.sh --steps http   the web sink's cost: 16 streams and 100 socket
#                          subscribers with [http] off, on with no page, and
#                          on with 20 pages, in alternating rounds (results/http.md)
#   bench/run.sh --steps mqtt   the MQTT sink's cost: 16 streams with [mqtt]
#                          off and on (summaries), alternating rounds, then
#                          50 daemons publishing to one mosquitto (results/mqtt.md)
#   bench/run.sh --steps physics   the physical measures' cost: 16 streams
#                          without and with `units = "g"` (results/physics.md)
#   bench/run.sh --steps history   the history store's cost: 16 streams with
#                          units, without and with [history] (results/history.md),
#                          then a year of 16 streams through the store
#                          (results/history-year.json: size, flush, queries)
#   bench/run.sh --steps envelope  the envelope evidence's cost: 16 streams with
#                          units, without and with `rpm` and `bearing` (results/envelope.md)
#   bench/run.sh --steps speed     the shaft speed's cost: 16 streams with units,
#                          rpm and bearing, the speed pinned (rpm-range =
#                          [rpm, rpm]) and measured (results/speed.md)
#   bench/run.sh --steps healthy-envelope   the baseline's healthy envelope:
#                          16 streams with units, rpm, bearing and a baseline
#                          learned without and with it (results/healthy-envelope.md)
#   bench/run.sh --steps anomaly   one real-time stream: the classifier alone,
#                          and with a baseline, the physical measures and the
#                          envelope evidence
#                          (results/anomaly.md; acceptance: <= 3 % of a core, <= 60 MB)
#   bench/run.sh --steps denoise   one real-time stream without and with the
#                          DRSN denoiser (a reader on its socket), alternating
#                          rounds (results/denoise.md; target: <= 2 % of a core more)
#   bench/run.sh --steps model-swap   the shipped classifier against the one
#                          it replaced (DRSN_OLD_MODEL_REV, default 6b5d6e8):
#                          instructions per frame (callgrind), paced tract
#                          calls taking turns, and one real-time stream of
#                          the daemon with each, alternating rounds
#                          (results/model-swap.md; target: <= 1.2x per frame,
#                          <= 2 % of a core per stream)
#   bench/run.sh --steps denoise-swap   the same for the shipped denoiser
#                          against the one it replaced (DRSN_OLD_DENOISE_REV,
#                          default 9ba375b: model 1.1.0), the daemon running
#                          [denoise] with each (results/denoise-swap.md;
#                          target: the new one costs no more)
#   bench/run.sh --steps wake   one real-time stream with frames-per-wake 1
#                          and 4, alternating rounds (results/wake.md)
#   bench/run.sh --steps pool   the shared analysis threads (issue 36): the
#                          per-stream-thread daemon (DRSN_POOL_BASE, default
#                          93869ce) against this tree's pool waking per frame
#                          and once per hop, in rotating order each round, on
#                          16 streams (aligned; staggered over the hop; every
#                          analysis on) and on one stream (results/pool.md)
#   bench/run.sh --compare REV [--quick]   only the side-by-side step: one
#                          real-time stream of this tree's drsnd and of REV's,
#                          in alternating rounds (bench/results/compare.md)
#   bench/run.sh --compare REV --streams N [--all] [--quick]   the same with N
#                          real-time streams; --all turns every analysis on
#                          (units, rpm and bearing, a baseline, the denoiser)
#                          (bench/results/compare-N[-all].md)
#   bench/run.sh --compare REV --snapshots [--quick]   the same with 16 streams
#                          of a recording that turns faulty and healthy every
#                          4 s, with [snapshots] on, so evidence is written
#                          and the machine state saved all along
#                          (bench/results/compare-snapshots.md)
# Run it on a quiet machine: CPU and latency figures are real-time measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
quick=0
steps=model,e2e,python,scale,classify,criterion
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --steps) steps=$2; shift ;;
    --compare) base_rev=$2; steps=compare; shift ;;
    --snapshots) compare_snapshots=1 ;;
    --streams) compare_streams=$2; shift ;;
    --all) compare_all=1 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
want() { [[ ",$steps," == *",$1,"* ]]; }
if [ $quick = 1 ]; then
  e2e_s=60; py_s=30; scale_s=15; depth_s=15; crit="--warm-up-time 1 --measurement-time 2"
else
  e2e_s=450; py_s=180; scale_s=30; depth_s=45; crit="--warm-up-time 2 --measurement-time 5"
fi
data=${DRSN_DATA:-$root/../shared/cwru}
wav=$data/1797_IR_14.wav
out=bench/results
py=models/.venv/bin/python

scripts/setup-system.sh
command -v valgrind >/dev/null || { apt-get install -y -qq valgrind >/dev/null; }
scripts/setup-python.sh
cargo build --release --locked --quiet --bin drsnd --example infer_speed --example profile_model --example paced_infer --example e2e_bench --example history_year
if [ "$steps" = model,e2e,python,scale,classify,criterion ]; then rm -rf "$out"; fi
mkdir -p "$out"
run() { echo "+ $*" >&2; "$@"; }
# REV's drsnd as target/release/drsnd-base: built from a worktree into the
# same target dir, so only drsnd itself is compiled again; then this tree's.
build_base() {
  local dir
  dir=$(mktemp -d)
  git worktree add --detach -q "$dir" "$1"
  (cd "$dir" && CARGO_TARGET_DIR="$root/target" cargo build --release --quiet --bin drsnd)
  cp target/release/drsnd target/release/drsnd-base
  git worktree remove --force "$dir"
  cargo build --release --locked --quiet --bin drsnd
}
# Instructions tract runs for N frames of MODEL.json under callgrind. Only the
# total is kept; the profiles themselves are megabytes.
callgrind_total() {
  local cg="$out/callgrind.$$.$2"
  run valgrind --tool=callgrind --callgrind-out-file="$cg" \
    ./target/release/examples/infer_speed "$1" "$2" > /dev/null 2> "$cg.log"
  grep -E '^(summary|totals):' "$cg" | head -1 | awk '{print $2}'
  rm -f "$cg" "$cg.log"
}
# BENCHMARKS.md's settings; a side-by-side-only run leaves them alone.
# Side-by-side steps (http, mqtt, compare) write their own tables only.
side_only=1
for st in ${steps//,/ }; do
  case $st in http|mqtt|physics|history|envelope|speed|healthy-envelope|anomaly|denoise|model-swap|denoise-swap|wake|pool|compare) ;; *) side_only=0 ;; esac
done
if [ $side_only = 0 ]; then
  echo "$e2e_s $py_s $scale_s $quick $(git rev-parse --short HEAD)" > "$out/settings"
fi

if want model; then
echo "== 1. tract vs onnxruntime, one thread, same run" >&2
rm -f "$out/tract.txt" "$out/ort.txt" "$out/callgrind.txt"
for round in 1 2 3; do
  run ./target/release/examples/infer_speed models/drsn-cw-cwru10.json >> "$out/tract.txt"
  run $py bench/ort_speed.py models/drsn-cw-cwru10.onnx >> "$out/ort.txt"
done
run ./target/release/examples/profile_model models/drsn-cw-cwru10.onnx > "$out/profile.md"
# The same at real-time pace (one frame every 42.7 ms), where the daemon lives:
# the first call after the pause pays for cold caches, the second does not.
run ./target/release/examples/profile_model models/drsn-cw-cwru10.onnx 42.667 > "$out/profile-paced.md"
run ./target/release/examples/paced_infer --seconds 60 --repeat 2 models/drsn-cw-cwru10.onnx > "$out/paced.md"
# The paced cost follows the number of nodes. Would a shallower DRSN change
# the ratio to the PyTorch daemon? The same nets, random weights, both ways.
run $py bench/depth.py export "$out/depth"
run ./target/release/examples/paced_infer --seconds $depth_s "$out"/depth/u6.onnx "$out"/depth/u4.onnx "$out"/depth/u3.onnx > "$out/depth-tract.md"
run $py bench/depth.py torch $depth_s > "$out/depth-torch.json"
rm -rf "$out/depth"
# Instructions per frame, repeatable whatever else the machine does: the
# difference between 100 and 300 frames, so loading the model cancels out.
for n in 100 300; do
  echo "$n $(callgrind_total models/drsn-cw-cwru10.json $n)" >> "$out/callgrind.txt"
done
fi

e2e=./target/release/examples/e2e_bench
drsnd_cmd=(target/release/drsnd run --config '{dir}/drsnd.toml')

if want e2e; then
echo "== 2./3. end-to-end latency and the cost of one real-time stream" >&2
run $e2e --wav "$wav" --seconds $e2e_s -- "${drsnd_cmd[@]}" > "$out/e2e-drsnd.json"
fi

if want python; then
echo "== 6. the Python daemons a user would write, same feed, in alternating rounds" >&2
# drsnd, the onnxruntime daemon and the PyTorch daemon take turns, five
# rounds of a fifth of py_s each, so that the machine's drift (a VM's
# neighbours) falls on all three alike; the report takes medians per round.
rounds=5
round_s=$(( py_s / rounds > 20 ? py_s / rounds : 20 ))
rm -f "$out"/e2e-round-*.json "$out"/e2e-py-*.json "$out"/e2e-drsnd-short.json
for r in $(seq $rounds); do
  run $e2e --wav "$wav" --seconds $round_s -- "${drsnd_cmd[@]}" > "$out/e2e-round-$r-drsnd.json"
  for b in ort torch; do
    run $e2e --wav "$wav" --seconds $round_s -- $py bench/pydaemon.py --fifo '{dir}/s0.fifo' \
      --socket '{dir}/drsn.sock' --backend $b > "$out/e2e-round-$r-$b.json"
  done
done
fi

if want scale; then
echo "== 4. scale: streams, then subscribers" >&2
rm -f "$out"/streams-*.json "$out"/subscribers-*.json
for n in 64 128 192 256 320 384 448 512 576 640; do
  run $e2e --wav "$wav" --streams $n --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/streams-$n.json"
  $py bench/report.py --sustained "$out/streams-$n.json" || break
done
for m in 200 500 1000; do
  run $e2e --wav "$wav" --subscribers $m --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/subscribers-$m.json"
  $py bench/report.py --sustained "$out/subscribers-$m.json" || break
done
fi

if want classify; then
echo "== 5. offline throughput" >&2
run $py bench/classify_speed.py "$data" > "$out/classify.json"
fi

if want criterion; then
echo "== criterion benches" >&2
run cargo bench --locked --quiet --bench pipeline -- $crit 2>&1 | grep -E "^[a-z_0-9/]+|time:|thrpt:" > "$out/criterion.txt"
fi

if want http; then
echo "== the HTTP sink: 16 streams, 100 subscribers; off / on, idle / on, 20 pages" >&2
rm -f "$out"/http-*.json
http_rounds=3; [ $quick = 1 ] || http_rounds=5
for r in $(seq $http_rounds); do
  run $e2e --wav "$wav" --streams 16 --subscribers 100 --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/http-$r-off.json"
  run $e2e --wav "$wav" --streams 16 --subscribers 100 --http on --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/http-$r-idle.json"
  run $e2e --wav "$wav" --streams 16 --subscribers 100 --page-clients 20 --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/http-$r-pages.json"
done
$py bench/http_cost.py "$out" > "$out/http.md"
cat "$out/http.md"
fi

if want mqtt; then
echo "== the MQTT sink: 16 streams (units g) with [mqtt] off / on (summaries) / on with Sparkplug B and HA discovery, then a 50-daemon fleet" >&2
rm -f "$out"/mqtt-*.json
mport=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mosquitto -p "$mport" 2>/dev/null & mpid=$!
sleep 0.5
mqtt_rounds=3; [ $quick = 1 ] || mqtt_rounds=5
for r in $(seq $mqtt_rounds); do
  run $e2e --wav "$wav" --streams 16 --units g --subscribers 1 --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/mqtt-$r-off.json"
  run $e2e --wav "$wav" --streams 16 --units g --subscribers 1 --mqtt "mqtt://127.0.0.1:$mport" --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/mqtt-$r-on.json"
  run $e2e --wav "$wav" --streams 16 --units g --subscribers 1 --mqtt "mqtt://127.0.0.1:$mport" --plants on --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/mqtt-$r-plants.json"
done
kill $mpid
fleet_n=50; [ $quick = 1 ] && fleet_n=10
run $py bench/fleet.py target/release/drsnd models/drsn-cw-cwru10.json "$data" "$out/mqtt-fleet.json" --daemons $fleet_n --seconds 40 > /dev/null
$py bench/mqtt_cost.py "$out" > "$out/mqtt.md"
cat "$out/mqtt.md"
fi

if want physics; then
echo "== the physical measures: 16 streams without and with units = g" >&2
rm -f "$out"/physics-*.json
phys_rounds=3; [ $quick = 1 ] || phys_rounds=5
for r in $(seq $phys_rounds); do
  run $e2e --wav "$wav" --streams 16 --subscribers 1 --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/physics-$r-off.json"
  run $e2e --wav "$wav" --streams 16 --subscribers 1 --units g --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/physics-$r-on.json"
done
$py bench/side_by_side.py "$out" physics "physical measures (velocity, zone, crest, kurtosis)" > "$out/physics.md"
cat "$out/physics.md"
fi

if want history; then
echo "== the history store: 16 streams with units = g, without and with [history]" >&2
rm -f "$out"/history-*.json
# Long enough for the writes of one a minute (flush-s) to be in the figure.
hist_rounds=3; hist_s=125; [ $quick = 1 ] && hist_s=65
for r in $(seq $hist_rounds); do
  run $e2e --wav "$wav" --streams 16 --subscribers 1 --units g --seconds $hist_s -- "${drsnd_cmd[@]}" > "$out/history-$r-off.json"
  run $e2e --wav "$wav" --streams 16 --subscribers 1 --units g --history on --seconds $hist_s -- "${drsnd_cmd[@]}" > "$out/history-$r-on.json"
done
$py bench/side_by_side.py "$out" history "history store (10 s rows, one write a minute; beside units = g)" > "$out/history.md"
cat "$out/history.md"
year_days=365; [ $quick = 1 ] && year_days=60
run ./target/release/examples/history_year --days $year_days --streams 16 > "$out/history-year.json"
cat "$out/history-year.json"
fi

if want envelope; then
echo "== the envelope evidence: 16 streams with units = g, without and with rpm and bearing" >&2
rm -f "$out"/envelope-*.json
env_rounds=3; [ $quick = 1 ] || env_rounds=5
for r in $(seq $env_rounds); do
  run $e2e --wav "$wav" --streams 16 --subscribers 1 --units g --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/envelope-$r-off.json"
  run $e2e --wav "$wav" --streams 16 --subscribers 1 --units g --rpm 1797 --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/envelope-$r-on.json"
done
$py bench/side_by_side.py "$out" envelope "envelope evidence (rpm and bearing, beside units = g)" > "$out/envelope.md"
cat "$out/envelope.md"
fi

if want speed; then
echo "== the shaft speed: 16 streams with rpm and bearing, the speed pinned and measured" >&2
rm -f "$out"/speed-*.json
speed_rounds=3; [ $quick = 1 ] || speed_rounds=5
for r in $(seq $speed_rounds); do
  run $e2e --wav "$wav" --streams 16 --subscribers 1 --units g --rpm 1797 --rpm-range 1797,1797 --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/speed-$r-off.json"
  run $e2e --wav "$wav" --streams 16 --subscribers 1 --units g --rpm 1797 --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/speed-$r-on.json"
done
$py bench/side_by_side.py "$out" speed "shaft speed measured (rpm-range ±5 %, beside it pinned)" > "$out/speed.md"
cat "$out/speed.md"
fi

if want healthy-envelope; then
echo "== the healthy envelope: 16 streams with rpm, bearing and a baseline, without and with its envelope normal" >&2
rm -f "$out"/healthy-envelope-*.json
# CWRU's healthy recording holds 4 envelope windows and a normal needs 5:
# it is given twice. Both baselines come from the same frames; only the
# envelope normal (and the comparison against it each window) differs.
he_plain=$(mktemp --suffix .baseline.json); he_env=$(mktemp --suffix .baseline.json)
he_learn=(./target/release/drsnd baseline learn --units g "$data/1797_Normal_48k.wav" "$data/1797_Normal_48k.wav")
run "${he_learn[@]}" --out "$he_plain" 2> /dev/null
run "${he_learn[@]}" --rpm 1797 --bearing-orders 3.5848,5.4152,2.357,0.39828 --out "$he_env" 2> /dev/null
he_rounds=3; [ $quick = 1 ] || he_rounds=5
for r in $(seq $he_rounds); do
  run $e2e --wav "$wav" --streams 16 --subscribers 1 --units g --rpm 1797 --baseline "$he_plain" --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/healthy-envelope-$r-off.json"
  run $e2e --wav "$wav" --streams 16 --subscribers 1 --units g --rpm 1797 --baseline "$he_env" --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/healthy-envelope-$r-on.json"
done
rm -f "$he_plain" "$he_env"
$py bench/side_by_side.py "$out" healthy-envelope "baseline's envelope normal (beside the same baseline without it)" > "$out/healthy-envelope.md"
cat "$out/healthy-envelope.md"
fi

if want anomaly; then
echo "== the baseline and physics: one real-time stream, classifier alone vs all on" >&2
rm -f "$out"/anomaly-*.json
base_file=$(mktemp --suffix .baseline.json)
# Learned from the first half of the healthy recording; the bench feeds a
# fault, so every frame is scored far outside it (the costly path is the same).
run ./target/release/drsnd baseline learn --out "$base_file" "$data/1797_Normal_48k.wav" 2> /dev/null
an_rounds=3; [ $quick = 1 ] || an_rounds=5
for r in $(seq $an_rounds); do
  run $e2e --wav "$wav" --streams 1 --subscribers 1 --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/anomaly-$r-off.json"
  run $e2e --wav "$wav" --streams 1 --subscribers 1 --units g --rpm 1797 --baseline "$base_file" --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/anomaly-$r-on.json"
done
rm -f "$base_file"
$py bench/side_by_side.py "$out" anomaly "baseline, anomaly score, physical measures and envelope evidence" > "$out/anomaly.md"
cat "$out/anomaly.md"
fi

if want denoise; then
echo "== the denoiser: one real-time stream without and with [denoise]" >&2
rm -f "$out"/denoise-*.json
dn_rounds=3; [ $quick = 1 ] || dn_rounds=5
for r in $(seq $dn_rounds); do
  run $e2e --wav "$wav" --streams 1 --subscribers 1 --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/denoise-$r-off.json"
  run $e2e --wav "$wav" --streams 1 --subscribers 1 --denoise models/drsn-denoise.json --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/denoise-$r-on.json"
done
$py bench/side_by_side.py "$out" denoise "DRSN denoiser (overlap-add, socket with one reader)" > "$out/denoise.md"
cat "$out/denoise.md"
fi

if want wake; then
echo "== one real-time stream, woken every frame and every 4 frames" >&2
rm -f "$out"/wake-*.json
wk_rounds=3; [ $quick = 1 ] || wk_rounds=5
for r in $(seq $wk_rounds); do
  run $e2e --wav "$wav" --streams 1 --subscribers 1 --frames-per-wake 1 --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/wake-$r-off.json"
  run $e2e --wav "$wav" --streams 1 --subscribers 1 --frames-per-wake 4 --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/wake-$r-on.json"
done
$py bench/side_by_side.py "$out" wake "frames-per-wake = 4 (off: 1)" > "$out/wake.md"
cat "$out/wake.md"
fi

if want pool; then
echo "== shared analysis threads against a thread per stream" >&2
pool_base=${DRSN_POOL_BASE:-93869ce}
build_base "$pool_base"
pool_baseline=$(mktemp --suffix .baseline.json)
run ./target/release/drsnd baseline learn --out "$pool_baseline" "$data/1797_Normal_48k.wav" 2> /dev/null
every=(--units g --rpm 1797 --baseline "$pool_baseline" --denoise models/drsn-denoise.json)
rm -f "$out"/pool-*.json
pool_rounds=2; [ $quick = 1 ] || pool_rounds=3
for r in $(seq $pool_rounds); do
  for sc in aligned16 staggered16 every16 one; do
    case $sc in
      aligned16) opts=(--streams 16) ;;
      staggered16) opts=(--streams 16 --stagger on) ;;
      every16) opts=(--streams 16 "${every[@]}") ;;
      one) opts=(--streams 1) ;;
    esac
    # The order rotates with the round, so a drift falls on every variant.
    variants=(base frame hop); k=$(( (r - 1) % 3 ))
    for v in "${variants[@]:$k}" "${variants[@]:0:$k}"; do
      bin=target/release/drsnd; extra=()
      [ $v = base ] && bin=target/release/drsnd-base
      [ $v = hop ] && extra=(--pool-wake hop)
      run $e2e --wav "$wav" "${opts[@]}" "${extra[@]}" --seconds $scale_s -- $bin run --config '{dir}/drsnd.toml' > "$out/pool-$sc-$r-$v.json"
    done
  done
done
$py bench/pool.py "$out" "$pool_base" "$(git rev-parse --short HEAD)" > "$out/pool.md"
cat "$out/pool.md"
fi

# A shipped model against the one it replaced, side by side: tract at
# real-time pace with the two taking turns, then one real-time stream of the
# daemon with each in alternating rounds. Arguments: the step's name, the
# model's file stem under models/, the e2e_bench option that loads it, the
# revision holding the old one, and what the model is.
swap_models() {
  local step=$1 stem=$2 flag=$3 old_rev=$4 what=$5 old new r rounds
  old=$(mktemp -d)/$old_rev
  mkdir -p "$old"
  for f in json onnx; do git show "$old_rev:models/$stem.$f" > "$old/$stem.$f"; done
  new=models/$stem
  rm -f "$out/$step"-*
  {
    echo "# The shipped $what against the one it replaced ($old_rev)"
    echo
    ver() { sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$1" | head -1; }
    echo "off = model $(ver "$old/$stem.json") (from $old_rev), on = model $(ver "$new.json") (this tree)"
    echo
    if [ "$step" = model-swap ]; then
      echo "## Instructions per frame (callgrind, 300 minus 100 frames, over 200)"
      echo
      echo "| model | instructions per frame |"
      echo "|---|---:|"
      for m in "$old/$stem" "$new"; do
        echo "| $m | $(( ($(callgrind_total "$m.json" 300) - $(callgrind_total "$m.json" 100)) / 200 )) |"
      done
      echo
    fi
    echo "## tract at real-time pace, one call every 42.7 ms, the two models taking turns"
    echo
    ./target/release/examples/paced_infer --seconds $depth_s "$old/$stem.onnx" "$new.onnx"
  } > "$out/$step-head.md"
  rounds=3; [ $quick = 1 ] || rounds=5
  for r in $(seq $rounds); do
    run $e2e --wav "$wav" --streams 1 --subscribers 1 "$flag" "$old/$stem.json" --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/$step-$r-off.json"
    run $e2e --wav "$wav" --streams 1 --subscribers 1 "$flag" "$new.json" --seconds $scale_s -- "${drsnd_cmd[@]}" > "$out/$step-$r-on.json"
  done
  rm -rf "$(dirname "$old")"
  { cat "$out/$step-head.md"; echo
    $py bench/side_by_side.py "$out" "$step" "shipped $what (on) instead of the old one (off)"; } > "$out/$step.md"
  rm -f "$out/$step-head.md"
  cat "$out/$step.md"
}

if want model-swap; then
echo "== the shipped model against the one it replaced, side by side" >&2
swap_models model-swap drsn-cw-cwru10 --model "${DRSN_OLD_MODEL_REV:-6b5d6e8}" classifier
fi

if want denoise-swap; then
echo "== the shipped denoiser against the one it replaced, side by side" >&2
swap_models denoise-swap drsn-denoise --denoise "${DRSN_OLD_DENOISE_REV:-9ba375b}" denoiser
fi

if want compare; then
echo "== side by side with ${base_rev}: one real-time stream, alternating rounds" >&2
build_base "$base_rev"
rounds=6
round_s=$(( e2e_s / 2 > 20 ? e2e_s / 2 : 20 ))
prefix=compare; opts=(); cmp_wav=$wav
title="One real-time stream, 1797_IR_14.wav at 12 kHz"
if [ "${compare_snapshots:-0}" = 1 ]; then
  # 4 s of an inner-race fault, then 4 s healthy (the 48 kHz baseline at
  # 12 kHz), over and over: every stream raises a fault, with its evidence
  # snapshot, every 8 s. Made here, never committed.
  prefix=compare-snapshots; cmp_wav=$(mktemp --suffix .wav)
  title="16 real-time streams raising a fault every 8 s, [snapshots] and state-dir on"
  (cd models/train && ../.venv/bin/python - "$wav" "$data/1797_Normal_48k.wav" "$cmp_wav" <<'PY'
import sys
import numpy as np
from scipy.io import wavfile
from drsn_train.data import read_wav, to_model_rate
fault = to_model_rate(*read_wav(sys.argv[1]), sys.argv[1])
rate, x = read_wav(sys.argv[2])
normal = to_model_rate(rate, x, sys.argv[2])
n = 4 * 12_000
parts = [p for k in range(min(len(fault), len(normal)) // n) for p in (fault[k * n:(k + 1) * n], normal[k * n:(k + 1) * n])]
wavfile.write(sys.argv[3], 12_000, np.concatenate(parts).astype(np.float32))
PY
  )
  opts=(--streams 16 --snapshots on)
elif [ -n "${compare_streams:-}" ]; then
  prefix=compare-$compare_streams
  title="$compare_streams real-time streams, 1797_IR_14.wav at 12 kHz, the classifier"
  opts=(--streams "$compare_streams")
  if [ "${compare_all:-0}" = 1 ]; then
    prefix=$prefix-all
    title="$compare_streams real-time streams, 1797_IR_14.wav at 12 kHz, every analysis (classifier, denoiser, baseline, physics, envelope)"
    base_file=$(mktemp --suffix .baseline.json)
    run ./target/release/drsnd baseline learn --out "$base_file" "$data/1797_Normal_48k.wav" 2> /dev/null
    opts+=(--units g --rpm 1797 --baseline "$base_file" --denoise models/drsn-denoise.json)
  fi
fi
rm -f "$out/$prefix"-[0-9]*.json
for r in $(seq $rounds); do
  # Alternate which goes first, so a drift in the machine falls on both.
  if [ $((r % 2)) = 1 ]; then order="base head"; else order="head base"; fi
  for which in $order; do
    bin=target/release/drsnd; [ $which = base ] && bin=target/release/drsnd-base
    run $e2e --wav "$cmp_wav" "${opts[@]}" --seconds $round_s -- $bin run --config '{dir}/drsnd.toml' > "$out/$prefix-$r-$which.json"
  done
done
$py bench/compare.py "$base_rev" "$(git rev-parse --short HEAD)" "$out" "$prefix" "$title" > "$out/$prefix.md"
cat "$out/$prefix.md"
exit 0
fi

[ $side_only = 1 ] && exit 0
$py bench/report.py --write BENCHMARKS.md "$out"
echo "wrote BENCHMARKS.md" >&2
