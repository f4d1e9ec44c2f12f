"""The DRSN denoiser: a learned analysis/synthesis transform with residual
shrinkage units between them.

    frame [N, 1, 2048] --standardise--> enc: Conv1d(1, C, 16, stride 8)
      -> C x 256 coefficients -> RSBUs (dilated, soft thresholds learned per
      frame and channel) -> mask = sigmoid(1x1 conv) on the coefficients
      -> dec: ConvTranspose1d(C, 1, 16, stride 8) -> undo the standardisation
      (the frame's mean through the DC gate, denoiser 2)
    SNR head (denoiser 2): the input's SNR from the units' thresholds (2.1.0;
      2.0.0 read the coefficients' floor); a frame it judges clean passes
      untouched

It is wavelet shrinkage with every part learned: the basis (enc/dec), and a
threshold per frame (the RSBUs' tau = alpha * mean|x|). The stride-8
transform keeps the units on 256 steps, which is what keeps a real-time
stream inside its CPU budget (see models/RESULTS-denoise.md for the cost of
each variant). `arch = "relu"` is the same network with ReLU in place of
every soft threshold, the control the results table needs.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import POWER_FLOOR, Shrink

DENOISE_ARCHS = ("drsn", "relu")
KERNEL, STRIDE = 16, 8
# The shipped recipe (model 2.2.0). 1.1.0's network: a longer transform at
# stride 16 leaves the units 128 steps, so 64 channels cost about what 32
# did at stride 8 in tract, and 4x the steps of 1.0.0. Denoiser 2 adds the
# DC gate, the SNR head and the plant's coloured noise made over 2 s; 2.1.0
# the same, its gate and head reading the units' thresholds; 2.2.0 the same
# with the head fitted again on the finished body (denoise_fit.HEAD_REFIT)
# (models/RESULTS-denoise.md, variants).
SHIPPED = {"channels": 64, "kernel": 32, "stride": 16, "steps": 12000, "floor": False, "dc": True,
           "snr_head": True, "mix": "plant", "features": "taus", "refit_head": True}
# What the DC gate and the SNR head read (denoiser 2.0.0: "floor"): the
# coefficients' mean magnitudes and a pooled noise floor, which cost tract
# 0.24 ms a frame of small ops (a 1.5 ms frame); or ("taus") the thresholds
# the units have already computed, which cost nothing to read.
HEAD_FEATURES = ("floor", "taus")


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


class FloorCondition(nn.Module):
    """Noise-floor conditioning: minimum statistics inside the frame.

    Per channel of the learned transform, the coefficients' local energy
    (a moving average over `window` steps), its minimum over the frame and
    its mean, in log units: where a channel's floor sits under its mean is
    how much of it is impacts and how much steady noise, which is what a
    Wiener filter needs the noise spectrum for. A small FC turns the two
    per-channel figures into a scale and shift of the units' output before
    the mask. Cost: a few thousand operations per frame."""

    def __init__(self, channels: int, window: int = 8):
        super().__init__()
        self.pool = nn.AvgPool1d(window, 1)
        self.fc1 = nn.Linear(2 * channels, channels)
        self.fc2 = nn.Linear(channels, 2 * channels)
        nn.init.zeros_(self.fc2.weight)  # starts as the identity
        nn.init.zeros_(self.fc2.bias)

    def forward(self, coef: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        energy = self.pool(coef * coef)
        low = torch.log(energy.amin(dim=-1) + 1e-6)
        mean = torch.log(energy.mean(dim=-1) + 1e-6)
        g, b = self.fc2(F.relu(self.fc1(torch.cat([low - mean, mean], dim=1)))).chunk(2, dim=1)
        return h * (1.0 + g.unsqueeze(-1)) + b.unsqueeze(-1)


class DcGate(nn.Module):
    """How much of the frame's mean to put back.

    A continuous coloured noise has power below a frame's lowest bin (about
    6 Hz), which a frame sees as its mean: a fifth of pink noise's power and
    four fifths of brown noise's (noise.add_noise). With the mean put back
    whole, as model 1.1.0 does, no mask can remove it, and pink noise can
    gain at most 7 dB. A vibration has no DC worth keeping, but a sensor's
    offset must pass exactly: the gate acts only on a mean within R times
    the frame's RMS, and passes a larger one (an offset) whole."""

    R = 4.0

    def __init__(self, channels: int, features: str = "floor"):
        super().__init__()
        self.features = features
        self.fc = nn.Linear(channels + 1, 1)
        nn.init.zeros_(self.fc.weight)
        nn.init.constant_(self.fc.bias, 4.0)  # starts by keeping 98 %

    def forward(self, h: torch.Tensor, levels: list[torch.Tensor], dc: torch.Tensor,
                scale: torch.Tensor) -> torch.Tensor:
        r = (dc / scale).abs()  # [N, 1, 1]
        # log r resolves the small means of a clean vibration (|mean| ~ 2 %
        # of the RMS) from a coloured noise's drift (10 % and more).
        what = h.mean(dim=-1) if self.features == "floor" else torch.log(levels[-1] + 1e-4)
        # fc over [what, log r], written as two terms: tract runs a linear
        # layer over a concatenation as one matmul per part, and packing the
        # one-wide part cost as much as the rest of the gate.
        w = self.fc.weight
        logit = F.linear(what, w[:, :-1], self.fc.bias) + torch.log(r.squeeze(-1) + 1e-4) * w[:, -1:]
        keep = torch.sigmoid(logit).unsqueeze(-1)
        near = torch.sigmoid(4.0 * (self.R - r))  # 1 for a small mean, 0 for an offset
        return dc * (1.0 - (1.0 - keep) * near)


class SnrHead(nn.Module):
    """The input's SNR in dB, read from the frame's coefficients: per
    channel their mean magnitude, the units' output's, and how far the
    channel's floor (minimum local energy) sits under its mean (features
    "floor"); or from every unit's thresholds ("taus": a noisier frame gets
    larger ones, relative to the standardised frame). Trained on
    each training frame's true SNR, on detached features, so it reports on
    the denoising without changing it. Clean frames are taught 40 dB.

    It also lets a clean frame through untouched: the output is
    x + g (denoised - x) with g = sigmoid((BYPASS_DB - snr) / 2), 1 for any
    frame the training noise covers (up to +10 dB) and ~0 for a frame
    judged clean. A coloured-noise denoiser otherwise trims a clean frame's
    low frequencies a little on every frame (transparency ~40 dB)."""

    BYPASS_DB = 30.0

    def __init__(self, channels: int, units: int, features: str = "floor", window: int = 8):
        super().__init__()
        self.features_kind = features
        self.pool = nn.AvgPool1d(window, 1) if features == "floor" else None
        self.fc1 = nn.Linear((3 if features == "floor" else units) * channels, channels)
        self.fc2 = nn.Linear(channels, 1)

    def features(self, coef: torch.Tensor, h: torch.Tensor, levels: list[torch.Tensor]) -> torch.Tensor:
        if self.features_kind == "taus":
            return torch.log(torch.cat(levels, dim=1) + 1e-4).detach()
        energy = self.pool(coef * coef)
        z = torch.cat([torch.log(coef.abs().mean(dim=-1) + 1e-4), torch.log(h.abs().mean(dim=-1) + 1e-4),
                       torch.log(energy.amin(dim=-1) + 1e-6) - torch.log(energy.mean(dim=-1) + 1e-6)], dim=1)
        return z.detach()

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(z)))

    def forward(self, coef: torch.Tensor, h: torch.Tensor, levels: list[torch.Tensor]) -> torch.Tensor:
        return self.predict(self.features(coef, h, levels))


class Encoded(NamedTuple):
    x0: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor
    coef: torch.Tensor
    h: torch.Tensor
    taus: list[torch.Tensor]
    levels: list[torch.Tensor]


class Denoiser(nn.Module):
    def __init__(self, arch: str = "drsn", channels: int = 32, units: int = 4,
                 kernel: int = KERNEL, stride: int = STRIDE, floor: bool = False, dc: bool = False,
                 snr: bool = False, features: str = "floor"):
        super().__init__()
        if arch not in DENOISE_ARCHS:
            raise ValueError(f"unknown denoiser arch {arch!r} (expected one of {DENOISE_ARCHS})")
        if kernel < stride or (kernel - stride) % 2:
            raise ValueError(f"denoiser kernel {kernel} and stride {stride}: the kernel must be "
                             "at least the stride, by an even number")
        if features not in HEAD_FEATURES:
            raise ValueError(f"unknown head features {features!r} (expected one of {HEAD_FEATURES})")
        self.arch, self.channels, self.n_units = arch, channels, units
        self.features = features
        self.kernel, self.stride = kernel, stride
        pad = (kernel - stride) // 2
        self.enc = nn.Conv1d(1, channels, kernel, stride, pad, bias=False)
        self.units = nn.ModuleList(DUnit(channels, 2**i, arch) for i in range(units))
        self.floor = FloorCondition(channels) if floor else None
        self.dc = DcGate(channels, features) if dc else None
        self.snr = SnrHead(channels, units, features) if snr else None
        self.mask_bn = nn.BatchNorm1d(channels)
        self.mask = nn.Conv1d(channels, channels, 1)
        self.dec = nn.ConvTranspose1d(channels, 1, kernel, stride, pad, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [N, 1, L] in sensor units -> (denoised [N, 1, L], taus per unit)."""
        y, taus, _ = self.run(x)
        return y, taus

    def encode(self, x: torch.Tensor) -> Encoded:
        """The standardised frame through the encoder and the units: what the
        mask, the DC gate and the SNR head read."""
        # The same exact-DC standardisation as the classifier (model.Net.embed).
        x0 = x[..., :1]
        xc = x - x0
        mean = xc.mean(dim=-1, keepdim=True)
        xc = xc - mean
        scale = torch.sqrt((xc * xc).mean(dim=-1, keepdim=True) + POWER_FLOOR)
        coef = self.enc(xc / scale)
        h, taus, levels = coef, [], []
        for u in self.units:
            h, tau = u(h)
            if tau is not None:
                taus.append(tau)
            # Each unit's level for the heads: its thresholds, or (the ReLU
            # control, which has none) its output's mean magnitude.
            if self.features == "taus":
                levels.append(tau if tau is not None else h.abs().mean(dim=-1))
        if self.floor is not None:
            h = self.floor(coef, h)
        return Encoded(x0, mean, scale, coef, h, taus, levels)

    def snr_features(self, x: torch.Tensor) -> torch.Tensor:
        """The SNR head's input for frames x [N, 1, L] (denoise_fit.refit_snr_head)."""
        e = self.encode(x)
        return self.snr.features(e.coef, e.h, e.levels)

    def masked(self, coef: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The coefficients times the mask the units' output gives them."""
        return coef * torch.sigmoid(self.mask(F.relu(self.mask_bn(h))))

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """forward, and the input SNR in dB [N, 1] (None without the head)."""
        x0, mean, scale, coef, h, taus, levels = self.encode(x)
        y = self.dec(self.masked(coef, h))
        dc = mean + x0
        if self.dc is not None:
            dc = self.dc(h, levels, dc, scale)
        out = y * scale + dc
        snr = None
        if self.snr is not None:
            snr = self.snr(coef, h, levels)
            g = torch.sigmoid((self.snr.BYPASS_DB - snr.detach()) / 2.0).unsqueeze(-1)
            out = x + g * (out - x)
        return out, taus, snr

    def threshold_layout(self) -> list[int]:
        return [self.channels] * (self.n_units if self.arch == "drsn" else 0)


def load(path: str, *args, **kw) -> Denoiser:
    """`Denoiser(*args, **kw)` with the weights saved at `path`, in eval mode."""
    net = Denoiser(*args, **kw)
    net.load_state_dict(torch.load(path, weights_only=True))
    return net.eval()


@torch.no_grad()
def macs_per_frame(net: Denoiser, frame: int = 2048) -> int:
    """Multiply-accumulates of the convolutions for one frame at batch 1:
    the cost that grows with channels, kernel and steps (the element-wise
    rest is small beside it)."""
    total = 0

    def count(m, _inputs, out):
        nonlocal total
        if isinstance(m, nn.ConvTranspose1d):
            total += m.in_channels * m.out_channels * m.kernel_size[0] * _inputs[0].shape[-1]
        elif isinstance(m, nn.Conv1d):
            total += m.in_channels // m.groups * m.out_channels * m.kernel_size[0] * out.shape[-1]
        elif isinstance(m, nn.Linear):
            total += m.in_features * m.out_features

    hooks = [m.register_forward_hook(count) for m in net.modules()
             if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear))]
    was = net.training
    net.eval()
    net(torch.zeros(1, 1, frame))
    net.train(was)
    for h in hooks:
        h.remove()
    return total


class ExportedDenoiser(nn.Module):
    """What the ONNX holds: the denoised frame and every unit's thresholds."""

    def __init__(self, net: Denoiser):
        super().__init__()
        self.net = net

    def forward(self, signal: torch.Tensor):
        y, taus, snr = self.net.run(signal)
        return (y, *taus) + ((snr,) if snr is not None else ())
