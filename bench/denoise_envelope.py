#!/usr/bin/env python3
"""Does the fault survive the denoiser? For every IR and OR6 recording of
../shared/cwru (7/14/21 mils, 0/1/2 hp) with Gaussian noise at 0 dB SNR
(fixed seed per file), the envelope prominence of the recording's own
defect line (BPFI for IR, BPFO for OR6; CWRU orders), window by window,
in the noisy input and in `drsnd denoise`'s output of it, both read by the
real binary (`drsnd classify --json --units g --rpm R --bearing-orders`).
Prints the share of windows where the denoised prominence is at least the
noisy one, per recording and in all (target: >= 90 %).

Usage: models/.venv/bin/python bench/denoise_envelope.py [--drsnd target/release/drsnd]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(__file__))
from anomaly_eval import CWRU, read_wav, write_wav  # noqa: E402
from envelope_eval import ORDERS, noisy  # noqa: E402

LINE = {"IR": "bpfi", "OR6": "bpfo"}


def prominences(exe, path, rpm, key):
    out = subprocess.run([exe, "classify", "--json", "--units", "g", "--rpm", str(rpm),
                          "--bearing-orders", ORDERS, path],
                         check=True, capture_output=True, text=True).stdout
    seen, last = {}, None
    for line in out.splitlines():
        f = json.loads(line)
        e = f.get("envelope")
        if e is not None and e != last:
            seen[f["sample_index"]] = e[key]
            last = e
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drsnd", default="target/release/drsnd")
    a = ap.parse_args()
    rows, total, better = [], 0, 0
    with tempfile.TemporaryDirectory() as d:
        for fault in ("IR", "OR6"):
            for size in (7, 14, 21):
                for rpm in (1797, 1772, 1750):
                    name = f"{rpm}_{fault}_{size}.wav"
                    x, rate = read_wav(os.path.join(CWRU, name))
                    noisy_path, den_path = os.path.join(d, "n.wav"), os.path.join(d, "d.wav")
                    write_wav(noisy_path, noisy(x, 0.0, zlib.crc32(name.encode())), rate)
                    subprocess.run([a.drsnd, "denoise", noisy_path, den_path], check=True,
                                   capture_output=True)
                    key = LINE[fault]
                    n = prominences(a.drsnd, noisy_path, rpm, key)
                    dn = prominences(a.drsnd, den_path, rpm, key)
                    common = sorted(set(n) & set(dn))
                    ok = sum(dn[i] >= n[i] for i in common)
                    gain = sum(dn[i] - n[i] for i in common) / max(len(common), 1)
                    rows.append((name, key, ok, len(common), gain))
                    total += len(common)
                    better += ok
    print("| recording (0 dB Gaussian) | line | windows | denoised >= noisy | mean change, dB |")
    print("|---|---|---:|---:|---:|")
    for name, key, ok, n, gain in rows:
        print(f"| {name} | {key} | {n} | {100 * ok / max(n, 1):.0f} % | {gain:+.2f} |")
    print(f"\nIn all: {better} of {total} windows ({100 * better / max(total, 1):.1f} %) "
          "have at least the noisy input's prominence after denoising.")


if __name__ == "__main__":
    main()
