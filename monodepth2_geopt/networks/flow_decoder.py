"""Conditional flow decoder of Geometric Pretraining: structure features + latent motion -> optical flow.

The deepest structure features pass a narrow 1x1 bottleneck (``bottleneck_channels``, 32 by default
against ResNet-18's 512), so the motion has to come from the latent vector and the structure encoder is
pushed towards motion-invariant features (Wang et al., ICRA 2020). Skip connections carry the shallower
structure features, as in Monodepth2's depth decoder.

Flow unit (every scale): pixels of the *full input resolution*, (u, v) = (right, down), from the target
frame to the source frame: ``target(p) ~ source(p + flow(p))`` (``geometry.flow_warp``). Each scale s
predicts a map of size H/2^s x W/2^s whose values are already full-resolution pixels, so upsampling a coarse
flow to full resolution needs no rescaling of the vectors. The head output r is mapped to
``flow = max_flow * W * tanh(gain * r / max_flow)`` (W = input width, from the features): about ``gain * W * r``
near zero (one unit of r = 1 % of the width by default) and bounded by ``max_flow * W``. The low gain keeps
Adam's parameter steps from turning into large flow jumps: with auto-masking, a flow that jumps far from the
truth gets no photometric gradient back.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from monodepth2_geopt.layers import Conv3x3, upsample

CONDITIONINGS = ("concat", "film", "basis")


def coordinate_maps(x: torch.Tensor) -> torch.Tensor:
    """Normalised pixel-centre coordinates (x, y) in (-1, 1) at the size of ``x``: [B, 2, h, w]."""
    b, _, h, w = x.shape
    ys = (torch.arange(h, device=x.device, dtype=x.dtype) * 2 + 1) / h - 1
    xs = (torch.arange(w, device=x.device, dtype=x.dtype) * 2 + 1) / w - 1
    return torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)], 0).expand(b, 2, h, w)


NUM_FIXED_BASIS = 8


def quadratic_flow_basis(x: torch.Tensor) -> torch.Tensor:
    """The 8 flow fields of the planar / rotational motion model at the size of ``x``: [8, 2, h, w].

    With (x, y) the normalised coordinates of ``coordinate_maps``: u = a1 + a2 x + a3 y + a7 x^2 + a8 xy and
    v = a4 + a5 x + a6 y + a7 xy + a8 y^2, the first-order image motion of a camera rotation or of a plane. They
    need no depth, so the motion latent can explain the global part of a flow (and learn to tell the directions
    of motion apart) before the structure decoder has learnt the depth-dependent part.
    """
    xs, ys = coordinate_maps(x[:1].float())[0]
    one, zero = torch.ones_like(xs), torch.zeros_like(xs)
    u = [one, xs, ys, zero, zero, zero, xs * xs, xs * ys]
    v = [zero, zero, zero, one, xs, ys, xs * ys, ys * ys]
    return torch.stack([torch.stack(u), torch.stack(v)], 1)


class ConditionedConvBlock(nn.Module):
    """[x, coordinate maps] -> Conv3x3 -> latent conditioning -> ELU.

    The two coordinate channels (CoordConv, Liu et al. 2018) let a global motion vector become a
    position-dependent flow field (camera translation and rotation induce flow that varies with the pixel
    position); without them a conv decoder can only infer position from its padding.

    ``concat``: broadcast z over the image and concatenate it to the conv input. A 3x3 conv over a spatially
    constant map (reflection padded) is the constant ``A z``, so this is computed exactly, and cheaply, as a
    latent-dependent bias ``Linear(z)``. ``film``: ``y * (1 + gamma(z)) + beta(z)`` (Perez et al. 2018).
    ``basis``: the block does not see the latent (it enters only at the heads, see ``FlowDecoder``).
    """

    def __init__(self, in_channels: int, out_channels: int, latent_dim: int, conditioning: str):
        super().__init__()
        self.conv = Conv3x3(in_channels + 2, out_channels)
        self.conditioning = conditioning
        if conditioning == "concat":
            self.cond_bias = nn.Linear(latent_dim, out_channels, bias=False)
        elif conditioning == "film":
            self.cond_film = nn.Linear(latent_dim, 2 * out_channels)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        y = self.conv(torch.cat([x, coordinate_maps(x)], 1))
        if self.conditioning == "concat":
            y = y + self.cond_bias(z)[:, :, None, None]
        elif self.conditioning == "film":
            gamma, beta = self.cond_film(z)[:, :, None, None].chunk(2, dim=1)
            y = y * (1 + gamma) + beta
        return self.nonlin(y)


class FlowDecoder(nn.Module):
    """U-Net flow decoder conditioned on a latent motion vector.

    Args:
        num_ch_enc: channels of the structure encoder's 5 feature maps (``ResnetEncoder.num_ch_enc``).
        latent_dim: size of the motion vector from ``MotionEncoder``.
        bottleneck_channels: width of the 1x1 bottleneck on the deepest features.
        scales: output scales (0 = input resolution, s = 1/2^s).
        conditioning: ``"concat"`` or ``"film"``; the latent enters every decoder conv (bottleneck and all levels),
            and so do two pixel-coordinate channels (see ``ConditionedConvBlock``).
        max_flow: bound on each flow component as a fraction of the input width.
        gain: flow per unit of head output near zero, as a fraction of the input width.
    forward(features, latent) -> fresh dict {("flow", s): [B, 2, H/2^s, W/2^s]} in full-resolution pixels.
    State-dict keys are named (``bottleneck.*``, ``blocks.up{i}_{j}.*``, ``heads.{s}.*``), not positional.
    """

    def __init__(self, num_ch_enc, latent_dim: int = 128, bottleneck_channels: int | None = 32, scales=range(4),
                 conditioning: str = "concat", max_flow: float = 0.3, gain: float = 0.01,
                 num_ch_dec=(16, 32, 64, 128, 256), num_basis: int = 8, fixed_basis: bool = False):
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
        self.num_ch_enc = list(num_ch_enc)
        self.num_ch_dec = list(num_ch_dec)
        self.scales = sorted(scales)
        self.latent_dim = latent_dim
        self.max_flow = max_flow
        self.gain = gain
        self.conditioning = conditioning
        if bottleneck_channels:
            self.bottleneck = nn.Sequential(nn.Conv2d(self.num_ch_enc[-1], bottleneck_channels, 1),
                                            nn.ELU(inplace=True))
        else:  # no bottleneck: the deepest features enter the first block directly
            self.bottleneck, bottleneck_channels = nn.Identity(), self.num_ch_enc[-1]
        blocks = {}
        for i in range(4, -1, -1):
            in_ch = bottleneck_channels if i == 4 else self.num_ch_dec[i + 1]
            blocks[f"up{i}_0"] = ConditionedConvBlock(in_ch, self.num_ch_dec[i], latent_dim, conditioning)
            in_ch = self.num_ch_dec[i] + (self.num_ch_enc[i - 1] if i > 0 else 0)
            blocks[f"up{i}_1"] = ConditionedConvBlock(in_ch, self.num_ch_dec[i], latent_dim, conditioning)
        self.blocks = nn.ModuleDict(blocks)
        self.num_basis = num_basis if conditioning == "basis" else 0
        out_ch = 2 * self.num_basis if self.num_basis else 2
        self.heads = nn.ModuleDict({str(s): Conv3x3(self.num_ch_dec[s], out_ch) for s in self.scales})
        self.fixed_basis = bool(fixed_basis) and self.num_basis > 0
        if self.num_basis:
            # motion coefficients of the basis flows; the product of two random factors starts small but not zero
            self.coeff = nn.Linear(latent_dim, self.num_basis + (NUM_FIXED_BASIS if self.fixed_basis else 0))
        if self.fixed_basis:
            # The learnt fields start at zero, so the first flows are global (fixed fields only): the motion latent
            # learns to tell motions apart before the structure decoder adds the depth-dependent part. Random
            # learnt fields instead add flow noise the optimiser removes by making the flow ignore the latent.
            for head in self.heads.values():
                nn.init.zeros_(head.conv.weight)
                nn.init.zeros_(head.conv.bias)
        elif not self.num_basis:
            for head in self.heads.values():  # start near zero flow: small weights, zero bias
                with torch.no_grad():
                    head.conv.weight.mul_(0.1)
                    head.conv.bias.zero_()

    def forward(self, input_features, latent):
        """Flows for N = n * B (target, source) pairs from the B targets' features and N latents.

        ``latent`` rows are source-major: pair ``i * B + b`` is target b with its i-th source (n = N / B; n = 1
        for one latent per target). With ``basis`` conditioning the decoder runs once per target and only the
        coefficients differ per pair; otherwise the features are repeated for every pair.
        """
        outputs = {}
        b = input_features[0].shape[0]
        if latent.shape[0] % b:
            raise ValueError(f"{latent.shape[0]} latents for {b} targets: need a multiple")
        n = latent.shape[0] // b
        if not self.num_basis and n > 1:
            input_features = [f.repeat(n, 1, 1, 1) for f in input_features]
        z = None if self.num_basis else latent
        width = input_features[0].shape[-1] * 2  # features[0] is at 1/2 resolution
        bound, slope = self.max_flow * width, self.gain / self.max_flow
        x = self.bottleneck(input_features[-1])
        coeff = self.coeff(latent).float()[:, :, None, None, None] if self.num_basis else None  # [N, K, 1, 1, 1]
        for i in range(4, -1, -1):
            x = upsample(self.blocks[f"up{i}_0"](x, z))
            if i > 0:
                x = torch.cat([x, input_features[i - 1]], 1)
            x = self.blocks[f"up{i}_1"](x, z)
            if i in self.scales:
                # fp32 from the head on: bf16 pixels would be quantised to 1/8 px at 30 px under autocast
                r = self.heads[str(i)](x).float()
                if coeff is not None:  # flow = sum_k c_k(latent) * basis_k(structure), basis shared by n pairs
                    basis = r.repeat(n, 1, 1, 1).unflatten(1, (self.num_basis, 2))
                    if self.fixed_basis:
                        fixed = quadratic_flow_basis(r)[None].expand(basis.shape[0], -1, -1, -1, -1)
                        basis = torch.cat([basis, fixed], 1)
                    r = (coeff * basis).sum(1)
                outputs[("flow", i)] = bound * torch.tanh(slope * r)
        return outputs
