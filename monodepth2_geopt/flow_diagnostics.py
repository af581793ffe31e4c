"""Does Geometric Pretraining learn motion? Diagnostics of a structure encoder + motion encoder + flow decoder.

A pretext model can lower its photometric loss without learning what GeoPt needs: it can predict one average
flow from the target image alone and ignore the second frame. These numbers tell the difference. Each is
computed on a batch of triplets (target t, sources t-1 and t+1), in one forward pass plus two probes:

- ``epe`` / ``fl_all``: end-point error (px) and KITTI outlier fraction of the t -> t+1 flow against ground
  truth where it exists; on real video against a **reference** flow (``reference_flow``: TV-L1, forward-backward
  checked), which is a classical estimate, not truth (``epe_kind`` says which; ``fl_all`` is then None).
- ``epe_zero_flow``: the same error for zero flow, the baseline any learned flow must beat.
- ``latent_sensitivity``: relative change of the flow when the motion latents are permuted within the batch (a
  fixed random derangement of all (target, source) pairs, so about half the swaps exchange a backward and a
  forward motion). 0 for a decoder that ignores the latent; about 1-2 when the latent carries the motion.
- ``direction_cosine``: cosine between the predicted t -> t-1 and t -> t+1 flows (near -1 for a camera moving
  steadily; +1 for an average-flow predictor).
- ``structure_usage``: relative change of the flow when the structure encoder's skip features (all but the
  deepest) are zeroed: how much of the flow depends on the target's structure beyond the bottleneck.

Flows are in pixels of the model's input resolution, (u, v) = (right, down), target -> source.

One evaluator: ``diagnose`` is where a flow is scored against ground truth (``_error_terms``: prediction resized
to the ground truth's resolution with its vectors rescaled, then ``metrics.end_point_error`` / ``metrics.fl_all``).
``evaluate_flow`` (KITTI-style EPE / Fl-all in percent over ground-truth files, run at every training log step
with ``--flow_eval_path``) streams pairs from disk and calls ``diagnose`` on each one without the probes.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from monodepth2_geopt.errors import InputError
from monodepth2_geopt.flow import find_flow_pairs, load_image, resize_flow, upsample_flow
from monodepth2_geopt.flow_io import read_flow_png
from monodepth2_geopt.metrics import end_point_error, fl_all, flow_direction_cosine, relative_flow_change

DIAGNOSTIC_KEYS = ("epe", "epe_zero_flow", "fl_all", "latent_sensitivity", "direction_cosine", "structure_usage")


def derangement(n: int, seed: int = 0) -> torch.Tensor:
    """A fixed random permutation of range(n) with no fixed point (n >= 2)."""
    if n < 2:
        raise ValueError("a derangement needs at least 2 elements")
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=g)
        if not (perm == torch.arange(n)).any():
            return perm


# ------------------------------------------------------------------------------------------ reference flow
def _gray(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] float in [0, 1] -> [H, W] float64 luminance."""
    rgb = image.detach().float().cpu().numpy()
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _tvl1(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """TV-L1 flow [2, H, W] (u, v) with reference(p) ~ moving(p + flow(p))."""
    from skimage.registration import optical_flow_tvl1
    v, u = optical_flow_tvl1(reference, moving)  # scikit-image returns (row, col) components
    return np.stack([u, v]).astype(np.float32)


def forward_backward_valid(forward: torch.Tensor, backward: torch.Tensor, alpha: float = 0.01,
                           beta: float = 0.5) -> torch.Tensor:
    """Forward-backward consistency mask (Sundaram et al. 2010; UnFlow's constants) for flows [2, H, W].

    A pixel p is valid when it lands inside the image and |f(p) + b(p + f(p))|^2 < alpha (|f(p)|^2 +
    |b(p + f(p))|^2) + beta. Returns [H, W] bool.
    """
    from monodepth2_geopt.geometry import flow_warp
    h, w = forward.shape[-2:]
    b_at = flow_warp(backward[None].float(), forward[None].float())[0]
    diff = (forward + b_at).pow(2).sum(0)
    bound = alpha * (forward.pow(2).sum(0) + b_at.pow(2).sum(0)) + beta
    xs = torch.arange(w, dtype=forward.dtype).view(1, w) + forward[0]
    ys = torch.arange(h, dtype=forward.dtype).view(h, 1) + forward[1]
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    return (diff < bound) & inside


def reference_flow(target: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Classical reference flow target -> source (scikit-image's TV-L1) and its forward-backward valid mask.

    target, source: [3, H, W] in [0, 1]. Returns (flow [2, H, W] px, valid [H, W] bool) on the CPU. It is a
    reference for real video without ground truth, not truth: report errors against it as such.
    """
    t, s = _gray(target), _gray(source)
    fwd, bwd = torch.from_numpy(_tvl1(t, s)), torch.from_numpy(_tvl1(s, t))
    return fwd, forward_backward_valid(fwd, bwd)


# ------------------------------------------------------------------------------------------ diagnostics
def _decode(decoder: nn.Module, features, latent: torch.Tensor) -> torch.Tensor:
    """Finest-scale flow at the input resolution [N, 2, H, W] (full-resolution pixels)."""
    out = decoder(features, latent)  # latent: n latents per target, source-major
    finest = min(s for (_, s) in out)
    h, w = features[0].shape[-2] * 2, features[0].shape[-1] * 2
    return upsample_flow(out[("flow", finest)].float(), h, w)


def _error_terms(flow: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> tuple[float, float, float, int]:
    """(mean EPE, mean zero-flow EPE, outlier count, valid count) of one sample at the GT's resolution."""
    flow = resize_flow(flow[None].float(), *gt.shape[-2:])[0]
    n = int(valid.sum())
    return (float(end_point_error(flow, gt, valid)), float(end_point_error(torch.zeros_like(gt), gt, valid)),
            float(fl_all(flow, gt, valid)) * n, n)


@torch.no_grad()
def diagnose(encoder: nn.Module, motion_encoder: nn.Module, flow_decoder: nn.Module, target: torch.Tensor,
             sources: Mapping[int, torch.Tensor], truth: list | None = None, truth_kind: str = "ground_truth",
             seed: int = 0, probes: bool = True) -> dict:
    """The GeoPt diagnostics (module docstring) on one batch. Models are used as they are (set eval mode first).

    Args:
        target: [B, 3, H, W] in [0, 1]; sources: {frame offset: [B, 3, H, W]}, e.g. {-1: ..., 1: ...}.
        truth: per sample, None or (flow [2, h, w], valid [h, w] bool) for target -> source +1 at any
            resolution (the prediction is resized to it and its vectors rescaled), or None for no EPE.
        truth_kind: "ground_truth" or "reference" (then ``fl_all`` is not reported).
        probes: False skips the two extra decoder passes (``latent_sensitivity`` and ``structure_usage`` stay
            None); the errors against ``truth`` do not depend on it.
    Returns:
        {key: float or None for key in DIAGNOSTIC_KEYS} plus "epe_kind", "num_images" (images with a valid
        truth), "valid_pixels" and "outliers" (for pixel-weighted aggregation over batches).
    """
    ids = list(sources)
    b = target.shape[0]
    features = encoder(target)
    pairs = torch.cat([torch.cat([target, sources[f]], 1) for f in ids], 0)
    latent = motion_encoder(pairs)
    flow = _decode(flow_decoder, features, latent)  # [n*B, 2, H, W]
    per_source = {f: flow[i * b:(i + 1) * b] for i, f in enumerate(ids)}
    out = {k: None for k in DIAGNOSTIC_KEYS}
    out.update(epe_kind=None, num_images=0, valid_pixels=0, outliers=0.0)
    if probes and flow.shape[0] >= 2:
        perm = derangement(flow.shape[0], seed).to(latent.device)
        out["latent_sensitivity"] = float(relative_flow_change(_decode(flow_decoder, features, latent[perm]), flow))
    if probes:
        no_skips = [torch.zeros_like(f) for f in features[:-1]] + [features[-1]]
        out["structure_usage"] = float(relative_flow_change(_decode(flow_decoder, no_skips, latent), flow))
    if -1 in per_source and 1 in per_source:
        out["direction_cosine"] = float(flow_direction_cosine(per_source[-1], per_source[1]))
    if truth is not None and 1 in per_source:
        epes, zeros = [], []
        for j, item in enumerate(truth):
            if item is None or not bool(item[1].any()):
                continue
            gt, valid = item[0].to(flow.device).float(), item[1].to(flow.device).bool()
            epe, zero, outl, n = _error_terms(per_source[1][j], gt, valid)
            epes.append(epe)
            zeros.append(zero)
            out["outliers"] += outl
            out["valid_pixels"] += n
        if epes:
            out.update(epe=float(np.mean(epes)), epe_zero_flow=float(np.mean(zeros)), epe_kind=truth_kind,
                       num_images=len(epes))
            if truth_kind == "ground_truth":
                out["fl_all"] = out["outliers"] / out["valid_pixels"]
    return out


def aggregate(results: list[dict]) -> dict:
    """Combine per-batch ``diagnose`` results: EPEs weighted by images, Fl-all by pixels, the rest by batch."""
    out = {k: None for k in DIAGNOSTIC_KEYS}
    for key in ("latent_sensitivity", "direction_cosine", "structure_usage"):
        vals = [r[key] for r in results if r[key] is not None]
        out[key] = float(np.mean(vals)) if vals else None
    n = sum(r["num_images"] for r in results)
    if n:
        out["epe"] = sum(r["epe"] * r["num_images"] for r in results if r["num_images"]) / n
        out["epe_zero_flow"] = sum(r["epe_zero_flow"] * r["num_images"] for r in results if r["num_images"]) / n
        kinds = {r["epe_kind"] for r in results if r["num_images"]}
        out["epe_kind"] = kinds.pop() if len(kinds) == 1 else "mixed"
        px = sum(r["valid_pixels"] for r in results)
        if out["epe_kind"] == "ground_truth" and px:
            out["fl_all"] = sum(r["outliers"] for r in results) / px
    else:
        out["epe_kind"] = None
    out["num_images"] = n
    return out


def format_table(diag: Mapping) -> str:
    """The diagnostics as one aligned text table (what evaluate_flow.py prints)."""
    def fmt(v, spec):
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)
    kind = {"ground_truth": "ground truth", "reference": "TV-L1 reference (not truth)"}.get(diag.get("epe_kind"),
                                                                                            "none")
    ratio = (diag["epe"] / diag["epe_zero_flow"] if diag.get("epe") is not None and diag.get("epe_zero_flow")
             else None)
    rows = [("EPE t->t+1 (px)", fmt(diag.get("epe"), ".3f"), f"against {kind}"),
            ("EPE of zero flow (px)", fmt(diag.get("epe_zero_flow"), ".3f"), "baseline"),
            ("EPE / zero flow", fmt(ratio, ".3f"), "< 1: better than no motion"),
            ("Fl-all", "n/a" if diag.get("fl_all") is None else f"{100 * diag['fl_all']:.2f} %", "ground truth only"),
            ("latent sensitivity", fmt(diag.get("latent_sensitivity"), ".3f"), "0: latent ignored"),
            ("direction cosine", fmt(diag.get("direction_cosine"), ".3f"), "t->t-1 vs t->t+1; < 0 expected"),
            ("structure usage", fmt(diag.get("structure_usage"), ".3f"), "flow change without skip features")]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value:>10}  {note}" for name, value, note in rows)


# ------------------------------------------------------------------------------------------ evaluation sets
def _neighbour(path, offset: int):
    """The frame ``offset`` away from a numerically named frame in the same folder, or None if absent."""
    from pathlib import Path
    path = Path(path)
    if not path.stem.isdigit():
        return None
    idx = int(path.stem) + offset
    if idx < 0:
        return None
    for ext in (path.suffix, ".png", ".jpg", ".jpeg"):
        cand = path.with_name(f"{idx:0{len(path.stem)}d}{ext}")
        if cand.is_file():
            return cand
    return None


def read_ground_truth(gt_path) -> tuple[torch.Tensor, torch.Tensor]:
    """A KITTI flow PNG as (flow [2, h, w] float32 px, valid [h, w] bool) on the CPU, at its own resolution."""
    flow, valid = read_flow_png(gt_path)
    return torch.from_numpy(flow).permute(2, 0, 1), torch.from_numpy(valid)


def ground_truth_samples(data_path, split=None, height: int = 192, width: int = 640,
                         max_samples: int | None = None) -> list[tuple]:
    """(target, {-1: prev, 1: next} or {1: next}, (gt flow, valid)) from KITTI-format flow ground truth.

    Images at (height, width) in [0, 1]; the ground truth at its own resolution (see ``flow.find_flow_pairs``).
    The previous frame is read when it exists next to the target (KITTI raw layout), for the direction cosine.
    """
    samples = []
    for target_path, source_path, gt_path in find_flow_pairs(data_path, split)[:max_samples]:
        truth = read_ground_truth(gt_path)
        sources = {1: load_image(source_path, height, width)[0]}
        prev = _neighbour(target_path, -1)
        if prev is not None:
            sources = {-1: load_image(prev, height, width)[0], **sources}
        samples.append((load_image(target_path, height, width)[0], sources, truth))
    return samples


def triplet_frames(item: Mapping) -> dict[int, torch.Tensor]:
    """{0, -1, 1: [3, H, W] float in [0, 1]} from a video dataset item (uint8 ``("color", f)`` at scale 0)."""
    return {f: item[("color", f)].float() / 255 for f in (0, -1, 1)}


def triplet_sample(frames: Mapping[int, torch.Tensor], truth) -> tuple:
    """A ``diagnose_samples`` sample (target, {-1: prev, 1: next}, truth) from ``triplet_frames``; ``truth`` is
    None, ground truth or ``reference_flow(frames[0], frames[1])``."""
    return frames[0], {-1: frames[-1], 1: frames[1]}, truth


def sample_indices(n: int, max_samples: int | None = None) -> list[int]:
    """The items ``video_samples`` takes from a dataset of ``n``: all, or ``max_samples`` evenly spaced."""
    if max_samples is None or max_samples >= n:
        return list(range(n))
    return [int(j) for j in np.linspace(0, n - 1, max_samples).round()]


def video_samples(dataset, max_samples: int | None = None, reference: bool = True,
                  progress: bool = False) -> list[tuple]:
    """``triplet_sample``s with the TV-L1 reference for t -> t+1 (or None) from an UncalibratedVideoDataset
    built with ``frame_idxs=(0, -1, 1)`` and ``is_train=False``; ``max_samples`` evenly spaced items
    (``sample_indices``). ``progress``: a progress bar (the reference takes about a second per image on a CPU)."""
    from tqdm import tqdm

    samples = []
    for i in tqdm(sample_indices(len(dataset), max_samples), desc="TV-L1 reference flow", unit="img",
                  disable=not progress):
        frames = triplet_frames(dataset[i])
        samples.append(triplet_sample(frames, reference_flow(frames[0], frames[1]) if reference else None))
    return samples


def diagnose_samples(encoder: nn.Module, motion_encoder: nn.Module, flow_decoder: nn.Module, samples: list,
                     truth_kind: str = "ground_truth", device: torch.device | str = "cpu",
                     batch_size: int = 8, progress: bool = False) -> dict:
    """``aggregate`` of ``diagnose`` over samples, in batches of samples with the same source frames
    (``progress``: a progress bar over the batches)."""
    from tqdm import tqdm

    results = []
    groups: dict[tuple, list] = {}
    for s in samples:
        groups.setdefault(tuple(sorted(s[1])), []).append(s)
    starts = [(group, i) for group in groups.values() for i in range(0, len(group), batch_size)]
    with tqdm(total=len(samples), desc="diagnostics", unit="img", disable=not progress) as bar:
        for group, i in starts:
            chunk = group[i:i + batch_size]
            target = torch.stack([c[0] for c in chunk]).to(device)
            sources = {f: torch.stack([c[1][f] for c in chunk]).to(device) for f in chunk[0][1]}
            results.append(diagnose(encoder, motion_encoder, flow_decoder, target, sources, [c[2] for c in chunk],
                                    truth_kind))
            bar.update(len(chunk))
    return aggregate(results)


# ------------------------------------------------------------------------------------------ ground-truth evaluation
def evaluate_flow(encoder: nn.Module, motion_encoder: nn.Module, flow_decoder: nn.Module,
                  pairs: Sequence[tuple], height: int, width: int,
                  device: torch.device | str = "cpu") -> dict:
    """EPE and Fl-all of t -> t+1 against ground-truth files, one ``diagnose`` (no probes) per pair.

    ``pairs``: (target image, source image, ground-truth PNG) as ``flow.find_flow_pairs`` gives them; images are
    read at (height, width), the prediction is resized to the ground truth's resolution (vectors rescaled);
    pairs without a valid pixel are skipped. Returns {"epe": mean over pairs of the per-image mean EPE (px),
    "fl_all": outliers over all valid pixels in PERCENT (as KITTI reports it; ``diagnose`` gives a fraction),
    "zero_epe": EPE of zero flow (a baseline), "num_pairs"}. Follows RAFT's validate_kitti. Why not
    ``diagnose_samples``: it holds every sample in memory and batches them, and runs the probes; this streams
    from disk one pair at a time (a rotating few at every training log step). The models' mode is the caller's.
    """
    epes, zero_epes, outliers, valid_px = [], [], 0.0, 0
    for target_path, source_path, gt_path in pairs:
        gt, valid = read_ground_truth(gt_path)
        if not valid.any():
            continue
        target = load_image(target_path, height, width).to(device)
        source = load_image(source_path, height, width).to(device)
        d = diagnose(encoder, motion_encoder, flow_decoder, target, {1: source}, [(gt, valid)], probes=False)
        epes.append(d["epe"])
        zero_epes.append(d["epe_zero_flow"])
        outliers += d["outliers"]
        valid_px += d["valid_pixels"]
    if not epes:
        raise InputError("flow evaluation found no valid ground-truth pixels")
    return {"epe": float(np.mean(epes)), "fl_all": 100.0 * outliers / valid_px,
            "zero_epe": float(np.mean(zero_epes)), "num_pairs": len(epes)}


def evaluate_flow_model(weights_folder: str | os.PathLike, data_path: str | os.PathLike, split_or_list=None,
                        device: torch.device | str = "cpu", height: int | None = None, width: int | None = None,
                        max_pairs: int | None = None) -> dict:
    """``evaluate_flow`` of a pretrain_flow.py weights folder on KITTI-format flow ground truth (see
    ``flow.find_flow_pairs``). The input size defaults to the one the model was trained at (encoder.pth metadata).
    """
    from monodepth2_geopt.model_loading import load_flow_model
    encoder, motion, decoder, meta = load_flow_model(weights_folder, device)
    height = height or int(meta.get("height", 192))
    width = width or int(meta.get("width", 640))
    pairs = find_flow_pairs(data_path, split_or_list)[:max_pairs]
    return evaluate_flow(encoder, motion, decoder, pairs, height, width, device)


def has_flow_ground_truth(folder) -> bool:
    """Whether ``folder`` holds KITTI-format flow ground truth (see ``flow.find_flow_pairs``)."""
    from pathlib import Path
    from monodepth2_geopt.kitti_layout import CAMERA_FOLDERS, FLOW_DIR
    root = Path(folder)
    return (any(p for cam in CAMERA_FOLDERS for p in root.rglob(f"{FLOW_DIR}/{cam}/*.png"))
            or any(root.rglob("flow_occ/*_10.png")))


def frames_dataset(folder, split=None, height: int = 192, width: int = 640, stride: int = 1):
    """Deterministic triplets (t, t-1, t+1) of a frame folder for diagnostics: ``split`` (a split file), else the
    folder's ``val_files.txt`` (extract_frames.py's held-out frames), else every frame with neighbours."""
    from pathlib import Path

    from monodepth2_geopt.datasets.video_dataset import UncalibratedVideoDataset, VideoDatasetError
    if split is None and (Path(folder) / "val_files.txt").is_file():
        split = Path(folder) / "val_files.txt"
    try:
        return UncalibratedVideoDataset(folder, split, height, width, (0, -1, 1), stride=stride, is_train=False)
    except VideoDatasetError as err:
        raise InputError(f"--flow_eval_path {folder}: {err}") from None


def ground_truth_path(target_path, height: int, width: int):
    """The KITTI-raw-layout flow ground truth t -> t+1 of a target frame (``<drive>/image_0X/data/<t>.*`` ->
    ``<drive>/flow/image_0X/<t>.png``), or None when absent or when the image's aspect ratio differs from
    height:width (the centre crop that resizing then needs would misalign it)."""
    from pathlib import Path

    from PIL import Image

    from monodepth2_geopt.kitti_layout import flow_png_of_image
    p = Path(target_path)
    gt = flow_png_of_image(p)
    if not gt.is_file():
        return None
    with Image.open(p) as img:
        w, h = img.size
    return None if abs(w * height - h * width) > max(w, h) else gt  # more than about a pixel of crop


def ground_truth_for(target_path, height: int, width: int):
    """``ground_truth_path``'s flow as ``read_ground_truth`` gives it, or None."""
    gt = ground_truth_path(target_path, height, width)
    return None if gt is None else read_ground_truth(gt)


def format_line(diag: Mapping) -> str:
    """The diagnostics on one log line."""
    def fmt(v):
        return "n/a" if v is None else f"{v:.3f}"
    truth = "GT" if diag.get("epe_kind") == "ground_truth" else "TV-L1 ref"
    return (f"EPE {fmt(diag.get('epe'))} px vs {truth} (zero flow {fmt(diag.get('epe_zero_flow'))}) | latent "
            f"sensitivity {fmt(diag.get('latent_sensitivity'))} | direction cosine {fmt(diag.get('direction_cosine'))}"
            f" | structure usage {fmt(diag.get('structure_usage'))}")
