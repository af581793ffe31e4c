"""Motion encoder of Geometric Pretraining: two frames -> a latent motion vector (not a 6-DoF pose).

Wang et al., "Geometric Pretraining for Monocular Depth Estimation" (ICRA 2020): a PoseNet-like network
encodes the motion between two frames (camera *and* object motion) into a 128-d latent vector that
conditions the flow decoder. The ResNet lives under ``backbone`` so that ``train.py --geopt_pose`` can
initialise Monodepth2's two-frame pose encoder from it (``monodepth2_geopt.geopt``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from networks.resnet_encoder import ResnetEncoder


class MotionEncoder(nn.Module):
    """ResNet on two stacked frames, global average pool of the deepest features, 2-layer MLP.

    Input: [B, 6, H, W] in [0, 1], channels (target, source). Output: latent [B, latent_dim].
    State-dict keys: ``backbone.encoder.*`` (a plain 2-image ``ResnetEncoder``) and ``head.*``.
    """

    def __init__(self, num_layers: int = 18, pretrained: bool = False, latent_dim: int = 128,
                 hidden_dim: int = 256):
        super().__init__()
        self.latent_dim = latent_dim
        self.backbone = ResnetEncoder(num_layers, pretrained, num_input_images=2)
        self.head = nn.Sequential(nn.Linear(self.backbone.num_ch_enc[-1], hidden_dim), nn.ReLU(inplace=True),
                                  nn.Linear(hidden_dim, latent_dim))

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        deepest = self.backbone(pair)[-1]  # [B, C, H/32, W/32]
        return self.head(deepest.mean(dim=(2, 3)))
