"""PoseCNN (Zhou et al. style pose network; state-dict keys ``net.0..6`` and ``pose_conv``)."""
from __future__ import annotations

import torch.nn as nn


class PoseCNN(nn.Module):
    """Seven stride-2 convs on the concatenated frames, 1x1 to 6 per source frame, spatial mean, x0.01."""

    def __init__(self, num_input_frames: int):
        super().__init__()
        self.num_input_frames = num_input_frames
        spec = [(3 * num_input_frames, 16, 7), (16, 32, 5), (32, 64, 3), (64, 128, 3), (128, 256, 3),
                (256, 256, 3), (256, 256, 3)]
        convs = [nn.Conv2d(i, o, k, 2, k // 2) for i, o, k in spec]
        # Registered after pose_conv, as in Monodepth2: parameters() (and so adam.pth's order) is pose_conv, net.0..6.
        self.pose_conv = nn.Conv2d(256, 6 * (num_input_frames - 1), 1)
        self.net = nn.ModuleList(convs)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        for conv in self.net:
            x = self.relu(conv(x))
        x = self.pose_conv(x).mean(dim=(2, 3))
        x = 0.01 * x.view(-1, self.num_input_frames - 1, 1, 6)
        return x[..., :3], x[..., 3:]
