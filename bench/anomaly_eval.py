#!/usr/bin/env python3
"""Frame-level evaluation of the per-machine baseline on real recordings,
with the real binary: `drsnd baseline learn`, then `drsnd classify
--baseline --json`. Prints the tables of docs/monitoring.md ("Baseline and
anomaly score").

For every case: the share of healthy test frames above 1.0 (false alarms),
the share of fault frames above 1.0 as recorded and scaled to the healthy
recording's RMS (on UESTC faults are 10-50x louder, so level alone would
look perfect), and the frame-level ROC AUC of healthy test frames against
the scaled faults. Beside it, a reference: a diagonal Gaussian on 16 log
band energies (numpy, the same frame length and hop at the recording's own
rate), the simple detector the baseline has to beat.

Usage: models/.venv/bin/python bench/anomaly_eval.py [--drsnd target/release/drsnd]
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))
UESTC = os.path.join(SHARED, "uestc")
CWRU = os.path.join(SHARED, "cwru")


def read_wav(path):
    """Mono float32 (or 16-bit) WAV -> (samples, rate)."""
    with open(path, "rb") as f:
        data = f.read()
    pos, fmt, rate, ch, bits = 12, None, None, 1, 32
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt, ch, rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
        elif cid == b"data":
            if fmt == 3 or (fmt == 0xFFFE and bits == 32):
                x = np.frombuffer(body, "<f4")
            else:
                x = np.frombuffer(body, "<i2").astype(np.float32) / 32768.0
            return x[::ch].astype(np.float32), rate
        pos += 8 + size + (size & 1)
    raise SystemExit(f"{path}: no data chunk")


def write_wav(path, x, rate):
    body = np.asarray(x, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(body)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        f.write(b"data" + struct.pack("<I", len(body)) + body)


def rms(x):
    x = x - x.mean()
    return float(np.sqrt(np.mean(x * x)))


class Drsnd:
    def __init__(self, exe):
        self.exe = exe

    def learn(self, out, files):
        subprocess.run([self.exe, "baseline", "learn", "--out", out, *files], check=True,
                       stderr=subprocess.DEVNULL)

    def scores(self, baseline, path):
        out = subprocess.run([self.exe, "classify", "--json", "--baseline", baseline, path],
                             check=True, capture_output=True, text=True).stdout
        return np.array([json.loads(l)["anomaly"] for l in out.splitlines()])


def auc(neg, pos):
    """P(score of a positive > score of a negative), ties half."""
    neg, pos = np.sort(neg), np.asarray(pos)
    lo = np.searchsorted(neg, pos, "left")
    hi = np.searchsorted(neg, pos, "right")
    return float(((lo + hi) / 2).sum() / (len(neg) * len(pos)))


def to_model_rate(x, rate, to=12000):
    """x at `to` samples/s (FFT resampling of the whole signal): the
    reference sees the band the daemon sees, not the recording's wider one."""
    if rate == to:
        return x
    n = int(round(len(x) * to / rate))
    spec = np.fft.rfft(x)[: n // 2 + 1]
    return np.fft.irfft(spec, n) * (n / len(x))


class BandGaussian:
    """The reference: diagonal Gaussian on 16 log-spaced log band energies
    of 2048-sample frames at the model's 12 kHz, hop 512 (the daemon's)."""

    def __init__(self, frame_s=2048 / 12000, hop_s=512 / 12000):
        self.n = int(round(frame_s * 12000))
        self.hop = int(round(hop_s * 12000))
        half = self.n // 2
        self.edges = np.unique(np.round(2 * (half / 2) ** (np.arange(17) / 16)).astype(int))
        self.win = np.hanning(self.n)

    def feats(self, x, rate):
        x = to_model_rate(x, rate)
        k = 1 + (len(x) - self.n) // self.hop
        fr = np.stack([x[i * self.hop:i * self.hop + self.n] for i in range(k)])
        fr = fr - fr.mean(axis=1, keepdims=True)
        p = np.abs(np.fft.rfft(fr * self.win, axis=1)) ** 2
        return np.log10(np.stack([p[:, a:b].sum(1) for a, b in zip(self.edges, self.edges[1:])], 1) + 1e-20)

    def fit(self, xs):
        f = np.concatenate([self.feats(x, r) for x, r in xs])
        self.mu, self.sd = f.mean(0), f.std(0) + 1e-9
        d = np.sqrt((((f - self.mu) / self.sd) ** 2).sum(1))
        self.limit = np.quantile(d, 0.999) * 1.25
        return self

    def score(self, x, rate):
        return np.sqrt((((self.feats(x, rate) - self.mu) / self.sd) ** 2).sum(1)) / self.limit


def case(drsnd, tmp, name, learn, healthy, faults):
    """learn/healthy: [(path, samples, rate)]; faults: {label: [(path, x, rate)]}."""
    base = os.path.join(tmp, name.replace(" ", "_") + ".baseline.json")
    drsnd.learn(base, [p for p, _, _ in learn])
    ref = BandGaussian().fit([(x, r) for _, x, r in learn])
    h_rms = np.mean([rms(x) for _, x, _ in healthy])
    neg = np.concatenate([drsnd.scores(base, p) for p, _, _ in healthy])
    neg_ref = np.concatenate([ref.score(x, r) for _, x, r in healthy])
    row = {"case": name, "healthy_frames": len(neg), "healthy_above": float((neg > 1).mean()),
           "ref_healthy_above": float((neg_ref > 1).mean())}
    pos, pos_s, ref_s = [], [], []
    for label, items in faults.items():
        for p, x, r in items:
            pos.append(drsnd.scores(base, p))
            scaled = os.path.join(tmp, "scaled.wav")
            xs = (x - x.mean()) * (h_rms / rms(x)) + x.mean()
            write_wav(scaled, xs, r)
            pos_s.append(drsnd.scores(base, scaled))
            ref_s.append(ref.score(xs, r))
    pos, pos_s, ref_s = map(np.concatenate, (pos, pos_s, ref_s))
    row.update(incipient(drsnd, tmp, base, ref, healthy, faults, h_rms, neg, neg_ref))
    row.update({
        "fault_frames": len(pos),
        "fault_above": float((pos > 1).mean()),
        "scaled_above": float((pos_s > 1).mean()),
        "ref_scaled_above": float((ref_s > 1).mean()),
        "auc_scaled": auc(neg, pos_s),
        "ref_auc_scaled": auc(neg_ref, ref_s),
    })
    return row


MIX_DB = (-6, -12, -20)


def incipient(drsnd, tmp, base, ref, healthy, faults, h_rms, neg, neg_ref):
    """An incipient fault: healthy running with the fault's vibration added
    at MIX_DB relative to the healthy RMS. Share above 1.0 and ROC AUC."""
    rate = healthy[0][2]
    h = np.concatenate([x for _, x, _ in healthy])
    out = {}
    for db in MIX_DB:
        ours, theirs = [], []
        for items in faults.values():
            for _, x, r in items:
                assert r == rate, "mixing needs healthy and fault at one rate"
                n = min(len(x), len(h))
                f = x[:n] - x[:n].mean()
                y = (h[:n] + f * (h_rms / rms(f)) * 10 ** (db / 20)).astype(np.float32)
                path = os.path.join(tmp, "mixed.wav")
                write_wav(path, y, r)
                ours.append(drsnd.scores(base, path))
                theirs.append(ref.score(y, r))
        ours, theirs = np.concatenate(ours), np.concatenate(theirs)
        out[f"mix{db}"] = [float((ours > 1).mean()), auc(neg, ours),
                           float((theirs > 1).mean()), auc(neg_ref, theirs)]
    return out


def load(folder, name):
    p = os.path.join(folder, name + ".wav")
    x, r = read_wav(p)
    return p, x, r


def uestc_cases(drsnd, tmp):
    rows = []
    for rpm in (800, 1000, 1200, 1400):
        learn = [load(UESTC, f"N_{rpm}_{k}") for k in (1, 2)]
        healthy = [load(UESTC, f"N_{rpm}_{k}") for k in (3, 4, 5)]
        faults = {c: [load(UESTC, f"{c}_{rpm}_{k}") for k in range(1, 6)] for c in "BIO"}
        rows.append(case(drsnd, tmp, f"UESTC {rpm} rpm", learn, healthy, faults))
    learn = [load(UESTC, f"N_{rpm}_{k}") for rpm in (800, 1200) for k in (1, 2)]
    healthy = [load(UESTC, f"N_1000_{k}") for k in range(1, 6)]
    faults = {c: [load(UESTC, f"{c}_1000_{k}") for k in range(1, 6)] for c in "BIO"}
    rows.append(case(drsnd, tmp, "UESTC learn 800+1200, test 1000", learn, healthy, faults))
    return rows


def cwru_cases(drsnd, tmp):
    x, r = read_wav(os.path.join(CWRU, "1797_Normal_48k.wav"))
    half = len(x) // 2
    a, b = os.path.join(tmp, "normal_a.wav"), os.path.join(tmp, "normal_b.wav")
    write_wav(a, x[:half], r)
    # The test half at the faults' 12 kHz, so faults can be mixed into it.
    second = to_model_rate(x[half:].astype(np.float64), r).astype(np.float32)
    write_wav(b, second, 12000)
    faults = {}
    for f in sorted(os.listdir(CWRU)):
        if f.endswith(".wav") and "Normal" not in f:
            faults.setdefault(f.split("_")[1], []).append(load(CWRU, f[:-4]))
    return [case(drsnd, tmp, "CWRU learn 0 hp normal (1st half), test 2nd half + all faults 0-2 hp",
                 [(a, x[:half], r)], [(b, second, 12000)], faults)]


def table(rows):
    pct = lambda v: f"{100 * v:.2f} %"
    out = ["| case | healthy frames > 1.0 | faults > 1.0 (as recorded) | faults > 1.0 (scaled to healthy RMS) | ROC AUC (scaled) | band-Gaussian reference: healthy > 1.0 / scaled faults > 1.0 / AUC |",
           "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        out.append(f"| {r['case']} | {pct(r['healthy_above'])} of {r['healthy_frames']} | "
                   f"{pct(r['fault_above'])} of {r['fault_frames']} | {pct(r['scaled_above'])} | "
                   f"{r['auc_scaled']:.4f} | {pct(r['ref_healthy_above'])} / "
                   f"{pct(r['ref_scaled_above'])} / {r['ref_auc_scaled']:.4f} |")
    out += ["", "Incipient faults: healthy running plus the fault's vibration at a level relative to "
            "the healthy RMS. Share of frames above 1.0 and ROC AUC, ours / band-Gaussian reference:", "",
            "| case | " + " | ".join(f"{db} dB" for db in MIX_DB) + " |",
            "|---|" + "---|" * len(MIX_DB)]
    for r in rows:
        cells = [f"{pct(m[0])}, {m[1]:.3f} / {pct(m[2])}, {m[3]:.3f}"
                 for m in (r[f"mix{db}"] for db in MIX_DB)]
        out.append(f"| {r['case']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drsnd", default=os.path.join(ROOT, "target", "release", "drsnd"))
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    drsnd = Drsnd(args.drsnd)
    with tempfile.TemporaryDirectory() as tmp:
        rows = uestc_cases(drsnd, tmp) + cwru_cases(drsnd, tmp)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
