"""ConvNet, ResNet, DRSN-CS and DRSN-CW on one code path.

The four variants share the stem, the unit layout and the head; only the
unit type differs:
  conv     BN-ReLU-Conv-BN-ReLU-Conv, no shortcut
  res      the same plus the identity shortcut
  drsn-cs  the same with soft thresholding before the add, one tau per sample
  drsn-cw  the same with one tau per channel (Zhao et al. 2020)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHS = ("conv", "res", "drsn-cs", "drsn-cw")
STEM_CHANNELS = 16
# (out channels, stride) per unit; the input is 256 samples long after the stem.
UNITS = [(16, 2), (16, 1), (32, 2), (32, 1), (64, 2), (64, 1)]
# Standardisation floor in g^2: a frame quieter than 1e-5 g RMS is treated as
# that loud, so silence maps to ~0 instead of amplified noise or NaN.
POWER_FLOOR = 1e-10


class Shrink(nn.Module):
    """Learned soft threshold: tau = sigmoid(FC-BN-ReLU-FC(GAP|x|)) * GAP|x|."""

    def __init__(self, channels: int, channelwise: bool):
        super().__init__()
        self.channelwise = channelwise
        self.fc1 = nn.Linear(channels, channels)
        self.bn = nn.BatchNorm1d(channels)
        self.fc2 = nn.Linear(channels, channels if channelwise else 1)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = h.abs().mean(dim=-1)  # [N, C]: mean magnitude per channel
        alpha = torch.sigmoid(self.fc2(F.relu(self.bn(self.fc1(a)))))
        tau = alpha * a if self.channelwise else alpha * a.mean(dim=1, keepdim=True)
        t = tau.unsqueeze(-1)
        # sign(h) * max(|h| - tau, 0), written with two ReLUs (tau >= 0).
        return F.relu(h - t) - F.relu(-h - t), tau


class Unit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, arch: str):
        super().__init__()
        self.bn1 = nn.BatchNorm1d(cin)
        self.conv1 = nn.Conv1d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(cout)
        self.conv2 = nn.Conv1d(cout, cout, 3, 1, 1, bias=False)
        self.shrink = Shrink(cout, arch == "drsn-cw") if arch.startswith("drsn") else None
        self.shortcut = arch != "conv"
        self.stride, self.pad = stride, cout - cin

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.conv1(F.relu(self.bn1(x)))
        h = self.conv2(F.relu(self.bn2(h)))
        tau = None
        if self.shrink is not None:
            h, tau = self.shrink(h)
        if self.shortcut:
            s = F.avg_pool1d(x, self.stride) if self.stride > 1 else x
            if self.pad:
                s = F.pad(s, (0, 0, 0, self.pad))  # zero channels: parameter-free
            h = h + s
        return h, tau


class Net(nn.Module):
    def __init__(self, arch: str, classes: int = 10, families: int = 4):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r} (expected one of {ARCHS})")
        self.arch = arch
        # Wide first kernel (WDCNN): 64 taps at stride 8 see ~5 ms per output.
        self.stem = nn.Conv1d(1, STEM_CHANNELS, 64, 8, 28, bias=False)
        self.stem_bn = nn.BatchNorm1d(STEM_CHANNELS)
        units, cin = [], STEM_CHANNELS
        for cout, stride in UNITS:
            units.append(Unit(cin, cout, stride, arch))
            cin = cout
        self.units = nn.ModuleList(units)
        self.head_bn = nn.BatchNorm1d(cin)
        self.fc = nn.Linear(cin, classes)
        # Both heads read the same pooled features: the family is what holds
        # across bearings and rigs, the fine class is CWRU's detail. Models
        # before 2.0 have no family head (families=0).
        self.fc_family = nn.Linear(cin, families) if families else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """x [N, 1, L] raw g -> (class logits [N, classes], family logits
        [N, families], taus per shrinkage unit)."""
        logits, family, taus, _ = self.embed(x)
        return logits, family, taus

    def embed(self, x: torch.Tensor):
        """As `forward`, plus the pooled features both heads read (the
        embedding: what a per-machine baseline models)."""
        # Shift by the first sample before removing the mean: exact for a
        # DC offset (Sterbenz), so float32 keeps the small signal riding on
        # it and every runtime agrees to ~1e-6 instead of ~1e-4.
        x = x - x[..., :1]
        x = x - x.mean(dim=-1, keepdim=True)
        x = x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + POWER_FLOOR)
        h = F.relu(self.stem_bn(self.stem(x)))
        taus = []
        for u in self.units:
            h, tau = u(h)
            if tau is not None:
                taus.append(tau)
        h = F.relu(self.head_bn(h)).mean(dim=-1)
        family = self.fc_family(h) if self.fc_family is not None else None
        return self.fc(h), family, taus, h

    def threshold_layout(self) -> list[int]:
        """Channel count of each threshold output, in unit order."""
        return [
            (u.conv2.out_channels if u.shrink.channelwise else 1)
            for u in self.units
            if u.shrink is not None
        ]


class Exported(nn.Module):
    """What the ONNX holds: class and family probabilities (softmax), the
    embedding and every unit's thresholds."""

    def __init__(self, net: Net):
        super().__init__()
        self.net = net

    def forward(self, signal: torch.Tensor):
        logits, family, taus, embedding = self.net.embed(signal)
        probs = torch.softmax(logits, dim=-1)
        if family is None:
            return (probs, embedding, *taus)
        return (probs, torch.softmax(family, dim=-1), embedding, *taus)
