"""Self-supervised photometric losses (Monodepth2), as functions of explicit tensors."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from monodepth2_geopt.layers import SSIM

_SSIM = SSIM()
SSIM_WEIGHT = 0.85


def photometric_error(pred: torch.Tensor, target: torch.Tensor, no_ssim: bool = False) -> torch.Tensor:
    """0.85 * SSIM dissimilarity + 0.15 * L1, each averaged over channels. Returns [B, 1, H, W]."""
    l1 = (target - pred).abs().mean(1, keepdim=True)
    if no_ssim:
        return l1
    ssim = _SSIM(pred, target).mean(1, keepdim=True)
    return SSIM_WEIGHT * ssim + (1 - SSIM_WEIGHT) * l1


def smooth_loss(disp: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """Edge-aware first-order smoothness: |d disp| * exp(-|d img|) (img gradient averaged over channels)."""
    gdx = (disp[:, :, :, :-1] - disp[:, :, :, 1:]).abs()
    gdy = (disp[:, :, :-1, :] - disp[:, :, 1:, :]).abs()
    gix = (img[:, :, :, :-1] - img[:, :, :, 1:]).abs().mean(1, keepdim=True)
    giy = (img[:, :, :-1, :] - img[:, :, 1:, :]).abs().mean(1, keepdim=True)
    return (gdx * torch.exp(-gix)).mean() + (gdy * torch.exp(-giy)).mean()


def normalised_smooth_loss(disp: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """Smoothness of the mean-normalised disparity (Monodepth2's scale-invariant version)."""
    mean_disp = disp.mean(dim=(2, 3), keepdim=True)
    return smooth_loss(disp / (mean_disp + 1e-7), img)


@dataclass(frozen=True)
class MinReprojectionConfig:
    avg_reprojection: bool = False
    automask: bool = True
    no_ssim: bool = False
    tie_break_noise: float = 1e-5


def identity_reprojection_errors(sources: list[torch.Tensor], target: torch.Tensor,
                                 no_ssim: bool = False) -> torch.Tensor:
    """Photometric errors of the *unwarped* sources against the target [B, n_sources, H, W], for auto-masking.

    They depend on no network parameter, so they are computed without autograd, and can be shared by every
    loss scale that compares at the same resolution (Monodepth2 recomputed them per scale).
    """
    with torch.no_grad():
        return torch.cat([photometric_error(s, target, no_ssim) for s in sources], 1)


def min_reprojection_loss(warped: list[torch.Tensor], sources: list[torch.Tensor], target: torch.Tensor,
                          cfg: MinReprojectionConfig = MinReprojectionConfig(),
                          mask: torch.Tensor | None = None, identity: torch.Tensor | None = None):
    """Per-pixel minimum reprojection with auto-masking (Godard et al. 2019, eqs. 4-5).

    Args:
        warped: source frames warped into the target view, each [B, 3, H, W].
        sources: the same source frames unwarped (for auto-masking), each [B, 3, H, W].
        target: [B, 3, H, W].
        mask: optional predictive (explainability) mask [B, len(warped), H, W] multiplying the errors.
        identity: optional precomputed ``identity_reprojection_errors(sources, target)``.
    Returns:
        (loss scalar, identity_selection [B, H, W] float: 1 where a warped frame won, or None, per-pixel
        minimum [B, H, W]).
    """
    reproj = torch.cat([photometric_error(w, target, cfg.no_ssim) for w in warped], 1)
    if mask is not None:
        reproj = reproj * mask
    reproj = reproj.mean(1, keepdim=True) if cfg.avg_reprojection else reproj
    if cfg.automask:
        if identity is None:
            identity = identity_reprojection_errors(sources, target, cfg.no_ssim)
        if cfg.avg_reprojection:
            identity = identity.mean(1, keepdim=True)
        # Tiny noise breaks ties between identical identity and reprojection errors (e.g. static textureless).
        identity = identity + torch.randn_like(identity) * cfg.tie_break_noise
        combined = torch.cat([identity, reproj], 1)
    else:
        combined = reproj
    if combined.shape[1] == 1:
        to_optimise, idxs = combined[:, 0], torch.zeros_like(combined[:, 0], dtype=torch.long)
    else:
        to_optimise, idxs = torch.min(combined, dim=1)
    selection = None
    if cfg.automask:
        selection = (idxs > identity.shape[1] - 1).float()
    return to_optimise.mean(), selection, to_optimise
