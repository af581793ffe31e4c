"""Every colouring of the project, for TensorBoard and for files: flow, disparity and any tensor shown as an image.

Conventions where they bite:
- ``flow_to_color``: torch, flow [B, 2, H, W] or [2, H, W] in pixels, (u, v) = (right, down) -> RGB float in
  [0, 1] with the same leading dims (TensorBoard's CHW).
- ``colormap_disparity``: NumPy [H, W] disparity -> uint8 [H, W, 3] (HWC, for PIL / video frames);
  ``colorize_disparity`` takes the network's [1, 1, h, w] and a PIL size (width, height);
  ``disparity_image``: torch [1, H, W] or [H, W] -> float [3, H, W] in [0, 1] (TensorBoard's CHW).
- ``normalize_image``: torch, any shape -> the same shape min-max scaled to [0, 1] (one range per call).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

VMAX_PERCENTILE = 95  # colormap_disparity's upper end (Monodepth2's test_simple.py)


# ------------------------------------------------------------------------------------------ flow
def _colorwheel() -> torch.Tensor:
    """The Middlebury colour wheel (Baker et al., ICCV 2007; flow_vis / RAFT's flow_viz): [55, 3] in [0, 255]."""
    segments = [(15, 0, 1, +1), (6, 1, 0, -1), (4, 1, 2, +1), (11, 2, 1, -1), (13, 2, 0, +1), (6, 0, 2, -1)]
    # each segment: (length, channel held at 255, channel ramping, ramp direction)
    rows = []
    for n, full, ramp, sign in segments:
        seg = torch.zeros(n, 3)
        seg[:, full] = 255
        r = torch.floor(255 * torch.arange(n, dtype=torch.float32) / n)
        seg[:, ramp] = r if sign > 0 else 255 - r
        rows.append(seg)
    return torch.cat(rows, 0)


_WHEEL = _colorwheel()


def flow_to_color(flow: torch.Tensor, max_flow: float | None = None) -> torch.Tensor:
    """Middlebury colour coding of flow [B, 2, H, W] (or [2, H, W]) -> RGB in [0, 1], same leading dims.

    Hue = direction, saturation = magnitude / max_flow (default: each image's largest magnitude); zero flow is
    white; magnitudes beyond max_flow are darkened by 0.75, as in Baker et al.'s reference code.
    """
    single = flow.dim() == 3
    flow = (flow[None] if single else flow).detach().float()
    u, v = flow[:, 0], flow[:, 1]
    rad = torch.sqrt(u * u + v * v)
    if max_flow is None:
        norm = rad.flatten(1).amax(1).clamp_min(1e-5).view(-1, 1, 1)
    else:
        norm = torch.as_tensor(float(max_flow), device=flow.device).clamp_min(1e-5)
    u, v, rad = u / norm, v / norm, rad / norm
    wheel = _WHEEL.to(flow.device)
    ncols = wheel.shape[0]
    angle = torch.atan2(-v, -u) / torch.pi  # [-1, 1]
    fk = (angle + 1) / 2 * (ncols - 1)
    k0 = fk.floor().long().clamp(0, ncols - 1)
    k1 = (k0 + 1) % ncols
    frac = (fk - k0.float())[..., None]
    col = ((1 - frac) * wheel[k0] + frac * wheel[k1]) / 255  # [B, H, W, 3]
    inside = (rad <= 1)[..., None]
    col = torch.where(inside, 1 - rad[..., None] * (1 - col), col * 0.75)
    out = col.permute(0, 3, 1, 2).clamp(0, 1)
    return out[0] if single else out


# ------------------------------------------------------------------------------------------ depth / disparity
def disparity_range(disp: np.ndarray, percentile: float = VMAX_PERCENTILE) -> tuple[float, float]:
    """Monodepth2's colour range of a disparity map: (its min, its 95th percentile)."""
    disp = np.asarray(disp, dtype=np.float64)
    return float(disp.min()), float(np.percentile(disp, percentile))


def colormap_disparity(disp: np.ndarray, percentile: float = VMAX_PERCENTILE,
                       vrange: tuple[float, float] | None = None) -> np.ndarray:
    """uint8 [H, W, 3] magma colour map of a disparity map, scaled from its min to its 95th percentile, or over
    a fixed ``vrange`` = (vmin, vmax) (one range for every frame of a video: no flicker)."""
    from matplotlib import colormaps  # imported on use: training never needs matplotlib

    disp = np.asarray(disp, dtype=np.float64)
    vmin, vmax = vrange if vrange is not None else disparity_range(disp, percentile)
    norm = np.clip((disp - vmin) / (vmax - vmin if vmax > vmin else 1.0), 0.0, 1.0)
    return (colormaps["magma"](norm)[..., :3] * 255).astype(np.uint8)


def colorize_disparity(scaled_disp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``colormap_disparity`` of a [1, 1, h, w] disparity resized (bilinear) to ``size`` = (width, height), PIL's
    order: uint8 [height, width, 3]."""
    t = torch.from_numpy(scaled_disp)
    resized = F.interpolate(t, size=(size[1], size[0]), mode="bilinear", align_corners=False)
    return colormap_disparity(resized[0, 0].numpy())


def disparity_image(disp: torch.Tensor) -> torch.Tensor:
    """``colormap_disparity`` (magma, min .. 95th percentile) of one disparity map [1, H, W] or [H, W] as float RGB
    [3, H, W] in [0, 1], for TensorBoard."""
    rgb = colormap_disparity(disp.detach().float().reshape(disp.shape[-2:]).cpu().numpy())
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0


# ------------------------------------------------------------------------------------------ any tensor
def normalize_image(x: torch.Tensor) -> torch.Tensor:
    """Rescale to [0, 1] for display."""
    x = x.detach()
    ma, mi = float(x.max()), float(x.min())
    return (x - mi) / (ma - mi if ma != mi else 1e5)


__all__ = ["VMAX_PERCENTILE", "flow_to_color", "disparity_range", "colormap_disparity", "colorize_disparity",
           "disparity_image", "normalize_image"]
