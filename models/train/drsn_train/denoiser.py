"""The DRSN denoiser: a learned analysis/synthesis transform with residual
shrinkage units between them.

    frame [N, 1, 2048] --standardise--> enc: Conv1d(1, C, 16, stride 8)
      -> C x 256 coefficients -> RSBUs (dilated, soft thresholds learned per
      frame and channel) -> mask = sigmoid(1x1 conv) on the coefficients
      -> dec: ConvTranspose1d(C, 1, 16, stride 8) -> undo the standardisation

It is wavelet shrinkage with every part learned: the basis (enc/dec), and a
threshold per frame (the RSBUs' tau = alpha * mean|x|). The stride-8
transform keeps the units on 256 steps, which is what keeps a real-time
stream inside its CPU budget (see models/RESULTS-denoise.md for the cost of
each variant). `arch = "relu"` is the same network with ReLU in place of
every soft threshold, the control the results table needs.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import POWER_FLOOR, Shrink

DENOISE_ARCHS = ("drsn", "relu")
KERNEL, STRIDE = 16, 8


class DUnit(nn.Module):
    """BN-ReLU-Conv-BN-ReLU-Conv, soft threshold (or ReLU), identity added."""

    def __init__(self, channels: int, dilation: int, arch: str):
        super().__init__()
        c = channels
        self.bn1 = nn.BatchNorm1d(c)
        self.conv1 = nn.Conv1d(c, c, 3, 1, dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm1d(c)
        self.conv2 = nn.Conv1d(c, c, 3, 1, dilation, dilation=dilation, bias=False)
        self.shrink = Shrink(c, channelwise=True) if arch == "drsn" else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.conv1(F.relu(self.bn1(x)))
        h = self.conv2(F.relu(self.bn2(h)))
        if self.shrink is None:
            return F.relu(h) + x, None
        h, tau = self.shrink(h)
        return h + x, tau


class Denoiser(nn.Module):
    def __init__(self, arch: str = "drsn", channels: int = 32, units: int = 4):
        super().__init__()
        if arch not in DENOISE_ARCHS:
            raise ValueError(f"unknown denoiser arch {arch!r} (expected one of {DENOISE_ARCHS})")
        self.arch, self.channels, self.n_units = arch, channels, units
        pad = (KERNEL - STRIDE) // 2
        self.enc = nn.Conv1d(1, channels, KERNEL, STRIDE, pad, bias=False)
        self.units = nn.ModuleList(DUnit(channels, 2**i, arch) for i in range(units))
        self.mask_bn = nn.BatchNorm1d(channels)
        self.mask = nn.Conv1d(channels, channels, 1)
        self.dec = nn.ConvTranspose1d(channels, 1, KERNEL, STRIDE, pad, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [N, 1, L] in sensor units -> (denoised [N, 1, L], taus per unit)."""
        # The same exact-DC standardisation as the classifier (model.Net.embed).
        x0 = x[..., :1]
        xc = x - x0
        mean = xc.mean(dim=-1, keepdim=True)
        xc = xc - mean
        scale = torch.sqrt((xc * xc).mean(dim=-1, keepdim=True) + POWER_FLOOR)
        coef = self.enc(xc / scale)
        h, taus = coef, []
        for u in self.units:
            h, tau = u(h)
            if tau is not None:
                taus.append(tau)
        m = torch.sigmoid(self.mask(F.relu(self.mask_bn(h))))
        y = self.dec(coef * m)
        return y * scale + mean + x0, taus

    def threshold_layout(self) -> list[int]:
        return [self.channels] * (self.n_units if self.arch == "drsn" else 0)


class ExportedDenoiser(nn.Module):
    """What the ONNX holds: the denoised frame and every unit's thresholds."""

    def __init__(self, net: Denoiser):
        super().__init__()
        self.net = net

    def forward(self, signal: torch.Tensor):
        y, taus = self.net(signal)
        return (y, *taus)
