"""Normalised intrinsics (fx/W, fy/H, cx/W, cy/H) as Monodepth2's 4x4 matrices, per pyramid level.

``batch.prepare_batch`` scales the dataset's normalised K to pixels at each level (H // 2**s, W // 2**s);
``matrices`` does the same for intrinsics predicted per batch element (``--learn_intrinsics``), with an exact,
differentiable inverse.
"""
from __future__ import annotations

import torch

NAMES = ("fx", "fy", "cx", "cy")


def normalised_matrix(k: torch.Tensor) -> torch.Tensor:
    """[B, 4] (fx, fy, cx, cy) normalised -> [B, 4, 4] normalised K (as the datasets' ``K``)."""
    b = k.shape[0]
    K = torch.zeros(b, 4, 4, dtype=k.dtype, device=k.device)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2] = k[:, 0], k[:, 1], k[:, 2], k[:, 3]
    K[:, 2, 2] = K[:, 3, 3] = 1
    return K


def matrices(k: torch.Tensor, height: int, width: int, scale: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, inv_K) [B, 4, 4] in pixels of pyramid level ``scale`` of a ``height`` x ``width`` input (level size
    ``height // 2**scale`` x ``width // 2**scale``, as ``prepare_batch``) from normalised [B, 4] intrinsics."""
    h, w = height // 2 ** scale, width // 2 ** scale
    fx, fy, cx, cy = k[:, 0] * w, k[:, 1] * h, k[:, 2] * w, k[:, 3] * h
    K = normalised_matrix(torch.stack([fx, fy, cx, cy], 1))
    inv = torch.zeros_like(K)
    inv[:, 0, 0], inv[:, 1, 1] = 1 / fx, 1 / fy
    inv[:, 0, 2], inv[:, 1, 2] = -cx / fx, -cy / fy
    inv[:, 2, 2] = inv[:, 3, 3] = 1
    return K, inv


def summary(k: torch.Tensor) -> dict:
    """Mean and standard deviation of [N, 4] normalised predictions, by name."""
    k = k.double()
    sd = k.std(0, unbiased=False) if k.shape[0] > 1 else torch.zeros(4, dtype=k.dtype)
    return {n: {"mean": float(k[:, i].mean()), "sd": float(sd[i])} for i, n in enumerate(NAMES)}
