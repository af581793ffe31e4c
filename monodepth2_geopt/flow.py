"""Geometric Pretraining flow task: prediction, self-supervised flow loss, visualisation, metrics, evaluation.

Convention: flow is in pixels of the full input resolution, (u, v) = (right, down), from the *target* frame
to a *source* frame, so ``flow_warp(source, flow)`` reconstructs the target (``target(p) ~ source(p + flow(p))``).
Flow to each source of a triplet is predicted from the SAME structure features of the target, with one latent
motion vector per (target, source) pair (Wang et al., ICRA 2020). Ground truth in KITTI flow PNGs is flow from
frame t to t+1, i.e. target = frame t, source = frame t+1.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from monodepth2_geopt import checkpoint
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.flow_io import read_flow_png
from monodepth2_geopt.geometry import flow_warp
from monodepth2_geopt.losses import MinReprojectionConfig, min_reprojection_loss, smooth_loss
from monodepth2_geopt.kitti_layout import (FLOW_DIR, flow_png_path, image_dir_of_flow_png, load_image_uint8,
                                           parse_split_line)
from monodepth2_geopt.splits import readlines

KITTI_OUTLIER_PX = 3.0  # KITTI Fl: an outlier has EPE > 3 px and > 5 % of the ground-truth magnitude
KITTI_OUTLIER_REL = 0.05
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
# Flow default: per-source minimum without auto-masking (see flow_task.FlowTask and --flow_automask).
FLOW_LOSS_CONFIG = MinReprojectionConfig(automask=False)


# ------------------------------------------------------------------------------------------ prediction
def predict_flows(encoder: nn.Module, motion_encoder: nn.Module, flow_decoder: nn.Module,
                  target: torch.Tensor, sources: dict, zero_latent: bool = False) -> dict:
    """Flow from ``target`` [B,3,H,W] to every source {frame_id: [B,3,H,W]}, at every decoder scale.

    The structure encoder runs once on the target; the motion encoder runs once on the batch of all pairs,
    the decoder once per target (basis conditioning) or per pair. ``zero_latent``: a control that replaces
    every motion latent with zeros (the decoder can then only predict one flow per target image).
    Returns a fresh dict {("flow", frame_id, s): [B, 2, H/2^s, W/2^s]} (full-res pixels).
    """
    b, ids = target.shape[0], list(sources)
    features = encoder(target)
    pairs = torch.cat([torch.cat([target, sources[f]], 1) for f in ids], 0)  # [n*B, 6, H, W] (target, source)
    latent = motion_encoder(pairs)  # [n*B, latent_dim], source-major
    if zero_latent:
        latent = torch.zeros_like(latent)
    out = flow_decoder(features, latent)
    return {("flow", f, s): flow[i * b:(i + 1) * b] for (_, s), flow in out.items() for i, f in enumerate(ids)}


def upsample_flow(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of a flow already in target-resolution pixels (values unchanged)."""
    if flow.shape[-2:] == (height, width):
        return flow
    return F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)


def resize_flow(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize a flow [B,2,h,w] to (height, width) and rescale its vectors to the new pixel units."""
    h, w = flow.shape[-2:]
    scale = flow.new_tensor([width / w, height / h]).view(1, 2, 1, 1)
    return upsample_flow(flow, height, width) * scale


# ------------------------------------------------------------------------------------------ loss
def flow_photometric_loss(target: torch.Tensor, sources: dict, flows: dict, scales: Sequence[int] = (0, 1, 2, 3),
                          smoothness: float = 1e-2,
                          cfg: MinReprojectionConfig = FLOW_LOSS_CONFIG,
                          pyramid: dict | None = None) -> tuple[torch.Tensor, dict]:
    """Self-supervised multi-scale flow loss (Monodepth2's photometric loss with flow instead of depth+pose).

    Args:
        target: [B, 3, H, W] in [0, 1] (un-augmented).
        sources: {frame_id: [B, 3, H, W]} un-augmented source frames.
        flows: {("flow", frame_id, s): [B, 2, h_s, w_s]} target->source flow in full-resolution pixels.
        scales: scales to use; every scale's flow is upsampled to H x W before warping.
        smoothness: weight of the edge-aware first-order smoothness. It is computed at each scale's own
            resolution on the flow expressed in that scale's pixels (flow / 2^s) against the target resized
            to that scale, so a given flow field costs the same at every scale (hence no 1/2^s factor).
        cfg: photometric options: 0.85 SSIM + 0.15 L1 and the per-pixel minimum over the sources (occlusions);
            optionally (``automask=True``) Monodepth2's auto-masking of pixels that the unwarped sources explain
            better. It is off by default: zero flow is representable, and with the mask a global shift that fits
            a few pixels costs nothing elsewhere, which is where a network drifts early in training.
        pyramid: None (Monodepth2's choice: every scale compared at full resolution), or {s: (target_s,
            {frame_id: source_s})} with the images downsampled to each scale: scale s then warps source_s with
            its own flow in that scale's pixels (flow / 2^s) and compares at that resolution, as unsupervised
            flow methods do; the coarse comparisons give a gradient for motions of many pixels.
    Returns:
        (loss averaged over scales, details) with details holding scalar terms "loss/s", "photo/s",
        "smooth/s", the warped sources ("color", frame_id, s) and "identity_selection/s" when auto-masking.
    """
    h, w = target.shape[-2:]
    ids = list(sources)
    details, total = {}, 0.0
    for s in scales:
        if pyramid is None:
            tgt, srcs = target, sources
            warped = [flow_warp(sources[f], upsample_flow(flows[("flow", f, s)], h, w)) for f in ids]
        else:
            tgt, srcs = pyramid[s]
            warped = [flow_warp(srcs[f], upsample_flow(flows[("flow", f, s)], *tgt.shape[-2:]) / 2 ** s)
                      for f in ids]
        photo, selection, _ = min_reprojection_loss(warped, [srcs[f] for f in ids], tgt, cfg)
        smooth = 0.0
        for f in ids:
            flow = flows[("flow", f, s)]
            image = target if flow.shape[-2:] == (h, w) else F.interpolate(target, size=flow.shape[-2:],
                                                                             mode="area")
            smooth = smooth + smooth_loss(flow / 2 ** s, image) / len(ids)
        loss = photo + smoothness * smooth
        total = total + loss
        details.update({f"loss/{s}": loss, f"photo/{s}": photo, f"smooth/{s}": smooth})
        details.update({("color", f, s): img for f, img in zip(ids, warped)})
        if selection is not None:
            details[f"identity_selection/{s}"] = selection
    return total / len(scales), details


# ------------------------------------------------------------------------------------------ visualisation
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


# ------------------------------------------------------------------------------------------ metrics
def _epe_map(flow: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(flow.float() - gt.float(), dim=-3)  # [..., H, W]


def end_point_error(flow: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean end-point error (pixels) over valid pixels. flow, gt: [..., 2, H, W]; valid: [..., H, W] bool."""
    epe = _epe_map(flow, gt)
    return epe.mean() if valid is None else epe[valid.bool()].mean()


def fl_all(flow: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """KITTI Fl (as a fraction in [0, 1]): share of valid pixels with EPE > 3 px and EPE > 5 % of |gt|."""
    epe = _epe_map(flow, gt)
    mag = torch.linalg.vector_norm(gt.float(), dim=-3)
    outlier = ((epe > KITTI_OUTLIER_PX) & (epe > KITTI_OUTLIER_REL * mag)).float()
    return outlier.mean() if valid is None else outlier[valid.bool()].mean()


# ------------------------------------------------------------------------------------------ evaluation data
def _image_path(stem: Path) -> Path:
    for ext in IMAGE_EXTS:
        if stem.with_suffix(ext).is_file():
            return stem.with_suffix(ext)
    raise FileNotFoundError(f"image {stem}.png/.jpg does not exist (needed next to its flow ground truth)")


def _raw_pair(gt: Path) -> tuple[Path, Path, Path]:
    """KITTI-raw layout: <drive>/flow/image_0X/<t>.png -> <drive>/image_0X/data/<t>, <t+1>."""
    idx, cam_dir = int(gt.stem), image_dir_of_flow_png(gt)
    width = len(gt.stem)
    return (_image_path(cam_dir / f"{idx:0{width}d}"), _image_path(cam_dir / f"{idx + 1:0{width}d}"), gt)


def find_flow_pairs(data_path: str | os.PathLike, split_or_list=None) -> list[tuple[Path, Path, Path]]:
    """(target image, source image, ground-truth flow PNG) triples for flow evaluation.

    Layouts: KITTI raw / the synthetic world (``<drive>/flow/image_02/%010d.png``, flow t -> t+1, images in
    ``<drive>/image_02/data``) and KITTI flow 2015 (``flow_occ|flow_noc/<id>_10.png``, images in
    ``image_2/<id>_10.png``, ``<id>_11.png``). ``split_or_list``: None to find every ground-truth file
    under ``data_path``; else split lines ``"<drive> <frame> [l|r]"`` (a list or a split file's path), where
    lines without a ground-truth file (e.g. a drive's last frame) are skipped.
    """
    root = Path(data_path).expanduser()
    if not root.is_dir():
        raise InputError(f"flow evaluation path {root} is not a folder")
    if split_or_list is not None:
        lines = readlines(split_or_list) if isinstance(split_or_list, (str, os.PathLike)) else split_or_list
        pairs = []
        for line in (ln for ln in lines if ln.strip()):
            folder, idx, side = parse_split_line(line)
            gt = Path(flow_png_path(root, folder, idx, side))
            if gt.is_file():  # lines without ground truth (a drive's last frame, image_03) are skipped
                pairs.append(_raw_pair(gt))
        if not pairs:
            raise InputError(f"no flow ground truth under {root} for any line of the split "
                             f"(expected <drive>/flow/image_02/<frame:010d>.png)")
        return pairs
    pairs = []
    for gt in sorted(root.rglob("*.png")):
        if gt.parent.parent.name == FLOW_DIR and gt.stem.isdigit():
            pairs.append(_raw_pair(gt))
        elif gt.parent.name in ("flow_occ", "flow_noc") and gt.stem.endswith("_10"):
            img_dir = gt.parent.parent / "image_2"
            pairs.append((img_dir / gt.name, img_dir / gt.name.replace("_10.png", "_11.png"), gt))
    if not pairs:
        raise InputError(f"no flow ground truth under {root}: expected KITTI flow PNGs in <drive>/flow/image_02/ "
                         "(KITTI raw layout, e.g. the synthetic world) or flow_occ/<id>_10.png (KITTI 2015)")
    return pairs


def load_image(path: str | os.PathLike, height: int, width: int) -> torch.Tensor:
    """An RGB image resized to (height, width) (``kitti_layout.load_image_uint8``): float [1, 3, H, W] in [0, 1]."""
    return (load_image_uint8(path, height, width).float() / 255)[None]


# ------------------------------------------------------------------------------------------ evaluation
def load_flow_model(weights_folder: str | os.PathLike, device: torch.device | str = "cpu"):
    """Build (encoder, motion_encoder, flow_decoder, meta) from a pretrain_flow.py weights folder.

    Architectures are read from the state dicts (ResNet depths, latent size, bottleneck, conditioning,
    scales), so a weights folder copied without its opt.json still loads. All three are in eval mode.
    """
    from monodepth2_geopt.networks import ResnetEncoder
    from monodepth2_geopt.networks.flow_decoder import FlowDecoder
    from monodepth2_geopt.networks.motion_encoder import CorrelationMotionEncoder, MotionEncoder

    folder = Path(weights_folder).expanduser()
    for name in ("encoder.pth", "motion_encoder.pth", "flow.pth"):
        if not (folder / name).is_file():
            raise InputError(f"{folder} has no {name}: point at a weights folder written by pretrain_flow.py "
                             "(<log_dir>/<model_name>/models/weights_<epoch>)")
    enc_state, meta = checkpoint.load_state_file(folder / "encoder.pth")
    mot_state, _ = checkpoint.load_state_file(folder / "motion_encoder.pth")
    flow_state, _ = checkpoint.load_state_file(folder / "flow.pth")
    enc_layers = checkpoint.infer_resnet_layers(enc_state)
    corr = "features.0.weight" in mot_state
    mot_layers = None if corr else checkpoint.infer_resnet_layers(mot_state, "backbone.encoder.")
    if enc_layers is None or (mot_layers is None and not corr) or "head.2.weight" not in mot_state:
        raise InputError(f"{folder} does not hold a GeoPt structure encoder and motion encoder")
    latent_dim, hidden = mot_state["head.2.weight"].shape[0], mot_state["head.0.weight"].shape[0]
    encoder = ResnetEncoder(enc_layers, False)
    if corr:
        cost = mot_state["motion.0.weight"].shape[1]
        grid = tuple(int(g) for g in mot_state["grid"])
        motion = CorrelationMotionEncoder(latent_dim, hidden, radius=(round(cost ** 0.5) - 1) // 2, pool_grid=grid)
    else:
        grid = tuple(int(g) for g in mot_state["grid"]) if "grid" in mot_state else None
        motion = MotionEncoder(mot_layers, False, latent_dim, hidden, grid)
    scales = sorted(int(k.split(".")[1]) for k in flow_state if k.startswith("heads.") and k.endswith(".bias"))
    fixed = False
    if "coeff.weight" in flow_state:
        conditioning = "basis"
        num_basis = flow_state[f"heads.{scales[0]}.conv.weight"].shape[0] // 2
        fixed = flow_state["coeff.weight"].shape[0] > num_basis
    else:
        conditioning, num_basis = ("film" if any(".cond_film." in k for k in flow_state) else "concat"), 8
    bottleneck = flow_state["bottleneck.0.weight"].shape[0] if "bottleneck.0.weight" in flow_state else None
    decoder = FlowDecoder(encoder.num_ch_enc, latent_dim, bottleneck, scales, conditioning, num_basis=num_basis,
                          fixed_basis=fixed)
    for model, name in ((encoder, "encoder"), (motion, "motion_encoder"), (decoder, "flow")):
        checkpoint.load_into(model, folder / f"{name}.pth", f"GeoPt {name}")
    meta = dict(meta, num_layers=enc_layers, motion_num_layers=mot_layers)
    return encoder.to(device).eval(), motion.to(device).eval(), decoder.to(device).eval(), meta


@torch.no_grad()
def predict_flow(encoder: nn.Module, motion_encoder: nn.Module, flow_decoder: nn.Module, target: torch.Tensor,
                 source: torch.Tensor) -> torch.Tensor:
    """Finest-scale flow target -> source [B, 2, H, W] at the input resolution, in pixels."""
    flows = predict_flows(encoder, motion_encoder, flow_decoder, target, {1: source})
    finest = min(s for (_, _, s) in flows)
    return upsample_flow(flows[("flow", 1, finest)].float(), *target.shape[-2:])


@torch.no_grad()
def evaluate_flow(encoder: nn.Module, motion_encoder: nn.Module, flow_decoder: nn.Module,
                  pairs: Sequence[tuple], height: int, width: int,
                  device: torch.device | str = "cpu") -> dict:
    """EPE and Fl-all against ground truth, predictions resized to the GT resolution (vectors rescaled).

    Returns {"epe": mean over pairs of the per-image mean EPE (px), "fl_all": outliers over all valid
    pixels in PERCENT (as KITTI reports it), "zero_epe": EPE of zero flow (a baseline), "num_pairs"}.
    Follows RAFT's validate_kitti. The models' train/eval mode is left to the caller.
    """
    epes, zero_epes, outliers, valid_px = [], [], 0.0, 0
    for target_path, source_path, gt_path in pairs:
        gt_np, valid_np = read_flow_png(gt_path)
        gt = torch.from_numpy(gt_np).permute(2, 0, 1)[None].to(device)  # [1, 2, H, W]
        valid = torch.from_numpy(valid_np)[None].to(device)
        if not valid.any():
            continue
        target = load_image(target_path, height, width).to(device)
        source = load_image(source_path, height, width).to(device)
        flow = resize_flow(predict_flow(encoder, motion_encoder, flow_decoder, target, source), *gt.shape[-2:])
        epes.append(float(end_point_error(flow, gt, valid)))
        zero_epes.append(float(end_point_error(torch.zeros_like(gt), gt, valid)))
        n = int(valid.sum())
        outliers += float(fl_all(flow, gt, valid)) * n
        valid_px += n
    if not epes:
        raise InputError("flow evaluation found no valid ground-truth pixels")
    return {"epe": float(np.mean(epes)), "fl_all": 100.0 * outliers / valid_px,
            "zero_epe": float(np.mean(zero_epes)), "num_pairs": len(epes)}


def evaluate_flow_model(weights_folder: str | os.PathLike, data_path: str | os.PathLike, split_or_list=None,
                        device: torch.device | str = "cpu", height: int | None = None, width: int | None = None,
                        max_pairs: int | None = None) -> dict:
    """Evaluate a pretrain_flow.py weights folder on KITTI-format flow ground truth (see find_flow_pairs).

    The input size defaults to the one the model was trained at (encoder.pth metadata).
    """
    encoder, motion, decoder, meta = load_flow_model(weights_folder, device)
    height = height or int(meta.get("height", 192))
    width = width or int(meta.get("width", 640))
    pairs = find_flow_pairs(data_path, split_or_list)[:max_pairs]
    return evaluate_flow(encoder, motion, decoder, pairs, height, width, device)
