"""nn.Module building blocks: conv blocks, SSIM and the (batch-agnostic) backprojection wrappers."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from monodepth2_geopt import geometry


class Conv3x3(nn.Module):
    """3x3 convolution with reflection (default) or zero padding. State-dict keys: ``conv.*``."""

    def __init__(self, in_channels: int, out_channels: int, use_refl: bool = True):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1) if use_refl else nn.ZeroPad2d(1)
        self.conv = nn.Conv2d(int(in_channels), int(out_channels), 3)

    def forward(self, x):
        return self.conv(self.pad(x))


class ConvBlock(nn.Module):
    """Conv3x3 followed by ELU. State-dict keys: ``conv.conv.*``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = Conv3x3(in_channels, out_channels)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x):
        return self.nonlin(self.conv(x))


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour x2 upsampling."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


class SSIM(nn.Module):
    """Per-pixel SSIM dissimilarity (1 - SSIM) / 2 in [0, 1], 3x3 box window on a reflection-padded image.

    Constants C1 = 0.01^2, C2 = 0.03^2 (Wang et al. 2004, for images in [0, 1]). The five local means are
    taken with one pooling call over a stacked tensor.
    """

    C1 = 0.01 ** 2
    C2 = 0.03 ** 2

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        stack = torch.cat([x, y, x * x, y * y, x * y], 1)
        pooled = F.avg_pool2d(F.pad(stack, (1, 1, 1, 1), mode="reflect"), 3, 1)
        mu_x, mu_y, xx, yy, xy = pooled.split(c, 1)
        sigma_x = xx - mu_x * mu_x
        sigma_y = yy - mu_y * mu_y
        sigma_xy = xy - mu_x * mu_y
        num = (2 * mu_x * mu_y + self.C1) * (2 * sigma_xy + self.C2)
        den = (mu_x * mu_x + mu_y * mu_y + self.C1) * (sigma_x + sigma_y + self.C2)
        return torch.clamp((1 - num / den) / 2, 0, 1)


class BackprojectDepth(nn.Module):
    """Monodepth2-compatible wrapper around ``geometry.backproject``; the pixel grid is a cached buffer.

    ``batch_size`` is accepted for compatibility and ignored: any batch size works.
    """

    def __init__(self, batch_size: int | None, height: int, width: int):
        super().__init__()
        self.height, self.width = height, width
        self.register_buffer("grid", geometry.pixel_grid(height, width), persistent=False)

    def forward(self, depth, inv_K):
        return geometry.backproject(depth, inv_K, self.grid)


class Project3D(nn.Module):
    """Monodepth2-compatible wrapper: points [B,4,N] -> grid_sample coords [B,H,W,2] (align_corners=True)."""

    def __init__(self, batch_size: int | None, height: int, width: int, eps: float = 1e-7):
        super().__init__()
        self.height, self.width, self.eps = height, width, eps

    def forward(self, points, K, T):
        pix = geometry.project(points, K, T, self.height, self.width, self.eps)
        return geometry.pixels_to_grid(pix, self.height, self.width)
