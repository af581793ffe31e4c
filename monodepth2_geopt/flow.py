"""Geometric Pretraining flow task: prediction, self-supervised flow loss, evaluation data.

Elsewhere: EPE / Fl-all in ``metrics``, ``flow_to_color`` in ``visualize``, ``load_flow_model`` in
``model_loading``, the evaluators (``evaluate_flow``, ``diagnose``) in ``flow_diagnostics``.

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

import torch
import torch.nn as nn
import torch.nn.functional as F

from monodepth2_geopt.errors import InputError
from monodepth2_geopt.geometry import flow_warp
from monodepth2_geopt.losses import MinReprojectionConfig, min_reprojection_loss, smooth_loss
from monodepth2_geopt.kitti_layout import (FLOW_DIR, flow_png_path, image_dir_of_flow_png, load_image_uint8,
                                           parse_split_line)
from monodepth2_geopt.splits import readlines

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


@torch.no_grad()
def predict_flow_pair(encoder: nn.Module, motion_encoder: nn.Module, flow_decoder: nn.Module,
                      target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Flow target -> source [2, H, W] at the finest decoder scale, upsampled to the input resolution (its pixels).

    target, source: [3, H, W] in [0, 1] at the model's input size (models in eval mode, on the tensors' device).
    """
    flows = predict_flows(encoder, motion_encoder, flow_decoder, target[None], {1: source[None]})
    finest = min(s for (_, _, s) in flows)
    return upsample_flow(flows[("flow", 1, finest)].float(), *target.shape[-2:])[0]


def flow_output_paths(out_dir: str | os.PathLike, stem: str) -> tuple[Path, Path]:
    """(colour-wheel PNG, Middlebury .flo) written for one flow: ``<stem>_flow.png``, ``<stem>_flow.flo``."""
    return Path(out_dir) / f"{stem}_flow.png", Path(out_dir) / f"{stem}_flow.flo"


def plan_flow_outputs(out_dir: str | os.PathLike | None, root: str | os.PathLike,
                      targets: Sequence[str | os.PathLike], overwrite: bool = False) -> list[tuple[Path, Path]]:
    """``flow_output_paths`` for each target frame, named after its path below ``root`` (``drive/image_02/data/
    0000000005.png`` -> ``drive_image_02_data_0000000005_flow.png``), so frames of different drives never collide.
    Refuses (InputError) if any exists and not ``overwrite``; creates ``out_dir``. [] when ``out_dir`` is None."""
    from monodepth2_geopt.splits import refuse_existing

    if not out_dir:
        return []
    out_dir, root = Path(out_dir).expanduser(), Path(root)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out_dir {out_dir} is a file; give a folder")
    stems = ["_".join(Path(t).relative_to(root).with_suffix("").parts) if Path(t).is_relative_to(root)
             else Path(t).stem for t in targets]
    outputs = [flow_output_paths(out_dir, stem) for stem in stems]
    refuse_existing([p for pair in outputs for p in pair], overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    return outputs


def save_flow_outputs(flow: torch.Tensor, png: str | os.PathLike, flo: str | os.PathLike) -> None:
    """Write a flow [2, H, W] (pixels) as a Middlebury colour-wheel PNG (``visualize.flow_to_color``, scaled to its
    largest motion) and as an exact ``.flo`` file (``flow_io.write_flo``), each atomically."""
    import numpy as np
    from PIL import Image

    from monodepth2_geopt.fileio import atomic_path
    from monodepth2_geopt.flow_io import write_flo
    from monodepth2_geopt.visualize import flow_to_color

    flow = flow.detach().float().cpu()
    rgb = (flow_to_color(flow).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    with atomic_path(png) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    write_flo(flo, flow.permute(1, 2, 0).numpy())


def predict_image_pair(weights_folder: str | os.PathLike, target_path: str | os.PathLike,
                       source_path: str | os.PathLike, out_dir: str | os.PathLike, overwrite: bool = False,
                       device: torch.device | str = "cpu") -> dict:
    """Flow from image ``target_path`` to ``source_path`` by a pretrain_flow.py model, at the target image's own
    size (predicted at the model's size, then resized with its vectors rescaled), written as ``flow_output_paths``.

    Refuses, before loading anything, images that do not exist or differ in size, and existing outputs unless
    ``overwrite``. Returns {"png", "flo", "flow": [2, H, W] tensor, "model_size": (height, width)}.
    """
    from PIL import Image

    from monodepth2_geopt.model_loading import load_flow_model
    from monodepth2_geopt.splits import refuse_existing

    target_path, source_path = Path(target_path).expanduser(), Path(source_path).expanduser()
    sizes = []
    for flag, path in (("first", target_path), ("second", source_path)):
        if not path.is_file():
            raise InputError(f"--image_pair: the {flag} image {path} does not exist")
        try:
            with Image.open(path) as img:
                sizes.append(img.size)
        except OSError:
            raise InputError(f"--image_pair: the {flag} image {path} is not an image Pillow can read") from None
    if sizes[0] != sizes[1]:
        raise InputError(f"--image_pair: {target_path} is {sizes[0][0]}x{sizes[0][1]} but {source_path} is "
                         f"{sizes[1][0]}x{sizes[1][1]}; give two frames of the same size")
    png, flo = flow_output_paths(out_dir, target_path.stem)
    refuse_existing([png, flo], overwrite)
    encoder, motion, decoder, meta = load_flow_model(weights_folder, device)
    height, width = int(meta.get("height", 192)), int(meta.get("width", 640))
    target = load_image(target_path, height, width)[0].to(device)
    source = load_image(source_path, height, width)[0].to(device)
    flow = predict_flow_pair(encoder, motion, decoder, target, source)
    flow = resize_flow(flow[None], sizes[0][1], sizes[0][0])[0]
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    save_flow_outputs(flow, png, flo)
    return {"png": png, "flo": flo, "flow": flow.cpu(), "model_size": (height, width)}


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
