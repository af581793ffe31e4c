"""KITTI depth evaluation (Monodepth2's ``evaluate_depth.py`` protocol) as one importable function.

``evaluate(opt)`` predicts (or loads) disparities for a split's ``test_files.txt``, evaluates them against
``<split>/gt_depths.npz`` and returns the metrics as a dict, so training and ``evaluate_depth.py`` share it.

Protocols (keep them labelled when reporting numbers):
- ``--eval_mono`` (Monodepth2): each image's depth is multiplied by median(gt) / median(pred).
- ``--eval_stereo`` (Monodepth2): depth x STEREO_SCALE_FACTOR (5.4), no per-image scaling.
- ``--eval_mono --align lsqr`` (NimbleD's eigen_benchmark protocol): per-image least-squares scale and
  shift of the prediction in disparity space.
Masks: the eigen split uses the Garg/Eigen crop and MIN_DEPTH < gt < MAX_DEPTH; every other split uses
every pixel with MIN_DEPTH < gt < MAX_DEPTH (no crop). Metrics are averaged per image.

Which protocol a split folder gets follows its name: ``eigen``, ``eigen_benchmark``, ``benchmark``
(KITTI depth-benchmark test set: writes 1216x352 uint16 PNGs instead of evaluating), ``odom_9``/``odom_10``
(prediction only: KITTI odometry has no depth ground truth), ``cityscapes`` (the generalisation benchmark:
ManyDepth's protocol, ground truth read from Cityscapes' disparity PNGs and camera files; see cityscapes.py).
Any other folder is a custom split.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from monodepth2_geopt.datasets import DATASETS, KITTIOdomDataset
from monodepth2_geopt.datasets.kitti_dataset import KITTIDataset
from monodepth2_geopt import cityscapes, metrics
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.geometry import disp_to_depth
from monodepth2_geopt.gt_depth import load_gt_depths
from monodepth2_geopt.fileio import atomic_path
from monodepth2_geopt.splits import REPO_ROOT, readlines, refuse_existing, resolve_split_dir

EVAL_BATCH_SIZE = 16  # Monodepth2 evaluates in batches of 16
EDGE_RAMP = 0.05  # Monodepth v1 post-processing: the outer 5% on each side come from one prediction
BENCHMARK_SIZE = (352, 1216)  # (height, width) of KITTI depth-benchmark submissions
NAMED_SPLITS = ("eigen", "eigen_benchmark", "benchmark", "odom_9", "odom_10", "cityscapes")
CITYSCAPES_LIST_COMMAND = ("python make_split.py --cityscapes --data_path <cityscapes root> --out_dir "
                           "splits/cityscapes")

Log = Callable[[str], None]


@dataclass(frozen=True)
class EvalSplit:
    """Where a split's files are and which protocol it gets."""

    name: str  # protocol name: one of NAMED_SPLITS, or the folder name of a custom split
    split_dir: Path
    test_file: Path
    gt_path: Path
    kind: str  # "raw" (KITTI raw layout), "odom", "benchmark" or "cityscapes"

    @property
    def crop(self) -> str | None:
        return "eigen" if self.name == "eigen" else None


def resolve_eval_split(eval_split: str, repo_root: str | Path = REPO_ROOT) -> EvalSplit:
    """Resolve ``--eval_split`` (a published name or a split folder path) to its files and protocol."""
    if eval_split in ("odom_9", "odom_10"):
        split_dir = resolve_split_dir("odom", repo_root)
        sequence = int(eval_split.split("_")[1])
        return EvalSplit(eval_split, split_dir, split_dir / f"test_files_{sequence:02d}.txt",
                         split_dir / f"gt_depths_{sequence:02d}.npz", "odom")
    if str(eval_split) == "cityscapes" and not (Path(repo_root) / "splits" / "cityscapes").is_dir():
        raise InputError(f"--eval_split cityscapes needs {Path(repo_root) / 'splits' / 'cityscapes' / 'test_files.txt'}"
                         f": list the 1525 test images with `{CITYSCAPES_LIST_COMMAND}` (or copy ManyDepth's "
                         "splits/cityscapes/test_files.txt there)")
    split_dir = resolve_split_dir(eval_split, repo_root)
    name = split_dir.name if split_dir.name in NAMED_SPLITS else str(eval_split)
    kind = "odom" if name.startswith("odom_") else name if name in ("benchmark", "cityscapes") else "raw"
    return EvalSplit(name, split_dir, split_dir / "test_files.txt", split_dir / "gt_depths.npz", kind)


def split_label(split: EvalSplit) -> str:
    """A file-name-safe name for output files (``metrics_<label>.json``)."""
    return split.name if split.name in NAMED_SPLITS else split.split_dir.name


# ------------------------------------------------------------------------------------------------------
# Scaling protocol


@dataclass(frozen=True)
class Protocol:
    scale: float  # multiplies every predicted depth before alignment
    align: str  # "median", "lsqr" or "none" (see metrics.evaluate_depth_map)
    label: str


def scaling_protocol(opt) -> Protocol:
    """Scale factor and alignment from --eval_mono/--eval_stereo/--align/--disable_median_scaling/..."""
    if opt.eval_mono == opt.eval_stereo:
        raise InputError("choose exactly one of --eval_mono (median-scaled, for models trained with "
                         "monocular video) or --eval_stereo (x5.4, for models trained with stereo)")
    align = getattr(opt, "align", "median")
    factor = float(opt.pred_depth_scale_factor)
    if opt.eval_stereo:
        if align == "lsqr":
            raise InputError("--align lsqr is a monocular protocol; use it with --eval_mono, not --eval_stereo")
        scale = metrics.STEREO_SCALE_FACTOR * factor
        return Protocol(scale, "none", f"stereo: depth x {scale:g}, no per-image scaling")
    if opt.disable_median_scaling:
        if align == "lsqr":
            raise InputError("--align lsqr and --disable_median_scaling contradict each other; drop one")
        return Protocol(factor, "none", f"mono: depth x {factor:g}, no per-image scaling")
    if align == "lsqr":
        return Protocol(factor, "lsqr", "mono, --align lsqr: per-image least-squares scale+shift in "
                                        "disparity (NimbleD's eigen_benchmark protocol, not Monodepth2's)")
    return Protocol(factor, "median", "mono: per-image median scaling (Monodepth2 protocol)")


# ------------------------------------------------------------------------------------------------------
# Prediction


def post_process_disparity(disp: torch.Tensor, disp_flipped: torch.Tensor) -> torch.Tensor:
    """Monodepth v1 flip post-processing (Godard et al. 2017).

    Args: disp [..., H, W] predicted on the image, disp_flipped [..., H, W] predicted on the mirrored image
    and mirrored back. The leftmost 5% of columns come from ``disp_flipped`` and the rightmost 5% from
    ``disp`` (each side's disocclusion artefacts sit on opposite edges), linearly ramping to their mean.
    """
    width = disp.shape[-1]
    x = torch.linspace(0, 1, width, device=disp.device, dtype=disp.dtype)
    left = 1.0 - torch.clamp((x - EDGE_RAMP) / EDGE_RAMP, 0, 1)  # 1 over the first 5%, 0 from 10% on
    right = torch.flip(left, dims=[0])
    mean = 0.5 * (disp + disp_flipped)
    return right * disp + left * disp_flipped + (1.0 - left - right) * mean


@torch.no_grad()
def predict_scaled_disparities(encoder, decoder, loader: DataLoader, device: torch.device, min_depth: float,
                               max_depth: float, post_process: bool = False) -> np.ndarray:
    """Scaled disparities [N, H, W] (float32, network resolution) for every ("color", 0) in the loader."""
    out = []
    for batch in loader:
        images = batch[("color", 0)].to(device).float().div_(255.0)  # [B, 3, H, W]
        if post_process:
            images = torch.cat([images, torch.flip(images, dims=[3])], 0)
        disp = decoder(encoder(images))[("disp", 0)]
        scaled, _ = disp_to_depth(disp, min_depth, max_depth)
        scaled = scaled[:, 0].float()  # [B(x2), H, W]
        if post_process:
            n = scaled.shape[0] // 2
            scaled = post_process_disparity(scaled[:n], torch.flip(scaled[n:], dims=[2]))
        out.append(scaled.cpu().numpy())
    return np.concatenate(out, 0)


def resize_disparity(disp: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of one [h, w] disparity map (half-pixel centres, as cv2.resize); identity if same size."""
    if disp.shape == (height, width):
        return disp.astype(np.float32, copy=False)
    t = torch.from_numpy(np.ascontiguousarray(disp, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


class KITTIBenchmarkTestDataset(KITTIDataset):
    """KITTI depth-benchmark test images: ``<data_path>/<folder>/%010d.<ext>`` for the 2-token lines ``image 0``.

    With the official download, ``--data_path`` is ``depth_selection/test_depth_prediction_anonymous`` (its
    images are 1216x352 PNGs, so pass ``--png``). Monodepth2 had no such class, so its benchmark path crashed.
    """

    def get_image_path(self, folder, frame_index, side):
        return os.path.join(self.data_path, folder, f"{frame_index:010d}{self.img_ext}")


def _eval_dataset(split: EvalSplit, opt, filenames: list[str], height: int, width: int):
    if split.kind == "cityscapes":
        return cityscapes.CityscapesEvalImages(os.path.expanduser(opt.data_path), filenames, height, width)
    if split.kind == "benchmark":
        cls = KITTIBenchmarkTestDataset
    elif split.kind == "odom":
        cls = KITTIOdomDataset
    elif split.name in NAMED_SPLITS:
        cls = DATASETS["kitti"]
    else:
        cls = DATASETS.get(getattr(opt, "dataset", "kitti"), DATASETS["kitti"])
    ext = ".png" if opt.png else ".jpg"
    return cls(os.path.expanduser(opt.data_path), filenames, height, width, [0], 4, is_train=False, img_ext=ext)


def predict_split(opt, split: EvalSplit, log: Log = print) -> tuple[np.ndarray, dict]:
    """Load the weights folder's depth model and predict every line of the split's test file."""
    from monodepth2_geopt.model_loading import load_depth_model
    from monodepth2_geopt.utils import pick_device

    if not opt.load_weights_folder:
        raise InputError("pass --load_weights_folder <log_dir>/<model_name>/models/weights_<epoch> "
                         "(or --ext_disp_to_eval <disparities.npy>)")
    device = pick_device(opt.no_cuda)
    folder = os.path.expanduser(opt.load_weights_folder)
    model = load_depth_model(folder, device)
    meta = model.meta
    height, width = meta.get("height", opt.height), meta.get("width", opt.width)
    filenames = [line for line in readlines(split.test_file) if line.strip()]
    dataset = _eval_dataset(split, opt, filenames, height, width)
    loader = DataLoader(dataset, EVAL_BATCH_SIZE, shuffle=False, num_workers=opt.num_workers,
                        pin_memory=device.type == "cuda", drop_last=False)
    log(f"-> Loaded ResNet-{meta['num_layers']} weights from {folder}")
    log(f"-> Computing predictions with size {width}x{height} on {device}"
        + (" with flip post-processing" if opt.post_process else ""))
    disps = predict_scaled_disparities(model.encoder, model.decoder, loader, device, opt.min_depth, opt.max_depth,
                                       opt.post_process)
    return disps, meta


def load_external_disparities(opt, log: Log = print) -> np.ndarray | list:
    """``--ext_disp_to_eval``: an [N, H, W] float array of disparities (never unpickled)."""
    path = Path(os.path.expanduser(opt.ext_disp_to_eval))
    if not path.is_file():
        raise FileNotFoundError(f"--ext_disp_to_eval file {path} does not exist")
    log(f"-> Loading predictions from {path}")
    try:
        disps = np.load(path, allow_pickle=False)  # never unpickle a predictions file: it could run code
    except ValueError as err:
        raise InputError(f"--ext_disp_to_eval {path}: cannot be read without unpickling ({err}); save the "
                         "predictions as one float array [N, H, W] (np.save), which loads without pickle") from None
    if disps.ndim != 3:
        raise InputError(f"{path} holds an array of shape {disps.shape}; expected [N, H, W] disparities")
    if opt.eval_eigen_to_benchmark:
        ids_path = resolve_split_dir("benchmark") / "eigen_to_benchmark_ids.npy"
        if not ids_path.is_file():
            raise FileNotFoundError(f"{ids_path} is missing; get it with `python download_splits.py benchmark`")
        ids = np.load(ids_path)
        if len(disps) <= int(ids.max()):
            raise InputError(f"--eval_eigen_to_benchmark needs the 697 eigen predictions, but {path} holds "
                             f"{len(disps)}")
        disps = disps[ids]
    return disps


# ------------------------------------------------------------------------------------------------------
# Outputs


def output_dir(opt) -> Path | None:
    """--eval_out_dir if given, else the weights folder (None when evaluating external disparities)."""
    if opt.eval_out_dir:
        return Path(os.path.expanduser(opt.eval_out_dir))
    if opt.load_weights_folder and not opt.ext_disp_to_eval:
        return Path(os.path.expanduser(opt.load_weights_folder))
    return None


def write_disparity_images(disps, folder: Path) -> None:
    """Magma colour maps of each prediction as ``<folder>/%06d.jpeg``."""
    from monodepth2_geopt.visualize import colormap_disparity

    folder.mkdir(parents=True, exist_ok=True)
    for i, disp in enumerate(disps):
        Image.fromarray(colormap_disparity(np.asarray(disp, dtype=np.float32))).save(folder / f"{i:06d}.jpeg")


def write_benchmark_predictions(disps, folder: Path, scale: float) -> Path:
    """KITTI depth-benchmark submission: ``%010d.png`` uint16 depth*256 at 1216x352."""
    from monodepth2_geopt.kitti_layout import write_depth_png

    folder.mkdir(parents=True, exist_ok=True)
    for i, disp in enumerate(disps):
        disp = resize_disparity(np.asarray(disp, dtype=np.float32), *BENCHMARK_SIZE)
        depth = scale / np.maximum(disp, 1e-8)
        write_depth_png(folder / f"{i:010d}.png", depth)
    return folder


# ------------------------------------------------------------------------------------------------------
# Evaluation


def evaluate_disparities(pred_disps, gt_depths: list[np.ndarray], split: EvalSplit,
                         protocol: Protocol) -> tuple[list[dict], list[float]]:
    """Per-image errors and alignment ratios of scaled disparities against GT depth maps."""
    if len(pred_disps) != len(gt_depths):
        raise InputError(f"{len(pred_disps)} predictions but {len(gt_depths)} ground-truth depth maps in "
                         f"{split.gt_path}; the predictions must follow {split.test_file} line by line")
    # Monodepth2's masks: eigen keeps MIN_DEPTH < gt < MAX_DEPTH inside the Garg crop, other splits every gt > 0.
    gt_range = metrics.split_eval_settings("eigen" if split.crop == "eigen" else "other")["gt_range"]
    errors, ratios = [], []
    for i, (disp, gt) in enumerate(zip(pred_disps, gt_depths)):
        disp = resize_disparity(np.asarray(disp, dtype=np.float32), *gt.shape)
        with np.errstate(divide="ignore"):
            pred_depth = 1.0 / disp
        try:
            err, ratio = metrics.evaluate_depth_map(
                gt, pred_depth, crop=split.crop, align=protocol.align, scale=protocol.scale,
                gt_range=gt_range)
        except ValueError as exc:
            raise InputError(f"image {i} of {split.test_file}: {exc}") from None
        errors.append(err)
        ratios.append(ratio)
    return errors, ratios


def evaluate_cityscapes_disparities(pred_disps, lines: list[str], data_path: str | Path,
                                    protocol: Protocol) -> tuple[list[dict], list[float]]:
    """Per-image errors and alignment ratios on Cityscapes (ManyDepth's protocol, cityscapes.py).

    Each frame's ground truth (full frame, from its disparity PNG and camera JSON) loses the ego car's rows; the
    prediction is resized (bilinear) to what is left; both are cut to the evaluated region, where
    MIN_DEPTH < gt < MAX_DEPTH counts. Ground truth is read one frame at a time (1525 frames of 2048x1024).
    """
    if len(pred_disps) != len(lines):
        raise InputError(f"{len(pred_disps)} predictions for {len(lines)} Cityscapes test lines; the predictions "
                         "must follow the split file line by line")
    errors, ratios = [], []
    for i, (disp, line) in enumerate(zip(pred_disps, lines)):
        city, frame = cityscapes.parse_line(line)
        full = cityscapes.gt_depth(data_path, city, frame)
        gt = cityscapes.crop_ego_car(full)
        disp = resize_disparity(np.asarray(disp, dtype=np.float32), *gt.shape)
        with np.errstate(divide="ignore"):
            pred_depth = 1.0 / disp
        rows, cols = cityscapes.eval_crop_slices(*full.shape)
        try:
            err, ratio = metrics.evaluate_depth_map(
                gt[rows, cols], pred_depth[rows, cols], crop=None, align=protocol.align, scale=protocol.scale,
                gt_range=(metrics.MIN_DEPTH, metrics.MAX_DEPTH))
        except ValueError as exc:
            raise InputError(f"Cityscapes frame {line!r} (line {i + 1}): {exc}") from None
        errors.append(err)
        ratios.append(ratio)
    return errors, ratios


def _check_cityscapes_files(opt, split: EvalSplit, evaluating: bool) -> list[str]:
    """The split's lines, after checking that every file the run needs exists (all reported at once)."""
    lines = [line for line in readlines(split.test_file) if line.strip()]
    for i, line in enumerate(lines):
        cityscapes.parse_line(line, f"{split.test_file} line {i + 1}")
    needed = (["image"] if not opt.ext_disp_to_eval else []) + (["disparity", "camera"] if evaluating else [])
    missing = cityscapes.missing_files(os.path.expanduser(opt.data_path), lines, needed)
    if missing:
        raise InputError(f"{len(missing)} Cityscapes file(s) that {split.test_file} needs are missing, e.g. "
                         f"{missing[0]}: --data_path must hold leftImg8bit/, disparity/ and camera/ (README, "
                         "'Generalisation: Cityscapes')")
    return lines


def evaluate(opt, log: Log = print) -> dict:
    """Evaluate depth as Monodepth2's evaluate_depth.py does; returns metrics and scale-ratio statistics.

    The returned dict holds the 7 metrics (abs_rel ... a3), ``ratio_median``/``ratio_std`` (per-image
    alignment ratios; std of ratio / median), ``num_images``, ``split``, ``protocol`` and the paths written.
    With ``--no_eval`` or the benchmark split it only predicts (and writes) and returns the paths.
    """
    protocol = scaling_protocol(opt)
    split = resolve_eval_split(opt.eval_split)
    evaluating = not opt.no_eval and split.kind != "benchmark"
    if evaluating and split.kind == "odom":
        raise InputError(f"{split.name} has no depth ground truth (KITTI odometry): use --no_eval "
                         "--save_pred_disps to export disparities, or evaluate_pose.py for trajectories")
    if split.kind == "cityscapes":  # ground truth is read per frame from the dataset itself
        cityscapes_lines, gt_depths = _check_cityscapes_files(opt, split, evaluating), None
        if opt.eval_stereo:
            log("   note: x5.4 is KITTI's stereo scale; Cityscapes' published protocol is --eval_mono (median scaling)")
    else:
        gt_depths = (load_gt_depths(split.gt_path, split=split.name, allow_pickle=opt.allow_pickle,
                                    split_file=split.test_file) if evaluating else None)
    out_dir = output_dir(opt)
    label = split_label(split)
    if opt.save_pred_disps:  # refuse before predicting, not after
        if out_dir is None:
            raise InputError("--save_pred_disps with --ext_disp_to_eval needs --eval_out_dir")
        refuse_existing([out_dir / f"disps_{label}_split.npy"], getattr(opt, "overwrite", False))

    meta = {}
    if opt.ext_disp_to_eval:
        pred_disps = load_external_disparities(opt, log)
    else:
        pred_disps, meta = predict_split(opt, split, log)
    if meta and opt.eval_mono and meta.get("use_stereo"):
        log("   note: this model was trained with stereo; --eval_stereo gives metric depth without scaling")

    result: dict = {"split": split.name, "num_images": len(pred_disps), "protocol": protocol.label}
    if opt.save_pred_disps:
        path = out_dir / f"disps_{label}_split.npy"
        with atomic_path(path) as tmp:
            np.save(tmp, pred_disps)
        log(f"-> Saved predicted disparities to {path}")
        result["pred_disps_path"] = str(path)
    if opt.eval_out_dir:
        write_disparity_images(pred_disps, out_dir / f"disp_images_{label}")
        result["disp_images_dir"] = str(out_dir / f"disp_images_{label}")

    if split.kind == "benchmark":
        if out_dir is None:
            raise InputError("the benchmark split writes PNG predictions: pass --eval_out_dir")
        scale = metrics.STEREO_SCALE_FACTOR * float(opt.pred_depth_scale_factor)
        if opt.eval_mono:
            log("   note: benchmark predictions always use the stereo scale (x5.4), as in Monodepth2")
        folder = write_benchmark_predictions(pred_disps, out_dir / "benchmark_predictions", scale)
        log(f"-> Wrote {len(pred_disps)} benchmark predictions (depth x {scale:g}, uint16 x256, "
            f"{BENCHMARK_SIZE[1]}x{BENCHMARK_SIZE[0]}) to {folder}; the benchmark has no local ground truth")
        result["benchmark_predictions_dir"] = str(folder)
        return result
    if not evaluating:
        log("-> Evaluation disabled (--no_eval); done.")
        return result

    log(f"-> Evaluating {len(pred_disps)} images of split {split_label(split)}")
    log(f"   protocol: {protocol.label}")
    if split.kind == "cityscapes":
        log("   Cityscapes (ManyDepth's protocol): ego car cut off (bottom 1/4), rows 1/4..3/4 and columns "
            "3/32..29/32 of the frame, 1e-3 < gt < 80 m")
        errors, ratios = evaluate_cityscapes_disparities(pred_disps, cityscapes_lines,
                                                         os.path.expanduser(opt.data_path), protocol)
    else:
        errors, ratios = evaluate_disparities(pred_disps, gt_depths, split, protocol)
    mean_errors = metrics.aggregate(errors)
    ratio_values = np.asarray(ratios, dtype=np.float64)
    ratio_median = float(np.median(ratio_values))
    result.update(mean_errors)
    result["ratio_median"] = ratio_median
    result["ratio_std"] = float(np.std(ratio_values / ratio_median)) if ratio_median else float("nan")
    if protocol.align != "none":
        summary = metrics.format_ratio_summary(ratios)
        log(summary if protocol.align == "median" else summary.replace("Scaling ratios", "lsqr disp scales"))
    log("\n" + metrics.format_metrics_table(mean_errors))

    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"metrics_{label}.json"
        settings = {"weights_folder": opt.load_weights_folder, "ext_disp_to_eval": opt.ext_disp_to_eval,
                    "post_process": bool(opt.post_process), "scale": protocol.scale, "align": protocol.align,
                    "eval_split": str(opt.eval_split)}
        path.write_text(json.dumps(dict(result, settings=settings), indent=2) + "\n")
        result["metrics_path"] = str(path)
        log(f"-> Saved metrics to {path}")
    else:
        log("   (pass --eval_out_dir to save the metrics as JSON)")
    log("\n-> Done!")
    return result


__all__ = ["EVAL_BATCH_SIZE", "BENCHMARK_SIZE", "NAMED_SPLITS", "EvalSplit", "KITTIBenchmarkTestDataset",
           "Protocol", "resolve_eval_split", "scaling_protocol", "post_process_disparity",
           "predict_scaled_disparities", "resize_disparity", "predict_split", "load_external_disparities",
           "write_benchmark_predictions", "evaluate_disparities", "evaluate_cityscapes_disparities", "evaluate"]
