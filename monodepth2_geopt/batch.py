"""Device-side batch preparation: uint8 frames -> float pyramid, colour augmentation, per-scale intrinsics.

Runs on the training device (GPU when there is one), so the CPU workers only decode, resize and flip.
Produces Monodepth2's keys: ("color", f, s), ("color_aug", f, 0), ("K", s), ("inv_K", s).
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from monodepth2_geopt.geometry import scale_intrinsics

BRIGHTNESS = CONTRAST = SATURATION = (0.8, 1.2)
HUE = (-0.1, 0.1)
AUG_PROB = 0.5


def color_augment(frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Monodepth2's colour jitter, identical for every frame of a sample.

    Args: frames [B, F, 3, H, W] in [0, 1]. Each sample is jittered with probability 0.5 by brightness,
    contrast and saturation factors in [0.8, 1.2] and a hue shift in [-0.1, 0.1], applied in a random
    order (as torchvision's ColorJitter) to all its F frames at once. Returns the same shape.
    """
    out = frames.clone()
    b = frames.shape[0]
    dev = "cpu"
    apply = torch.rand(b, generator=generator, device=dev) < AUG_PROB
    for i in torch.nonzero(apply).flatten().tolist():
        u = torch.rand(4, generator=generator, device=dev).tolist()
        factors = [BRIGHTNESS[0] + u[0] * (BRIGHTNESS[1] - BRIGHTNESS[0]),
                   CONTRAST[0] + u[1] * (CONTRAST[1] - CONTRAST[0]),
                   SATURATION[0] + u[2] * (SATURATION[1] - SATURATION[0]),
                   HUE[0] + u[3] * (HUE[1] - HUE[0])]
        ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
        x = out[i]
        for j in torch.randperm(4, generator=generator, device=dev).tolist():
            x = ops[j](x, factors[j])
        out[i] = x
    return out


LANCZOS_SUPPORT = 3.0


def _lanczos(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < LANCZOS_SUPPORT, np.sinc(x) * np.sinc(x / LANCZOS_SUPPORT), 0.0)


def lanczos_weights(in_size: int, out_size: int) -> torch.Tensor:
    """[out_size, in_size] float64 matrix of Pillow's LANCZOS resampling along one axis.

    Pillow's rule (``Resample.c``): output pixel i is centred at (i + 0.5) * scale in input pixels, with
    scale = in / out; the kernel sinc(x) sinc(x / 3) is stretched by max(scale, 1) (so it antialiases when
    shrinking), truncated at the image border and renormalised to sum 1 there.
    """
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    support = LANCZOS_SUPPORT * stretch
    weights = np.zeros((out_size, in_size))
    for i in range(out_size):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), in_size)
        k = _lanczos((np.arange(lo, hi) - centre + 0.5) / stretch)
        weights[i, lo:hi] = k / k.sum()
    return torch.from_numpy(weights)


@functools.lru_cache(maxsize=64)
def _weights_on(in_size: int, out_size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``lanczos_weights`` built once per size, device and dtype: no host-to-device copy per step."""
    return lanczos_weights(in_size, out_size).to(device, dtype)


def _to_8bit(x: torch.Tensor) -> torch.Tensor:
    return x.mul(255.0).round_().clamp_(0.0, 255.0).div_(255.0)


def lanczos_resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pillow's ``resize(LANCZOS)`` of [..., H, W] images in [0, 1], on the images' device.

    Separable, horizontal pass first, each pass rounded to 8 bits as Pillow stores it; Pillow's fixed-point
    weights and the pass order are the only differences left (a small fraction of a grey level).
    """
    x = _to_8bit(image @ _weights_on(image.shape[-1], width, image.device, image.dtype).T)
    return _to_8bit(_weights_on(image.shape[-2], height, image.device, image.dtype) @ x)


def pyramid(image: torch.Tensor, num_scales: int) -> list[torch.Tensor]:
    """[image at 1, 1/2, 1/4, ...] as Monodepth2 builds it: each level a LANCZOS resize of the previous one to
    (H // 2**s, W // 2**s). Images [N, C, H, W] in [0, 1] that are 8-bit values (as decoded frames are)."""
    h, w = image.shape[-2:]
    levels = [image]
    for s in range(1, num_scales):
        levels.append(lanczos_resize(levels[-1], h // 2 ** s, w // 2 ** s))
    return levels


def prepare_batch(batch: dict, device: torch.device, num_scales: int = 4, augment: bool = False,
                  channels_last: bool = False, generator: torch.Generator | None = None) -> dict:
    """Move a collated batch to ``device`` and build the training inputs (see datasets.mono_dataset)."""
    inputs = {}
    frame_keys = [k for k in batch if isinstance(k, tuple) and k[0] == "color"]
    colors = torch.stack([batch[k] for k in frame_keys], 1).to(device, non_blocking=True)  # [B,F,3,H,W]
    colors = colors.float().div_(255.0)
    b, nf, c, h, w = colors.shape
    augmented = color_augment(colors, generator) if augment else colors
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    flat = colors.reshape(b * nf, c, h, w)
    levels = pyramid(flat, num_scales)
    for s, level in enumerate(levels):
        level = level.reshape(b, nf, c, *level.shape[-2:])
        for j, k in enumerate(frame_keys):
            inputs[("color", k[1], s)] = level[:, j].contiguous(memory_format=memory_format)
    for j, k in enumerate(frame_keys):
        inputs[("color_aug", k[1], 0)] = augmented[:, j].contiguous(memory_format=memory_format)
    if "K" in batch:
        K_norm = batch["K"].to(device, non_blocking=True).float()
        for s in range(num_scales):
            K = scale_intrinsics(K_norm, h // 2 ** s, w // 2 ** s)
            inputs[("K", s)] = K
            inputs[("inv_K", s)] = torch.linalg.inv_ex(K)[0]  # no error check: no host sync
    for key in ("stereo_T", "depth_gt", "pseudo_disp", "source_aspect", "flip", "index"):
        if key in batch:
            inputs[key] = batch[key].to(device, non_blocking=True)
    return inputs
