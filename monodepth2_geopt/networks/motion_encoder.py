"""Motion encoder of Geometric Pretraining: two frames -> a latent motion vector (not a 6-DoF pose).

Wang et al., "Geometric Pretraining for Monocular Depth Estimation" (ICRA 2020): a PoseNet-like network
encodes the motion between two frames (camera *and* object motion) into a 128-d latent vector that
conditions the flow decoder. The ResNet lives under ``backbone`` so that ``train.py --geopt_pose`` can
initialise Monodepth2's two-frame pose encoder from it (``monodepth2_geopt.geopt``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from monodepth2_geopt.networks.resnet_encoder import ResnetEncoder


class MotionEncoder(nn.Module):
    """ResNet on two stacked frames, global average pool of the deepest features, 2-layer MLP.

    Input: [B, 6, H, W] in [0, 1], channels (target, source). Output: latent [B, latent_dim].
    State-dict keys: ``backbone.encoder.*`` (a plain 2-image ``ResnetEncoder``), ``head.*`` and, with
    ``pool_grid`` (average-pool to a grid of cells instead of one global average), ``grid``.
    """

    def __init__(self, num_layers: int = 18, pretrained: bool = False, latent_dim: int = 128,
                 hidden_dim: int = 256, pool_grid: tuple[int, int] | None = None):
        super().__init__()
        self.latent_dim = latent_dim
        self.pool_grid = tuple(pool_grid) if pool_grid else None
        if self.pool_grid:  # saved with the weights so that a checkpoint rebuilds the same head
            self.register_buffer("grid", torch.tensor(self.pool_grid))
        self.backbone = ResnetEncoder(num_layers, pretrained, num_input_images=2)
        cells = self.pool_grid[0] * self.pool_grid[1] if self.pool_grid else 1
        self.head = nn.Sequential(nn.Linear(self.backbone.num_ch_enc[-1] * cells, hidden_dim), nn.ReLU(inplace=True),
                                  nn.Linear(hidden_dim, latent_dim))

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        deepest = self.backbone(pair)[-1]  # [B, C, H/32, W/32]
        if self.pool_grid is None:
            return self.head(deepest.mean(dim=(2, 3)))
        return self.head(F.adaptive_avg_pool2d(deepest, self.pool_grid).flatten(1))


def local_correlation(a: torch.Tensor, b: torch.Tensor, radius: int) -> torch.Tensor:
    """Cost volume [N, (2r+1)^2, h, w]: channel-mean of a(p) * b(p + d) for every d in [-r, r]^2.

    Channel k is the displacement (dy, dx) = (k // (2r+1) - r, k % (2r+1) - r); b is zero outside the image.
    """
    h, w = a.shape[-2:]
    padded = F.pad(b, (radius, radius, radius, radius))
    out = [(a * padded[:, :, dy:dy + h, dx:dx + w]).mean(1)
           for dy in range(2 * radius + 1) for dx in range(2 * radius + 1)]
    return torch.stack(out, 1)


class CorrelationMotionEncoder(nn.Module):
    """Two frames -> latent motion vector through a local correlation volume (as in FlowNetC / PWC-Net).

    A small siamese conv net maps each frame to features at 1/4 resolution; their correlation over
    displacements up to ``radius`` (at 1/4 resolution: 4 px per step; cosines of unit feature vectors) passes a
    strided conv net to 1/32, are average-pooled to a ``pool_grid`` of cells (so that the expansion of a forward motion,
    left moving left and right moving right, does not cancel out) and an MLP gives the latent.

    Why not the ResNet on stacked frames: to see a displacement of a few pixels, a ResNet from scratch must first
    learn motion detectors (products of temporal and spatial differences); on the synthetic world it had not
    within hundreds of steps, and the flow decoder learnt to ignore its latent. A correlation peaks at the true
    displacement from the first step, even with random features. Input: [B, 6, H, W] in [0, 1], channels
    (target, source). Output: [B, latent_dim]. State-dict keys ``features.*``, ``motion.*``, ``head.*``, ``grid``.
    """

    def __init__(self, latent_dim: int = 128, hidden_dim: int = 256, radius: int = 4,
                 pool_grid: tuple[int, int] = (2, 4)):
        super().__init__()
        self.latent_dim, self.radius, self.pool_grid = latent_dim, radius, tuple(pool_grid)
        self.register_buffer("grid", torch.tensor(self.pool_grid))  # saved with the weights (see MotionEncoder)
        act = nn.LeakyReLU(0.1, inplace=True)
        self.features = nn.Sequential(nn.Conv2d(3, 32, 7, 2, 3), act, nn.Conv2d(32, 64, 5, 2, 2), act,
                                      nn.Conv2d(64, 64, 3, 1, 1))
        cost = (2 * radius + 1) ** 2
        self.motion = nn.Sequential(nn.Conv2d(cost, 128, 3, 2, 1), act, nn.Conv2d(128, 128, 3, 2, 1), act,
                                    nn.Conv2d(128, 256, 3, 2, 1), act)
        cells = self.pool_grid[0] * self.pool_grid[1]
        self.head = nn.Sequential(nn.Linear(256 * cells, hidden_dim), nn.ReLU(inplace=True),
                                  nn.Linear(hidden_dim, latent_dim))

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        n = pair.shape[0]
        x = (torch.cat([pair[:, :3], pair[:, 3:]], 0) - 0.45) / 0.225
        feats = F.normalize(self.features(x), dim=1)  # unit feature vectors: the cost is a cosine in [-1, 1]
        cost = local_correlation(feats[:n], feats[n:], self.radius) * feats.shape[1]
        deep = self.motion(cost)
        return self.head(F.adaptive_avg_pool2d(deep, self.pool_grid).flatten(1))


MOTION_ENCODERS = ("corr", "resnet")


def build_motion_encoder(kind: str, num_layers: int = 18, pretrained: bool = False, latent_dim: int = 128,
                         pool_grid: tuple[int, int] | None = (2, 4), hidden_dim: int = 256) -> nn.Module:
    """``corr``: CorrelationMotionEncoder; ``resnet``: MotionEncoder (its backbone can initialise a pose encoder)."""
    if kind == "corr":
        return CorrelationMotionEncoder(latent_dim, hidden_dim, pool_grid=pool_grid or (1, 1))
    if kind == "resnet":
        return MotionEncoder(num_layers, pretrained, latent_dim, hidden_dim, pool_grid)
    raise ValueError(f"motion encoder must be one of {MOTION_ENCODERS}, got {kind!r}")
