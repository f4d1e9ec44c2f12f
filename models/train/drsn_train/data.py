"""Recordings, the 80/20 time split, and frame sampling.

Every recording is cut once by time: the first 80 % feeds training, the last
20 % testing, and frames never straddle the cut because each side is framed
on its own.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

FRAME = 2048
RATE = 12_000
TRAIN_FRACTION = 0.8

# (id, description) in the order of the model's output.
CLASSES = [
    ("Normal", "healthy bearing"),
    ("B_7", "ball fault, 0.007 in"),
    ("B_14", "ball fault, 0.014 in"),
    ("B_21", "ball fault, 0.021 in"),
    ("IR_7", "inner race fault, 0.007 in"),
    ("IR_14", "inner race fault, 0.014 in"),
    ("IR_21", "inner race fault, 0.021 in"),
    ("OR6_7", "outer race fault at 6:00, 0.007 in"),
    ("OR6_14", "outer race fault at 6:00, 0.014 in"),
    ("OR6_21", "outer race fault at 6:00, 0.021 in"),
]
CLASS_IDS = [c for c, _ in CLASSES]
LOADS = {1797: 0, 1772: 1, 1750: 2}  # rpm -> motor load in hp
# The family head's output order: what a bearing fault is, on any bearing.
FAMILIES = ["normal", "ball", "inner", "outer"]
NO_CLASS = -1  # a recording outside the fine classes (28 mil, OR@3, OR@12, UESTC)


@dataclass
class Recording:
    name: str
    label: int  # fine class index, or NO_CLASS
    load: int | None  # hp, or None when unknown (user data, UESTC)
    train: np.ndarray  # first 80 %, float32 at RATE
    test: np.ndarray  # last 20 %
    family: int = 0  # index in FAMILIES
    rig: str = "cwru"
    rpm: int | None = None
    fault: str = ""  # the file's fault tag: Normal, IR_28, OR3_21, B, ...

    @property
    def whole(self) -> np.ndarray:
        return np.concatenate([self.train, self.test])


def read_wav(path: str) -> tuple[int, np.ndarray]:
    """Mono float32 samples in the file's own units (g for CWRU)."""
    rate, x = wavfile.read(path)
    if x.ndim > 1:
        x = x[:, 0]
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    return rate, x.astype(np.float32)


def to_model_rate(rate: int, x: np.ndarray, path: str) -> np.ndarray:
    if rate == RATE:
        return x
    if rate % RATE != 0:
        g = np.gcd(rate, RATE)
        return resample_poly(x, RATE // g, rate // g).astype(np.float32)
    # resample_poly low-pass filters (Kaiser FIR) before decimating: a proper
    # anti-alias filter, unlike taking every 4th sample.
    return resample_poly(x, 1, rate // RATE).astype(np.float32)


def split(name: str, label: int, load: int | None, x: np.ndarray, **kw) -> Recording:
    cut = int(len(x) * TRAIN_FRACTION)
    if label != NO_CLASS and "family" not in kw:
        kw["family"] = family_of(CLASS_IDS[label])
    return Recording(name, label, load, x[:cut], x[cut:], **kw)


def family_of(fault: str) -> int:
    """CWRU tags (Normal, B_7, IR_28, OR3_21) and UESTC ones (N, B, I, O)."""
    head = fault.split("_")[0]
    for fam, tags in enumerate((("Normal", "N"), ("B",), ("IR", "I"), ("OR3", "OR6", "OR12", "O"))):
        if head in tags:
            return fam
    raise SystemExit(f"unknown fault tag {fault!r}")


_CWRU = re.compile(r"^(\d{4})_(.+)\.wav$")


def load_cwru(root: str, everything: bool = False) -> list[Recording]:
    """The 10-class task from ../shared/cwru (12 kHz drive end, 3 loads);
    with `everything`, also the 28-mil, OR@3 and OR@12 recordings (family
    only: no fine class)."""
    recs = []
    for fname in sorted(os.listdir(root)):
        m = _CWRU.match(fname)
        if not m:
            continue
        rpm, fault = int(m.group(1)), m.group(2)
        fault = "Normal" if fault == "Normal_48k" else fault
        if rpm not in LOADS or (fault not in CLASS_IDS and not everything):
            continue
        label = CLASS_IDS.index(fault) if fault in CLASS_IDS else NO_CLASS
        path = os.path.join(root, fname)
        rate, x = read_wav(path)
        recs.append(split(fname, label, LOADS[rpm], to_model_rate(rate, x, path),
                          family=family_of(fault), rpm=rpm, fault=fault))
    missing = set(CLASS_IDS) - {CLASS_IDS[r.label] for r in recs if r.label != NO_CLASS}
    if missing:
        raise SystemExit(f"{root}: no recordings for classes {sorted(missing)}")
    return recs


_UESTC = re.compile(r"^([NBIO])_(\d+)_(\d)\.wav$")


def load_uestc(root: str) -> list[Recording]:
    """../shared/uestc: normal/ball/inner/outer at 4 speeds, 20 kHz in volts,
    resampled to 12 kHz (units do not matter: frames are standardised in
    the graph). Each file is split by time like every other recording."""
    recs = []
    for fname in sorted(os.listdir(root)):
        m = _UESTC.match(fname)
        if not m:
            continue
        path = os.path.join(root, fname)
        rate, x = read_wav(path)
        recs.append(split(fname, NO_CLASS, None, to_model_rate(rate, x, path),
                          family=family_of(m.group(1)), rig="uestc", rpm=int(m.group(2)),
                          fault=m.group(1)))
    if {r.family for r in recs} != set(range(len(FAMILIES))):
        raise SystemExit(f"{root}: expected normal, ball, inner and outer recordings (N_/B_/I_/O_*.wav)")
    return recs


def load_folders(root: str) -> list[Recording]:
    """A user's own data: root/<class id>/*.wav, classes in CLASSES order."""
    recs = []
    for label, cid in enumerate(CLASS_IDS):
        d = os.path.join(root, cid)
        if not os.path.isdir(d):
            raise SystemExit(f"{root}: missing folder {cid}/ (one folder per class: {CLASS_IDS})")
        for fname in sorted(os.listdir(d)):
            if fname.lower().endswith(".wav"):
                path = os.path.join(d, fname)
                rate, x = read_wav(path)
                recs.append(split(f"{cid}/{fname}", label, None, to_model_rate(rate, x, path)))
    return recs


def test_frames(recs: list[Recording], hop: int = 256, whole: bool = False,
                families: bool = False):
    """Every frame of every test segment (or, with `whole`, of the whole
    recording: for recordings a protocol never trained on) at `hop`:
    deterministic, no straddling. Returns (x, fine labels) or, with
    `families`, (x, fine labels, family labels)."""
    xs, ys, fs = [], [], []
    for r in recs:
        seg = r.whole if whole else r.test
        n = (len(seg) - FRAME) // hop + 1
        for i in range(max(n, 0)):
            xs.append(seg[i * hop : i * hop + FRAME])
            ys.append(r.label)
            fs.append(r.family)
    x, y = np.stack(xs).astype(np.float32), np.array(ys, dtype=np.int64)
    return (x, y, np.array(fs, dtype=np.int64)) if families else (x, y)


EQ_KNOTS = 9


def eq_knots(bins: int, knots: int = EQ_KNOTS) -> tuple[np.ndarray, np.ndarray]:
    """For every FFT bin, the knot just below it and the weight of the one
    above: linear interpolation from `knots` evenly spaced frequencies
    (0 Hz to Nyquist)."""
    pos = np.linspace(0, knots - 1, bins)
    left = np.minimum(pos.astype(np.int64), knots - 2)
    return left, pos - left


def random_eq(x: np.ndarray, rng: np.random.Generator, db: float,
              knots: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Each frame [N, L] through its own smooth random gain curve: gains in
    dB drawn N(0, db) at the knots (see eq_knots), interpolated between.
    Elementwise on purpose: a BLAS call here leaves OpenBLAS threads
    spinning against PyTorch's and made training three times slower."""
    left, w = knots
    g = rng.normal(0.0, db, (x.shape[0], EQ_KNOTS))
    gains_db = g[:, left] * (1.0 - w) + g[:, left + 1] * w
    spec = np.fft.rfft(x.astype(np.float64), axis=-1) * 10.0 ** (gains_db / 20.0)
    return np.fft.irfft(spec, n=x.shape[-1], axis=-1).astype(np.float32)


class TrainSampler:
    """Balanced random crops from the training segments.

    A group is drawn uniformly (one per rig and family, so both rigs are in
    every batch and the short healthy recordings weigh as much as a fault),
    then one of its recordings, then an offset. A random speed factor (time
    stretch) stands in for shaft speeds the recordings did not cover, and a
    random smooth spectral tilt (`eq_db` dB per knot) for the path from
    bearing to sensor, which changes with load and mounting. The tilt is
    what lets a model recognise a fault at a load it never saw (leave one
    load out, DRSN-CW at 2000 steps: 93.6 -> 99.5 % clean at 0 hp; see
    models/README.md).
    """

    EQ_DB = 4.0

    def __init__(self, recs: list[Recording], seed: int, stretch: float = 0.04,
                 eq_db: float = EQ_DB):
        groups: dict = {}
        for r in recs:
            groups.setdefault((r.rig, r.family), []).append(r)
        self.groups = [groups[k] for k in sorted(groups)]
        self.rng = np.random.default_rng(seed)
        self.stretch = stretch
        self.eq_db = eq_db
        self.eq_knots = eq_knots(FRAME // 2 + 1)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frames [n, FRAME], fine labels (NO_CLASS outside them), families."""
        rng = self.rng
        out = np.empty((n, FRAME), dtype=np.float32)
        fine = np.empty(n, dtype=np.int64)
        fam = np.empty(n, dtype=np.int64)
        grid = np.arange(FRAME, dtype=np.float64)
        for i, g in enumerate(rng.integers(0, len(self.groups), n)):
            rec = self.groups[g][rng.integers(0, len(self.groups[g]))]
            seg = rec.train
            speed = 1.0 + rng.uniform(-self.stretch, self.stretch)
            span = int(np.ceil(FRAME * speed)) + 1
            start = rng.integers(0, len(seg) - span)
            out[i] = np.interp(grid * speed, np.arange(span), seg[start : start + span])
            fine[i], fam[i] = rec.label, rec.family
        if self.eq_db > 0:
            out = random_eq(out, rng, self.eq_db, self.eq_knots)
        return out, fine, fam
