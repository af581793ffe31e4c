"""Multi-scale disparity decoder. Positional state-dict keys (``decoder.N.*``) match Monodepth2's release."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from monodepth2_geopt.layers import ConvBlock, Conv3x3, upsample


class DepthDecoder(nn.Module):
    """U-Net decoder: features from ``ResnetEncoder`` -> {("disp", s): sigmoid [B, C, H/2^s, W/2^s]}."""

    def __init__(self, num_ch_enc, scales=range(4), num_output_channels: int = 1, use_skips: bool = True):
        super().__init__()
        self.num_ch_enc = list(num_ch_enc)
        self.num_ch_dec = [16, 32, 64, 128, 256]
        self.scales = list(scales)
        self.use_skips = use_skips
        self.num_output_channels = num_output_channels
        # Released checkpoints index one flat ModuleList: for i = 4..0 the two up-convs of level i,
        # then one disparity head per entry of ``scales``. Keep that order.
        blocks = []
        for i in range(4, -1, -1):
            in_ch = self.num_ch_enc[-1] if i == 4 else self.num_ch_dec[i + 1]
            blocks.append(ConvBlock(in_ch, self.num_ch_dec[i]))
            in_ch = self.num_ch_dec[i] + (self.num_ch_enc[i - 1] if use_skips and i > 0 else 0)
            blocks.append(ConvBlock(in_ch, self.num_ch_dec[i]))
        for s in self.scales:
            blocks.append(Conv3x3(self.num_ch_dec[s], num_output_channels))
        self.decoder = nn.ModuleList(blocks)

    def init_output(self, value: float) -> None:
        """Set every head's bias so that a zero response gives the sigmoid output ``value`` (in (0, 1)).

        A fresh head has bias about 0, i.e. output 0.5: with Monodepth2's depth range that is a depth of about
        twice ``min_depth``, ten times closer than a street scene (see ``--init_depth``).
        """
        if not 0.0 < value < 1.0:
            raise ValueError(f"initial sigmoid output must be in (0, 1), got {value}")
        logit = math.log(value / (1.0 - value))
        with torch.no_grad():
            for head in self.decoder[10:]:  # the heads follow the 10 up-convolutions
                head.conv.bias.fill_(logit)

    def forward(self, input_features):
        outputs = {}
        x = input_features[-1]
        for level, i in enumerate(range(4, -1, -1)):
            x = upsample(self.decoder[2 * level](x))
            if self.use_skips and i > 0:
                x = torch.cat([x, input_features[i - 1]], 1)
            x = self.decoder[2 * level + 1](x)
            if i in self.scales:
                head = self.decoder[10 + self.scales.index(i)]
                # fp32 activation: under bf16 autocast the disparity keeps full precision (conv stays bf16)
                outputs[("disp", i)] = torch.sigmoid(head(x).float())
        return outputs
