#!/usr/bin/env bash
# The arm64 build, checked under QEMU user emulation on this amd64 machine,
# with Debian's packages only (scripts/setup-cross.sh installs them):
#   scripts/test-arm64.sh
# 1. cross-builds drsnd for arm64 (and the amd64 release build to compare);
# 2. `drsnd check` under emulation, and once with binfmt off, where the
#    model's trial load (a child process) cannot start: exit 78 naming why;
# 3. `drsnd classify --json` on the 16 CWRU recordings at 1797 rpm (every
#    fault and the healthy one; hop 2048, since emulation runs the network
#    about a hundred times slower): labels, families, probabilities and
#    thresholds equal to the amd64 build's within 1e-4;
# 4. a short `drsnd run` replay whose socket the amd64 `drsnd watch` reads;
# 5. the library's unit tests, built for arm64 and run under emulation;
# 6. the arm64 .deb installed into a throwaway root: what the amd64 package
#    test checks (tests/it/package.rs, run with DRSN_DEB_ARCH=arm64).
# Not part of .ci/run: from scratch it takes longer than CI's budget (the
# figure is in README.md, "Install"). Run it before every release.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
data=${DRSN_DATA:-$root/../shared/cwru}
step() { echo "== $* ($(date -u +%T))" >&2; }
t_start=$(date +%s)

step "1. builds"
scripts/setup-cross.sh
arm=$(scripts/cross-build.sh)
cargo build --release --locked --quiet --bin drsnd
amd=target/release/drsnd
file "$arm" | grep -q "ARM aarch64" || { echo "$arm is not an arm64 binary" >&2; exit 1; }
work=$(mktemp -d)
binfmt=/proc/sys/fs/binfmt_misc/qemu-aarch64
trap 'echo 1 > $binfmt 2>/dev/null || true; rm -rf "$work"' EXIT

step "2. drsnd check under emulation"
"$arm" check --model models/drsn-cw-cwru10.json --denoise-model models/drsn-denoise.json \
  --wav "$data/1797_IR_14.wav" | tee "$work/check.txt" >&2
tail -1 "$work/check.txt" | grep -qx ok
# Without binfmt the trial load's child cannot run: a clear reason, exit 78.
echo 0 > $binfmt
set +e
qemu-aarch64-static "$arm" check --model models/drsn-cw-cwru10.json \
  --wav "$data/1797_IR_14.wav" > /dev/null 2> "$work/nobinfmt.txt"
rc=$?
set -e
echo 1 > $binfmt
cat "$work/nobinfmt.txt" >&2
[ $rc = 78 ] || { echo "without binfmt: exit $rc, want 78" >&2; exit 1; }
grep -Eq "cannot run .*check-model: .+|trial load .*failed with .+" "$work/nobinfmt.txt" \
  || { echo "without binfmt: the reason does not say why the child failed" >&2; exit 1; }

step "3. classify the CWRU recordings at 1797 rpm, arm64 against amd64"
files=("$data"/1797_*.wav)
"$amd" classify --json --hop 2048 "${files[@]}" > "$work/amd64.ndjson"
"$arm" classify --json --hop 2048 "${files[@]}" > "$work/arm64.ndjson"
python3 - "$work/amd64.ndjson" "$work/arm64.ndjson" <<'PY'
import json, sys
def frames(p):
    return [m for m in map(json.loads, open(p)) if m.get("type") == "frame"]
a, b = frames(sys.argv[1]), frames(sys.argv[2])
assert len(a) == len(b) and a, f"{len(a)} frames on amd64, {len(b)} on arm64"
worst = 0.0
for x, y in zip(a, b):
    for k in ("stream", "sample_index", "label", "family"):
        assert x.get(k) == y.get(k), f"{k}: {x.get(k)} on amd64, {y.get(k)} on arm64 at {x['stream']} {x['sample_index']}"
    pairs = list(zip(x["probs"], y["probs"])) + list(zip(x.get("family_probs", []), y.get("family_probs", [])))
    for tx, ty in zip(x["thresholds"], y["thresholds"]):
        pairs += list(zip(tx, ty))
    worst = max([worst] + [abs(u - v) for u, v in pairs])
assert worst <= 1e-4, f"largest difference {worst:.2e} > 1e-4"
print(f"{len(a)} frames of {len({f['stream'] for f in a})} recordings: every label and family equal, "
      f"probabilities and thresholds within {worst:.1e}", file=sys.stderr)
PY

step "4. drsnd run (arm64) read by drsnd watch (amd64)"
sock=$work/drsn.sock
"$arm" run --socket "$sock" --model models/drsn-cw-cwru10.json --hop 2048 --wav "$data/1797_IR_14.wav" \
  2> "$work/run.log" &
pid=$!
for _ in $(seq 600); do [ -S "$sock" ] && break; sleep 0.1; done
# The recording lasts 10 s in real time (longer if emulation cannot keep up:
# the replay then waits for the worker); the daemon serves on until told.
timeout 30 "$amd" watch --socket "$sock" --json > "$work/watch.ndjson" || true
kill -TERM $pid
wait $pid || { cat "$work/run.log" >&2; exit 1; }
python3 - "$work/watch.ndjson" "$work/amd64.ndjson" "$data/1797_IR_14.wav" <<'PY'
import json, sys
watch = [m for m in map(json.loads, open(sys.argv[1])) if m.get("type") == "frame"]
ref = {f["sample_index"]: f["label"] for f in map(json.loads, open(sys.argv[2]))
       if f.get("type") == "frame" and f["stream"] == sys.argv[3]}
assert ref, f"no amd64 frames of {sys.argv[3]}"
assert len(watch) >= 40, f"watch saw {len(watch)} frames"
seqs = [f["seq"] for f in watch]
assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gaps in seq"
same = sum(ref.get(f["sample_index"]) == f["label"] for f in watch)
assert same == len(watch), f"{len(watch) - same} labels differ from amd64 classify"
print(f"watch read {len(watch)} frames in order, every label as amd64's classify", file=sys.stderr)
PY

step "5. the library's unit tests on arm64"
scripts/cross-build.sh --tests

step "6. the arm64 .deb in a throwaway root"
DRSN_DEB_ARCH=arm64 DRSN_DEB_BIN="$root/$arm" cargo test --locked --quiet --features fault-injection --test it package:: >&2

echo "arm64 checks passed in $(( $(date +%s) - t_start )) s" >&2
