"""Every metric of the project: depth errors, masks and scale alignment; flow end-point error and KITTI Fl;
flow diagnostics' change measures; pose trajectory error (ATE). Training-time monitoring and evaluation share them.

The depth functions accept NumPy arrays or torch tensors. The error formulas exist once, in
`compute_depth_errors`; the eigen crop exists once, in `eigen_crop_slices`; EPE once, in `_epe_map`; the snippet
ATE once, in `compute_ate`.

Protocols (keep them labelled when reporting numbers):
- Monodepth2 (Godard et al., ICCV 2019, `evaluate_depth.py`): per-image median scaling, predictions
  clamped to [MIN_DEPTH, MAX_DEPTH], metrics computed per image and then averaged over images.
- NimbleD's `eval_kitti.py --align lsqr`: per-image least-squares scale and shift in *disparity* space.
Both use the Garg crop and MIN_DEPTH < gt < MAX_DEPTH on eigen, and every gt > 0 on other splits
(`split_eval_settings`).
"""

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from monodepth2_geopt.errors import InputError

MIN_DEPTH = 1e-3
MAX_DEPTH = 80.0
# Stereo models are trained with a 0.1 baseline; the KITTI rig's baseline is 0.54 m.
STEREO_SCALE_FACTOR = 5.4
METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")

# Garg/Eigen crop as fractions of (height, height, width, width): top, bottom, left, right.
EIGEN_CROP_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
# Size of the full-resolution KITTI frames most eigen GT maps have (height, width).
KITTI_FULL_RES = (375, 1242)

# KITTI Fl: an outlier has EPE > KITTI_OUTLIER_PX px and > KITTI_OUTLIER_REL of the ground-truth magnitude.
KITTI_OUTLIER_PX = 3.0
KITTI_OUTLIER_REL = 0.05
TRACK_LENGTH = 5  # frames per ATE snippet (Monodepth2 issue #32: the SfMLearner convention)

Array = np.ndarray | torch.Tensor


def compute_depth_errors(gt: Array, pred: Array) -> dict[str, float | torch.Tensor]:
    """The 7 standard depth metrics between 1-D arrays of valid GT and predicted depths.

    Torch inputs return 0-d tensors (on the input's device, no sync); NumPy inputs return floats
    (computed in float64). Both inputs must be strictly positive and of equal length.
    """
    as_numpy = isinstance(gt, np.ndarray) or isinstance(pred, np.ndarray)
    gt_t = torch.as_tensor(gt, dtype=torch.float64) if as_numpy else gt
    pred_t = torch.as_tensor(pred, dtype=torch.float64) if as_numpy else pred
    if gt_t.shape != pred_t.shape:
        raise ValueError(f"gt and pred must have the same shape, got {tuple(gt_t.shape)} "
                         f"and {tuple(pred_t.shape)}")
    if gt_t.numel() == 0:
        raise ValueError("no valid pixels to compute depth errors on")

    thresh = torch.maximum(gt_t / pred_t, pred_t / gt_t)
    diff = gt_t - pred_t
    log_diff = torch.log(gt_t) - torch.log(pred_t)
    errors = {
        "abs_rel": (diff.abs() / gt_t).mean(),
        "sq_rel": (diff**2 / gt_t).mean(),
        "rmse": torch.sqrt((diff**2).mean()),
        "rmse_log": torch.sqrt((log_diff**2).mean()),
        "a1": (thresh < 1.25).to(gt_t.dtype).mean(),
        "a2": (thresh < 1.25**2).to(gt_t.dtype).mean(),
        "a3": (thresh < 1.25**3).to(gt_t.dtype).mean(),
    }
    if as_numpy:
        return {k: float(v) for k, v in errors.items()}
    return errors


def eigen_crop_slices(height: int, width: int) -> tuple[slice, slice]:
    """Row and column slices of the Garg/Eigen crop for an image of the given size.

    The fractions are truncated to int as in Monodepth2; at 375x1242 this gives rows 153:371 and
    columns 44:1197 (the pixel form Monodepth2's trainer hard-codes).
    """
    top, bottom, left, right = EIGEN_CROP_FRACTIONS
    return (slice(int(top * height), int(bottom * height)),
            slice(int(left * width), int(right * width)))


def eigen_crop_mask(height: int, width: int) -> np.ndarray:
    """Boolean [H, W] mask that is True inside the Garg/Eigen crop (rows 153:371, cols 44:1197 at 375x1242)."""
    mask = np.zeros((height, width), dtype=bool)
    mask[eigen_crop_slices(height, width)] = True
    return mask


def valid_mask(gt: Array, crop: str | None = "eigen", min_depth: float = MIN_DEPTH,
               max_depth: float = MAX_DEPTH) -> Array:
    """Mask of GT pixels that count: min_depth < gt < max_depth, intersected with the crop.

    `gt` is [..., H, W] (NumPy or torch; the mask has the same type and shape). `crop` is "eigen"
    (Garg crop, used for the eigen split and training-time monitoring) or None. Monodepth2 used
    `gt > 0` alone for non-eigen splits: pass min_depth=0, max_depth=float("inf") to reproduce that.
    """
    mask = (gt > min_depth) & (gt < max_depth)
    if crop is None:
        return mask
    if crop != "eigen":
        raise ValueError(f"unknown crop {crop!r}; expected 'eigen' or None")
    rows, cols = eigen_crop_slices(gt.shape[-2], gt.shape[-1])
    crop_mask = torch.zeros_like(mask) if isinstance(mask, torch.Tensor) else np.zeros_like(mask)
    crop_mask[..., rows, cols] = True
    return mask & crop_mask


def _median(x: Array) -> float:
    # Interpolating median for both types (torch.median returns the lower middle value).
    if isinstance(x, torch.Tensor):
        return float(torch.quantile(x.detach().double().flatten(), 0.5))
    return float(np.median(x))


def median_scale(gt: Array, pred: Array) -> float:
    """Per-image median scaling ratio median(gt) / median(pred) over valid pixels."""
    if len(gt) == 0 or len(pred) == 0:
        raise ValueError("median scaling needs at least one valid pixel")
    return _median(gt) / _median(pred)


def lsqr_scale_shift(gt_depth: Array, pred_disp: Array) -> tuple[float, float]:
    """Least-squares scale s and shift t in disparity space: min ||s * pred_disp + t - 1/gt||^2.

    Inputs are 1-D valid pixels (NimbleD's `--align lsqr` protocol). Solved in float64 with the
    centred closed form. The aligned depth is `aligned_depth_from_disp(pred_disp, s, t)`.
    """
    if isinstance(gt_depth, torch.Tensor):
        gt_depth = gt_depth.detach().cpu().numpy()
    if isinstance(pred_disp, torch.Tensor):
        pred_disp = pred_disp.detach().cpu().numpy()
    target = 1.0 / np.asarray(gt_depth, dtype=np.float64)
    disp = np.asarray(pred_disp, dtype=np.float64)
    if disp.size < 2:
        raise ValueError("lsqr alignment needs at least two valid pixels")
    disp_c = disp - disp.mean()
    var = float((disp_c**2).sum())
    if var == 0.0:
        raise ValueError("lsqr alignment is degenerate: the predicted disparity is constant")
    scale = float((disp_c * (target - target.mean())).sum() / var)
    shift = float(target.mean() - scale * disp.mean())
    return scale, shift


def aligned_depth_from_disp(pred_disp: Array, scale: float, shift: float,
                            min_depth: float = MIN_DEPTH, max_depth: float = MAX_DEPTH) -> Array:
    """Depth 1 / (scale * disp + shift) clamped to [min_depth, max_depth].

    As in NimbleD's eval_kitti.py, a non-positive aligned disparity counts as depth 0 and so
    ends up at min_depth.
    """
    disp = pred_disp * scale + shift
    positive = disp > 0
    depth = 1.0 / disp.clip(1.0 / max_depth, None)  # > 0 and finite; replaced where disp <= 0
    depth[~positive] = min_depth
    return depth.clip(min_depth, max_depth)


def split_eval_settings(split: str) -> dict[str, object]:
    """Mask keyword arguments for `evaluate_depth_map` that reproduce the published protocols.

    eigen: Garg crop and MIN_DEPTH < gt < MAX_DEPTH. Other splits (eigen_benchmark, ...): no crop
    and every gt > 0, GT beyond MAX_DEPTH included (Monodepth2 and NimbleD both do this).
    """
    if split == "eigen":
        return {"crop": "eigen", "gt_range": (MIN_DEPTH, MAX_DEPTH)}
    return {"crop": None, "gt_range": (0.0, float("inf"))}


def evaluate_depth_map(gt: Array, pred_depth: Array, crop: str | None = "eigen",
                       align: str = "median", scale: float = 1.0, min_depth: float = MIN_DEPTH,
                       max_depth: float = MAX_DEPTH, gt_range: tuple[float, float] | None = None,
                       ) -> tuple[dict[str, float | torch.Tensor], float]:
    """Errors of one [H, W] depth prediction against its GT map, and the alignment ratio used.

    `pred_depth` must already be resized to the GT's resolution (Monodepth2 resizes the network's
    disparity to each GT map's own size with bilinear interpolation before inverting it); a shape
    mismatch raises. Steps: mask (`valid_mask` with `crop` and `gt_range`, which defaults to
    (min_depth, max_depth); see `split_eval_settings`), multiply by `scale` (STEREO_SCALE_FACTOR
    for stereo models), align ("median": per-image median ratio; "lsqr": scale and shift of
    1/pred in disparity space; "none"), clamp to [min_depth, max_depth], `compute_depth_errors`.
    The returned ratio is the median ratio, the lsqr disparity scale s, or 1.0 for "none".
    """
    if tuple(gt.shape) != tuple(pred_depth.shape):
        raise ValueError(f"pred_depth {tuple(pred_depth.shape)} must be resized to the GT size "
                         f"{tuple(gt.shape)} before evaluation")
    gt_min, gt_max = gt_range if gt_range is not None else (min_depth, max_depth)
    mask = valid_mask(gt, crop=crop, min_depth=gt_min, max_depth=gt_max)
    if not mask.any():
        raise ValueError(f"no valid pixels: no GT in ({gt_min}, {gt_max}) inside crop {crop!r}")
    gt_valid = gt[mask]
    pred_valid = pred_depth[mask] * scale
    if align == "median":
        ratio = median_scale(gt_valid, pred_valid)
        pred_valid = pred_valid * ratio
    elif align == "lsqr":
        ratio, shift = lsqr_scale_shift(gt_valid, 1.0 / pred_valid)
        pred_valid = aligned_depth_from_disp(1.0 / pred_valid, ratio, shift, min_depth, max_depth)
    elif align == "none":
        ratio = 1.0
    else:
        raise ValueError(f"unknown align {align!r}; expected 'median', 'lsqr' or 'none'")
    pred_valid = pred_valid.clip(min_depth, max_depth)
    return compute_depth_errors(gt_valid, pred_valid), ratio


def aggregate(per_image_errors: Sequence[Mapping[str, float | torch.Tensor]]) -> dict[str, float]:
    """Mean of each metric over images (Monodepth2 averages per image, not over pooled pixels)."""
    if not per_image_errors:
        raise ValueError("no per-image errors to aggregate")
    keys = list(per_image_errors[0])
    return {k: sum(float(e[k]) for e in per_image_errors) / len(per_image_errors) for k in keys}


def format_metrics_table(mean_errors: Mapping[str, float]) -> str:
    """Two-line table: the 7 metric names, then Monodepth2's LaTeX-style row `&   0.115  & ... \\\\`."""
    header = " | ".join(f"{name:>8}" for name in METRIC_NAMES)
    row = "".join(f"&{float(mean_errors[name]):8.3f}  " for name in METRIC_NAMES) + "\\\\"
    return f"  {header}\n{row}"


def format_ratio_summary(ratios: Sequence[float]) -> str:
    """One line with the median of the per-image scaling ratios and the std of ratios / median."""
    values = np.asarray(ratios, dtype=np.float64)
    if values.size == 0:
        return " Scaling ratios | none"
    return f" Scaling ratios | med: {np.median(values):0.3f} | std: {np.std(values / np.median(values)):0.3f}"


__all__ = [
    "MIN_DEPTH", "MAX_DEPTH", "STEREO_SCALE_FACTOR", "METRIC_NAMES", "EIGEN_CROP_FRACTIONS",
    "KITTI_FULL_RES", "compute_depth_errors", "eigen_crop_slices", "eigen_crop_mask",
    "valid_mask", "median_scale", "lsqr_scale_shift", "aligned_depth_from_disp",
    "split_eval_settings", "evaluate_depth_map", "aggregate", "format_metrics_table", "format_ratio_summary",
    "KITTI_OUTLIER_PX", "KITTI_OUTLIER_REL", "end_point_error", "fl_all", "relative_flow_change",
    "flow_direction_cosine", "training_depth_errors", "TRACK_LENGTH", "compute_ate", "chain_positions",
    "snippet_ates",
]


# ------------------------------------------------------------------------------------------ flow
# Flow convention: [..., 2, H, W] in pixels, (u, v) = (right, down), target -> source (see geometry.flow_warp);
# valid masks are [..., H, W] bool. Torch only; every function returns a 0-d tensor (no host sync).
def _epe_map(flow: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-pixel end-point error |flow - gt| (Euclidean, px) [..., H, W], computed in float32."""
    return torch.linalg.vector_norm(flow.float() - gt.float(), dim=-3)


def end_point_error(flow: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean end-point error (pixels) over valid pixels. flow, gt: [..., 2, H, W]; valid: [..., H, W] bool."""
    epe = _epe_map(flow, gt)
    return epe.mean() if valid is None else epe[valid.bool()].mean()


def fl_all(flow: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """KITTI Fl as a FRACTION in [0, 1] (KITTI reports percent): share of valid pixels whose EPE is strictly
    greater than KITTI_OUTLIER_PX (3 px) AND strictly greater than KITTI_OUTLIER_REL (5 %) of |gt|."""
    epe = _epe_map(flow, gt)
    mag = torch.linalg.vector_norm(gt.float(), dim=-3)
    outlier = ((epe > KITTI_OUTLIER_PX) & (epe > KITTI_OUTLIER_REL * mag)).float()
    return outlier.mean() if valid is None else outlier[valid.bool()].mean()


def relative_flow_change(changed: torch.Tensor, reference: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean end-point distance between two flow fields relative to the reference's mean magnitude.

    0 when ``changed`` equals ``reference``; 1 when it became zero; 2 when it became ``-reference``. Used for
    the GeoPt diagnostics "latent sensitivity" (flows with permuted motion latents vs the true ones) and
    "structure usage" (flows with the skip features zeroed vs the full decoder). Returns a 0-d tensor.
    """
    diff = torch.linalg.vector_norm(changed.float() - reference.float(), dim=-3).mean()
    return diff / torch.linalg.vector_norm(reference.float(), dim=-3).mean().clamp_min(eps)


def flow_direction_cosine(flow_a: torch.Tensor, flow_b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Cosine between two flow fields [B, 2, H, W], each image's field taken as one vector; mean over B.

    For a camera moving steadily, the flows t -> t-1 and t -> t+1 are nearly opposite (cosine near -1); a
    network that predicts one average flow from the target alone gives +1. Returns a 0-d tensor.
    """
    a, b = flow_a.float().flatten(1), flow_b.float().flatten(1)
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(eps)
    return cos.mean()


def training_depth_errors(gt: torch.Tensor, pred_depth: torch.Tensor) -> dict[str, torch.Tensor]:
    """Monodepth2's training-time monitor on a batch with ground truth: ``pred_depth`` [B, 1, h, w] is
    bilinearly resized to the GT's size and clamped, then the Eigen crop, gt > 0, one median scale for the
    whole batch, and the metrics over all the batch's valid pixels together. Not the evaluation protocol
    (per-image median scaling, ``evaluate_depth_map``): a cheap trend line, as Monodepth2 logs it.

    Convention where it bites: ``torch.median`` is the *lower* median of an even count (Monodepth2's training
    code), where ``median_scale`` interpolates. Returns 0-d tensors (no host sync); empty dict without valid GT.
    """
    pred = torch.nn.functional.interpolate(pred_depth.detach(), gt.shape[-2:], mode="bilinear",
                                           align_corners=False).clamp(MIN_DEPTH, MAX_DEPTH)
    crop = torch.from_numpy(eigen_crop_mask(*gt.shape[-2:])).to(gt.device)
    mask = (gt > 0) & crop
    gt_v, pred_v = gt[mask], pred[mask]
    if gt_v.numel() == 0:
        return {}
    pred_v = (pred_v * torch.median(gt_v) / torch.median(pred_v)).clamp(MIN_DEPTH, MAX_DEPTH)
    return compute_depth_errors(gt_v, pred_v)


# ------------------------------------------------------------------------------------------ pose (ATE)
# Poses are 4x4 NumPy matrices; the pair pose of frames (i, i+1) maps points from camera i into camera i+1
# (pose_eval.gt_pair_poses). Positions are [N, 3] in metres (prediction: up to scale). Computed in float64.
def compute_ate(gt_xyz: np.ndarray, pred_xyz: np.ndarray) -> float:
    """Snippet ATE (SfMLearner's ``compute_ate``): shift pred so the first positions coincide, fit one scale,
    sqrt(sum sq err) / N.

    Args: gt_xyz, pred_xyz [N, 3] positions. The scale minimises ||s * pred - gt||^2 (after the shift).
    """
    gt = np.asarray(gt_xyz, dtype=np.float64)
    pred = np.asarray(pred_xyz, dtype=np.float64)
    if gt.shape != pred.shape or gt.ndim != 2 or gt.shape[1] != 3:
        raise ValueError(f"expected two [N, 3] position arrays, got {gt.shape} and {pred.shape}")
    pred = pred + (gt[0] - pred[0])
    denom = float(np.sum(pred ** 2))
    scale = float(np.sum(gt * pred)) / denom if denom > 0 else 0.0
    return float(np.sqrt(np.sum((scale * pred - gt) ** 2)) / gt.shape[0])


def chain_positions(relative_poses) -> np.ndarray:
    """Positions [K+1, 3] of the running product of K 4x4 relative poses, starting at the origin.

    Monodepth2's ``dump_xyz``: the product T_1 @ T_2 @ ... of the pair poses, applied identically to
    prediction and ground truth (part of the ATE protocol, hence here).
    """
    current = np.eye(4)
    xyz = [current[:3, 3].copy()]
    for T in relative_poses:
        current = current @ np.asarray(T, dtype=np.float64)
        xyz.append(current[:3, 3].copy())
    return np.stack(xyz)


def snippet_ates(pred_poses, gt_poses, track_length: int = TRACK_LENGTH) -> np.ndarray:
    """ATE of every snippet of ``track_length`` frames (``track_length - 1`` pair poses; shorter at the end)."""
    if len(pred_poses) != len(gt_poses):
        raise InputError(f"{len(pred_poses)} predicted poses but {len(gt_poses)} ground-truth poses")
    n = len(pred_poses)
    return np.array([compute_ate(chain_positions(gt_poses[i:i + track_length - 1]),
                                 chain_positions(pred_poses[i:i + track_length - 1])) for i in range(n)])
