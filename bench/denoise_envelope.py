#!/usr/bin/env python3
"""Does the fault survive the denoiser? For every IR and OR6 recording of
../shared/cwru (7/14/21 mils, 0/1/2 hp) with Gaussian noise at 0 dB SNR
(fixed seed per file), the envelope prominence of the recording's own
defect line (BPFI for IR, BPFO for OR6; CWRU orders), window by window,
in the noisy input and in `drsnd denoise`'s output of it, both read by the
real binary (`drsnd classify --json --units g --rpm R --bearing-orders`).
Prints the share of windows where the denoised prominence is at least the
noisy one, per recording and in all (target: >= 90 %), two ways:

- own band: each signal demodulated in the band drsnd picks for it, window
  by window (the daemon's own evidence). The noisy input and the denoised
  output often get different bands, so this also measures band-picking luck;
- fault band: both demodulated in one band per recording (`--envelope-band`),
  the one drsnd picks most often on the clean recording: where the fault's
  impacts ring. Same band on both sides, so only the denoiser differs.

Usage: models/.venv/bin/python bench/denoise_envelope.py [--drsnd target/release/drsnd]
                                                         [--model models/drsn-denoise.json]
"""
import argparse
import collections
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


def envelopes(exe, path, rpm, band=None):
    """Sample index -> envelope evidence of each distinct evaluation."""
    cmd = [exe, "classify", "--json", "--units", "g", "--rpm", str(rpm), "--bearing-orders", ORDERS]
    if band:
        cmd += ["--envelope-band", f"{band[0]},{band[1]}"]
    out = subprocess.run(cmd + [path], check=True, capture_output=True, text=True).stdout
    seen, last = {}, None
    for line in out.splitlines():
        f = json.loads(line)
        e = f.get("envelope")
        if e is not None and e != last:
            seen[f["sample_index"]] = e
            last = e
    return seen


def prominences(exe, path, rpm, key, band=None):
    return {i: e[key] for i, e in envelopes(exe, path, rpm, band).items()}


def compare(n, dn):
    common = sorted(set(n) & set(dn))
    ok = sum(dn[i] >= n[i] for i in common)
    gain = sum(dn[i] - n[i] for i in common) / max(len(common), 1)
    return ok, len(common), gain


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drsnd", default="target/release/drsnd")
    ap.add_argument("--model", default="models/drsn-denoise.json", help="the denoiser's manifest")
    a = ap.parse_args()
    rows, totals = [], {"own": [0, 0], "fault": [0, 0]}
    with tempfile.TemporaryDirectory() as d:
        for fault in ("IR", "OR6"):
            for size in (7, 14, 21):
                for rpm in (1797, 1772, 1750):
                    name = f"{rpm}_{fault}_{size}.wav"
                    clean_path = os.path.join(CWRU, name)
                    x, rate = read_wav(clean_path)
                    noisy_path, den_path = os.path.join(d, "n.wav"), os.path.join(d, "d.wav")
                    write_wav(noisy_path, noisy(x, 0.0, zlib.crc32(name.encode())), rate)
                    subprocess.run([a.drsnd, "denoise", "--model", a.model, noisy_path, den_path],
                                   check=True, capture_output=True)
                    key = LINE[fault]
                    own = compare(prominences(a.drsnd, noisy_path, rpm, key),
                                  prominences(a.drsnd, den_path, rpm, key))
                    bands = collections.Counter(tuple(e["band_hz"])
                                                for e in envelopes(a.drsnd, clean_path, rpm).values())
                    band = bands.most_common(1)[0][0]
                    fixed = compare(prominences(a.drsnd, noisy_path, rpm, key, band),
                                    prominences(a.drsnd, den_path, rpm, key, band))
                    rows.append((name, key, band, own, fixed))
                    for k, r in (("own", own), ("fault", fixed)):
                        totals[k][0] += r[0]
                        totals[k][1] += r[1]
    print("| recording (0 dB Gaussian) | line | windows | own band: denoised >= noisy | mean change, dB "
          "| fault band, Hz | fault band: denoised >= noisy | mean change, dB |")
    print("|---|---|---:|---:|---:|---|---:|---:|")
    for name, key, band, (ok, n, gain), (fok, fn, fgain) in rows:
        print(f"| {name} | {key} | {n} | {100 * ok / max(n, 1):.0f} % | {gain:+.2f} "
              f"| {band[0]:.0f}-{band[1]:.0f} | {100 * fok / max(fn, 1):.0f} % | {fgain:+.2f} |")
    for k, label in (("own", "own band"), ("fault", "fault band")):
        ok, n = totals[k]
        print(f"\n{label}: {ok} of {n} windows ({100 * ok / max(n, 1):.1f} %) have at least the noisy "
              "input's prominence after denoising.")


if __name__ == "__main__":
    main()
