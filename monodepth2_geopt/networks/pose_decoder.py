"""Pose head on ResNet features (state-dict keys ``net.0..3``, as in Monodepth2)."""
from __future__ import annotations

import torch
import torch.nn as nn


class PoseDecoder(nn.Module):
    """Squeeze (1x1 to 256) each input's deepest features, two 3x3 convs, 1x1 to 6 per frame, spatial mean.

    Returns (axisangle, translation), each [B, num_frames_to_predict_for, 1, 3], scaled by 0.01.
    """

    def __init__(self, num_ch_enc, num_input_features: int, num_frames_to_predict_for: int | None = None,
                 stride: int = 1):
        super().__init__()
        self.num_ch_enc = list(num_ch_enc)
        self.num_input_features = num_input_features
        if num_frames_to_predict_for is None:
            num_frames_to_predict_for = num_input_features - 1
        self.num_frames_to_predict_for = num_frames_to_predict_for
        self.net = nn.ModuleList([
            nn.Conv2d(self.num_ch_enc[-1], 256, 1),                      # squeeze
            nn.Conv2d(num_input_features * 256, 256, 3, stride, 1),     # pose 0
            nn.Conv2d(256, 256, 3, stride, 1),                           # pose 1
            nn.Conv2d(256, 6 * num_frames_to_predict_for, 1),            # pose 2
        ])
        self.relu = nn.ReLU()

    def forward(self, input_features):
        squeeze = self.net[0]
        x = torch.cat([self.relu(squeeze(f[-1])) for f in input_features], 1)
        x = self.relu(self.net[1](x))
        x = self.relu(self.net[2](x))
        x = self.net[3](x).mean(dim=(2, 3))
        x = 0.01 * x.view(-1, self.num_frames_to_predict_for, 1, 6)
        return x[..., :3], x[..., 3:]
