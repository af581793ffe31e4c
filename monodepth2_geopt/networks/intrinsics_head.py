"""Learned camera intrinsics (Depth from Video in the Wild, Gordon et al., ICCV 2019: ``add_intrinsics_head``).

A 1x1 convolution on the pose encoder's deepest features of an image pair, averaged over space, gives four raw
values per pair. They become Monodepth2's *normalised* intrinsics (fx/W, fy/H, cx/W, cy/H):

* focal lengths ``EPS + softplus(raw)``: always > 0 (DfVitW: softplus(conv) x [W, H]);
* principal point ``EPS + (1 - 2 EPS) sigmoid(raw)``: always inside the image (DfVitW leaves it free as conv + 0.5;
  the sigmoid keeps it inside and is about 0.5 + raw / 4 near the centre).

raw = conv(FEATURE_SCALE x features).mean + GAIN x bias + raw(init). The convolution (no bias) and ``bias`` start at
zero, so every pair first predicts exactly ``init`` (``raw_init`` is a buffer). Adam moves each parameter by about
the learning rate per step whatever its gradient, so the two scales set how fast each part can move: the shared
``bias`` by GAIN x lr per step (the focal length could otherwise move only ~1e-4 per step, far too slowly to be
learned in thousands of steps; DfVitW trains 1e6), the per-pair part (512 weights on features of order 1) by about
512 x FEATURE_SCALE x lr: without the scale it moves ~0.1 per step and the per-pair predictions scatter widely
(measured: sd 0.97 of fx/W after 10 steps); with it the per-pair deviations follow the shared value slowly.

In training mode the head also keeps a running mean and variance of its predictions (buffers, saved in
``intrinsics.pth`` with the weights): the learned K of the training data at the checkpoint.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

GAIN = 10.0
EPS = 1e-3  # focal >= EPS and principal point in [EPS, 1 - EPS] even where softplus / sigmoid saturate in float32
FEATURE_SCALE = 0.01
EMA_MOMENTUM = 0.01


def softplus_inverse(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def check_normalised_k(k, what: str = "intrinsics") -> None:
    fx, fy, cx, cy = k
    if not (fx > EPS and fy > EPS and EPS < cx < 1 - EPS and EPS < cy < 1 - EPS):
        raise ValueError(f"{what} {tuple(k)}: normalised fx, fy must be > 0 and cx, cy inside (0, 1)")


class IntrinsicsHead(nn.Module):
    """Per-pair normalised intrinsics [B, 4] = (fx/W, fy/H, cx/W, cy/H) from features [B, C, h, w]."""

    def __init__(self, in_channels: int, init=(0.58, 1.92, 0.5, 0.5)):
        super().__init__()
        check_normalised_k(init, "initial intrinsics")
        self.conv = nn.Conv2d(in_channels, 4, 1, bias=False)
        nn.init.zeros_(self.conv.weight)
        self.bias = nn.Parameter(torch.zeros(4))
        fx, fy, cx, cy = (float(v) for v in init)
        pp = lambda c: logit((c - EPS) / (1 - 2 * EPS))  # noqa: E731
        self.register_buffer("raw_init", torch.tensor([softplus_inverse(fx - EPS), softplus_inverse(fy - EPS), pp(cx),
                                                       pp(cy)]))
        self.register_buffer("running_mean", torch.tensor([fx, fy, cx, cy]))
        self.register_buffer("running_var", torch.zeros(4))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))

    @property
    def initial(self) -> torch.Tensor:
        """[4] the initial normalised intrinsics (from the saved ``raw_init``, so a loaded head knows its own)."""
        raw = self.raw_init
        return torch.cat([EPS + F.softplus(raw[:2]), EPS + (1 - 2 * EPS) * torch.sigmoid(raw[2:])])

    def forward(self, features: torch.Tensor, source_aspect: torch.Tensor | None = None) -> torch.Tensor:
        """[B, 4] normalised intrinsics. ``source_aspect`` [B] (``--square_pixels``): the width / height, in pixels
        of the source image, of the region the input shows; then fy/H = fx/W x it (one focal length in source
        pixels) and the raw fy output is unused."""
        raw = self.conv(FEATURE_SCALE * features).float().mean(dim=(2, 3)) + GAIN * self.bias + self.raw_init
        k = torch.cat([EPS + F.softplus(raw[:, :2]), EPS + (1 - 2 * EPS) * torch.sigmoid(raw[:, 2:])], 1)
        if source_aspect is not None:
            k = torch.cat([k[:, :1], k[:, :1] * source_aspect.to(k).reshape(-1, 1), k[:, 2:]], 1)
        if self.training:
            self.update_stats(k.detach())
        return k

    @torch.no_grad()
    def update_stats(self, k: torch.Tensor) -> None:
        """Exponential moving mean / variance of the predictions (momentum ``EMA_MOMENTUM``; the first batch
        replaces the initial guess)."""
        mean, var = k.mean(0), k.var(0, unbiased=False) if k.shape[0] > 1 else torch.zeros_like(k[0])
        m = torch.where(self.num_updates == 0, torch.ones((), device=k.device), torch.full((), EMA_MOMENTUM,
                                                                                          device=k.device))
        delta = mean - self.running_mean
        self.running_mean.add_(m * delta)
        self.running_var.mul_(1 - m).add_(m * (var + (1 - m) * delta ** 2))
        self.num_updates.add_(1)
