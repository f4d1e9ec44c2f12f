#!/usr/bin/env python3
"""Shaft speed from the signal, measured on CWRU (issue 34, acceptance 1).

For every CWRU recording, runs `drsnd classify --json` with the nominal
speed set -3 %, 0 and +3 % off the recording's rpm (its file name, the
data set's tachometer reading) and takes the speed of the last frame:
within 0.5 % of the file name's rpm, and measured from the signal, counts.

    python3 bench/speed_eval.py [--drsnd target/release/drsnd] [--data ../shared/cwru]

Prints one line per recording and offset, then the count per offset.
"""
import argparse
import json
import pathlib
import subprocess
import sys

ORDERS = "3.5848,5.4152,2.357,0.39828"  # the 6205's (../shared/cwru/README.md)
OFFSETS = (-0.03, 0.0, 0.03)


def last_speed(drsnd, wav, rpm):
    out = subprocess.run(
        [drsnd, "classify", "--json", "--units", "g", "--rpm", f"{rpm:.1f}",
         "--bearing-orders", ORDERS, str(wav)],
        check=True, capture_output=True, text=True).stdout
    speed = None
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("type") == "frame" and msg.get("speed"):
            speed = msg["speed"]
    return speed


def main():
    here = pathlib.Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drsnd", default=str(here / "target/release/drsnd"))
    ap.add_argument("--data", default=str(here.parent / "shared/cwru"))
    a = ap.parse_args()
    files = sorted(pathlib.Path(a.data).glob("*.wav"))
    if not files:
        sys.exit(f"no CWRU recordings in {a.data}")
    hits = {o: 0 for o in OFFSETS}
    for wav in files:
        true = float(wav.name.split("_")[0])
        for off in OFFSETS:
            s = last_speed(a.drsnd, wav, true * (1 + off))
            err = (s["rpm"] / true - 1) * 100 if s else float("nan")
            ok = s is not None and s["source"] == "signal" and abs(err) <= 0.5
            hits[off] += ok
            print(f"{wav.name:20s} nominal {off:+.0%}: "
                  f"{s['rpm'] if s else float('nan'):7.1f} rpm ({s['source'] if s else '-'}, "
                  f"z {s['confidence'] if s else 0:.1f}) error {err:+.2f} % {'ok' if ok else 'MISS'}")
    for off in OFFSETS:
        print(f"nominal {off:+.0%}: {hits[off]} of {len(files)} within 0.5 %")


if __name__ == "__main__":
    main()
