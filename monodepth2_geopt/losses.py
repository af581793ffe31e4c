"""Self-supervised photometric losses (Monodepth2), as functions of explicit tensors."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

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


def depth_objective(warped: dict, colors: dict, disps: dict, sources: list, scales: list[int],
                    cfg: MinReprojectionConfig, smoothness: float, v1_multiscale: bool = False,
                    masks: dict | None = None) -> tuple[torch.Tensor, dict, dict]:
    """Monodepth2's self-supervised objective: per scale, the minimum reprojection loss (with auto-masking and an
    optional predictive mask) plus the edge-aware smoothness of the mean-normalised disparity / 2**scale;
    the mean over scales.

    Args:
        warped: ``(frame_id, scale) -> [B, 3, H, W]`` sources warped into the target view.
        colors: ``(frame_id, scale) -> [B, 3, H_s, W_s]`` the image pyramid; frame 0 is the target.
        disps: ``scale -> [B, 1, H_s, W_s]`` predicted disparities (the smoothness is computed at their scale).
        sources: the source frame ids (e.g. ``[-1, 1, "s"]``).
        v1_multiscale: compare at each scale's resolution (Monodepth's v1 behaviour); otherwise every scale's
            depth was upsampled and is compared at scale 0 (Monodepth2).
        masks: ``scale -> [B, len(sources), H, W]`` predictive masks at the comparison resolution, or None.
    Returns:
        (loss, per-scale losses ``{"loss/<s>": ...}``, auto-mask selections ``scale -> [B, H, W]``).
    """
    per_scale, selections, total = {}, {}, 0.0
    identity = {}  # auto-masking errors per comparison resolution, shared by the scales that use it
    for scale in scales:
        source_scale = scale if v1_multiscale else 0
        target = colors[(0, source_scale)]
        unwarped = [colors[(f, source_scale)] for f in sources]
        if cfg.automask and source_scale not in identity:
            identity[source_scale] = identity_reprojection_errors(unwarped, target, cfg.no_ssim)
        mask = None if masks is None else masks[scale]
        loss, selection, _ = min_reprojection_loss([warped[(f, scale)] for f in sources], unwarped, target, cfg,
                                                   mask, identity.get(source_scale))
        if mask is not None:  # keeps the mask from collapsing to 0 (Zhou et al. 2017)
            loss = loss + 0.2 * F.binary_cross_entropy(mask, torch.ones_like(mask))
        if selection is not None:
            selections[scale] = selection
        smooth = normalised_smooth_loss(disps[scale], colors[(0, scale)])
        loss = loss + smoothness * smooth / (2 ** scale)
        total = total + loss
        per_scale[f"loss/{scale}"] = loss
    return total / len(scales), per_scale, selections


# ---------------------------------------------------------------------------------------------- pseudo-labels
SSI_ALIGNMENTS = ("median", "lsq")


def _normalise_median_mad(x: torch.Tensor, valid: torch.Tensor, eps: float) -> torch.Tensor:
    """(x - median) / mean |x - median| per image over its valid pixels (MiDaS's scale-and-shift estimate).

    x, valid: [B, N]. Invalid entries of the result are 0."""
    med = torch.nanmedian(torch.where(valid, x, torch.nan), dim=1, keepdim=True).values
    med = torch.nan_to_num(med)  # an image without a valid pixel
    count = valid.sum(1, keepdim=True).clamp(min=1)
    centred = torch.where(valid, x - med, 0.0)
    mad = centred.abs().sum(1, keepdim=True) / count
    return centred / (mad + eps)


def ssi_disparity_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
                       align: str = "median", eps: float = 1e-6) -> torch.Tensor:
    """Scale-and-shift-invariant L1 between a predicted and a teacher disparity (NimbleD's pseudo-label loss).

    Args:
        pred: [B, 1, H, W] predicted disparity (any affine function of it gives the same loss: Monodepth2's
            sigmoid output and its ``disp_to_depth`` scaled disparity are interchangeable).
        target: [B, 1, H, W] teacher disparity, known only up to scale and shift; NaN/inf = no label.
        valid: [B, 1, H, W] bool mask of the pixels to compare (default: where ``target`` is finite); it is
            combined with ``isfinite(target)``.
        align: ``"median"`` (NimbleD's ``ssi_loss``, after MiDaS): each image of ``pred`` and of ``target`` is
            shifted by its median and divided by its mean absolute deviation from it, over the valid pixels,
            then compared with an L1. Invariant to a *positive* scale and any shift of either input; a
            prediction of the wrong sign (near and far swapped) is penalised. ``"lsq"``: ``target`` normalised
            as above, and ``pred`` aligned to it by least-squares scale and shift (MiDaS's other estimate, as
            ``evaluate_depth.py --align lsqr``); also invariant to a negative scale.
        eps: added to the deviations (and the variance, ``lsq``) so that a constant image stays finite.
    Returns:
        scalar: the mean over images with at least one valid pixel of the mean absolute difference over their
        valid pixels (unitless: both sides are normalised); 0 when no pixel is valid.
    Convention: NimbleD min-max normalises both maps first; an increasing affine map followed by the median/MAD
    normalisation changes nothing (up to ``eps``), so that step is left out.
    """
    if align not in SSI_ALIGNMENTS:
        raise ValueError(f"align must be one of {SSI_ALIGNMENTS}, got {align!r}")
    if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 1:
        raise ValueError(f"pred and target must both be [B, 1, H, W], got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    b = pred.shape[0]
    p = pred.reshape(b, -1).float()
    t = target.reshape(b, -1).float()
    ok = torch.isfinite(t)
    if valid is not None:
        ok = ok & valid.reshape(b, -1).bool()
    count = ok.sum(1, keepdim=True)
    t_hat = _normalise_median_mad(torch.where(ok, t, 0.0), ok, eps)
    if align == "median":
        p_hat = _normalise_median_mad(p, ok, eps)
    else:
        n = count.clamp(min=1)
        p_mean = torch.where(ok, p, 0.0).sum(1, keepdim=True) / n
        p_c = torch.where(ok, p - p_mean, 0.0)
        t_mean = t_hat.sum(1, keepdim=True) / n  # t_hat is 0 off the mask
        scale = (p_c * (t_hat - t_mean)).sum(1, keepdim=True) / ((p_c * p_c).sum(1, keepdim=True) + eps)
        p_hat = torch.where(ok, scale * p_c + t_mean, 0.0)
    per_image = torch.where(ok, (p_hat - t_hat).abs(), 0.0).sum(1) / count.squeeze(1).clamp(min=1)
    has = (count.squeeze(1) > 0).to(per_image.dtype)  # no host sync: images without labels weigh 0
    return (per_image * has).sum() / has.sum().clamp(min=1)
