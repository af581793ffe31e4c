"""Cityscapes in its own formats, for the generalisation benchmark (KITTI-trained model -> Cityscapes test set).

Layout under ``--data_path`` (the official archives unzipped side by side; ``<split>`` is ``test``):

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png    8-bit RGB, 2048x1024
    disparity/<split>/<city>/<city>_<seq>_<frame>_disparity.png        16-bit grey
    camera/<split>/<city>/<city>_<seq>_<frame>_camera.json             intrinsics and stereo baseline

``camera_trainvaltest/camera/...`` and ``disparity_trainvaltest/disparity/...`` (the archives unzipped into folders
named after them, as ManyDepth expects) are found too. Split lines are ``<city> <city>_<seq>_<frame>``, as in
ManyDepth's ``splits/cityscapes/test_files.txt``.

Conventions where they bite:
- Disparity PNG (Cityscapes' README): ``disparity = (value - 1) / 256`` pixels where ``value > 0``; 0 = no
  measurement. A value of 1 decodes to disparity 0 (infinitely far): no usable depth either.
- Depth in metres = ``extrinsic.baseline`` (m) x ``intrinsic.fx`` (px) / disparity (px); 0 where there is none.
- The protocol is ManyDepth's (Watson et al., CVPR 2021; nianticlabs/manydepth, manydepth/evaluate_depth.py and
  manydepth/datasets/cityscapes_evaldataset.py): the bottom quarter of every image shows the ego car, so the
  network sees the top 3/4 (1024 -> 768 rows, then resized) and the ground truth is cut the same way; the metrics
  are then computed on rows 256:768 and columns 192:1856 of the 2048x1024 frame (their ``gt_depth[256:,
  192:1856]`` after the cut; the "middle 50 %" of their README), 1e-3 < gt < 80 m, median scaling. The crop is
  written here as fractions of the full frame so that it applies to any size; at 2048x1024 it is exactly theirs.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from monodepth2_geopt.errors import InputError
from monodepth2_geopt.kitti_layout import pil_loader, resize_image, to_uint8_tensor

CITYSCAPES_SIZE = (1024, 2048)  # (height, width) of every Cityscapes frame
DISPARITY_OFFSET = 1.0  # value 0 = invalid, value v > 0 = (v - 1) / 256 px
DISPARITY_SCALE = 256.0
EGO_KEEP_FRACTION = 0.75  # the top 3/4 of each frame is kept (the bottom quarter shows the ego car)
# Evaluated region as fractions of the full frame: top row, left and right columns (the bottom is the ego cut).
# ManyDepth: rows 256: (of 768 kept) and columns 192:1856 at 2048x1024 -> 256/1024, 192/2048, 1856/2048.
EVAL_CROP_FRACTIONS = (0.25, 0.09375, 0.90625)
COMPONENTS = {"image": ("leftImg8bit", "leftImg8bit"), "disparity": ("disparity", "disparity"),
              "camera": ("camera", "camera")}  # folder, file-name suffix
SUFFIX_EXT = {"image": ".png", "disparity": ".png", "camera": ".json"}


# ------------------------------------------------------------------------------------------ paths and lines
def parse_line(line: str, where: str = "split file") -> tuple[str, str]:
    """``"<city> <city>_<seq>_<frame>"`` -> (city, frame name); one-line InputError otherwise."""
    parts = line.split()
    if len(parts) != 2 or not parts[1].startswith(parts[0] + "_"):
        raise InputError(f"{where}: line {line!r} is not '<city> <city>_<seq>_<frame>' (Cityscapes split lines, "
                         "as ManyDepth's splits/cityscapes/test_files.txt)")
    return parts[0], parts[1]


def component_dir(root: str | os.PathLike, component: str, split: str = "test") -> Path:
    """``<root>/<folder>/<split>``, or ``<root>/<folder>_trainvaltest/<folder>/<split>`` when only that exists."""
    folder = COMPONENTS[component][0]
    plain = Path(root) / folder / split
    nested = Path(root) / f"{folder}_trainvaltest" / folder / split
    return nested if not plain.is_dir() and nested.is_dir() else plain


def frame_file(root: str | os.PathLike, component: str, city: str, frame: str, split: str = "test") -> Path:
    """The image, disparity PNG or camera JSON of one frame."""
    suffix = COMPONENTS[component][1]
    return component_dir(root, component, split) / city / f"{frame}_{suffix}{SUFFIX_EXT[component]}"


def list_frames(root: str | os.PathLike, split: str = "test") -> list[str]:
    """Split lines for every ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` under ``root``, sorted."""
    image_dir = component_dir(root, "image", split)
    if not image_dir.is_dir():
        raise InputError(f"{image_dir} does not exist: --data_path must be the Cityscapes root holding "
                         f"leftImg8bit/{split}/<city>/ (from leftImg8bit_trainvaltest.zip)")
    suffix = "_" + COMPONENTS["image"][1] + ".png"
    lines = [f"{p.parent.name} {p.name[:-len(suffix)]}" for p in image_dir.glob(f"*/*{suffix}")]
    if not lines:
        raise InputError(f"no *{suffix} images in the city folders of {image_dir}")
    return sorted(lines)


def write_test_list(root: str | os.PathLike, out_dir: str | os.PathLike, overwrite: bool = False) -> list[str]:
    """``<out_dir>/test_files.txt`` listing every test frame under ``root`` (``list_frames``); refused if it exists
    unless ``overwrite``. Sorted by city and name, unlike ManyDepth's list; the metrics, means over frames, do not
    depend on the order (``--ext_disp_to_eval`` predictions must follow the list they were made from)."""
    from monodepth2_geopt.kitti_layout import write_split_file
    from monodepth2_geopt.splits import refuse_existing

    path = Path(out_dir) / "test_files.txt"
    refuse_existing([path], overwrite)
    lines = list_frames(root, "test")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_split_file(path, lines)
    return lines


def missing_files(root: str | os.PathLike, lines: Iterable[str], components: Sequence[str],
                  split: str = "test") -> list[Path]:
    """The files of ``components`` that the split's lines need and that do not exist."""
    missing = []
    for line in lines:
        city, frame = parse_line(line)
        missing += [p for p in (frame_file(root, c, city, frame, split) for c in components) if not p.is_file()]
    return missing


# ------------------------------------------------------------------------------------------ ground truth
def read_camera(path: str | os.PathLike) -> tuple[float, float]:
    """(baseline in metres, fx in pixels) of a Cityscapes camera JSON (``extrinsic.baseline``, ``intrinsic.fx``)."""
    try:
        camera = json.loads(Path(path).read_text())
        baseline, fx = float(camera["extrinsic"]["baseline"]), float(camera["intrinsic"]["fx"])
    except FileNotFoundError:
        raise InputError(f"camera file {path} does not exist (camera_trainvaltest.zip, unzipped into --data_path)") \
            from None
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path} is not a Cityscapes camera JSON with extrinsic.baseline and intrinsic.fx "
                         f"({type(err).__name__}: {err})") from None
    if not (baseline > 0 and fx > 0 and math.isfinite(baseline) and math.isfinite(fx)):
        raise InputError(f"{path}: baseline {baseline} m and fx {fx} px must be positive")
    return baseline, fx


def decode_disparity(values: np.ndarray) -> np.ndarray:
    """uint16 PNG values -> float32 disparity in pixels; 0 where the value is 0 (no measurement)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values > 0, (values - DISPARITY_OFFSET) / DISPARITY_SCALE, 0.0).astype(np.float32)


def read_disparity_png(path: str | os.PathLike) -> np.ndarray:
    """A Cityscapes disparity PNG as float32 [H, W] pixels (``decode_disparity``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"disparity file {path} does not exist (disparity_trainvaltest.zip, unzipped into "
                         "--data_path)")
    with Image.open(path) as image:
        if image.mode not in ("I;16", "I;16B", "I"):
            raise InputError(f"{path} is not a 16-bit disparity PNG (PIL mode {image.mode!r})")
        values = np.asarray(image)
    return decode_disparity(values)


def disparity_to_depth(disparity: np.ndarray, baseline: float, fx: float) -> np.ndarray:
    """Depth (m) = baseline (m) x fx (px) / disparity (px), float32; 0 where disparity <= 0 (no ground truth)."""
    disparity = np.asarray(disparity, dtype=np.float64)
    valid = disparity > 0
    depth = np.zeros_like(disparity)
    depth[valid] = baseline * fx / disparity[valid]
    return depth.astype(np.float32)


def gt_depth(root: str | os.PathLike, city: str, frame: str, split: str = "test") -> np.ndarray:
    """Full-frame float32 [H, W] ground-truth depth in metres of one frame (0 = none)."""
    baseline, fx = read_camera(frame_file(root, "camera", city, frame, split))
    return disparity_to_depth(read_disparity_png(frame_file(root, "disparity", city, frame, split)), baseline, fx)


# ------------------------------------------------------------------------------------------ crops
def kept_rows(height: int) -> int:
    """Rows kept above the ego car: ``height * 3 // 4`` (768 of 1024). ManyDepth cuts the image this way and its
    ground truth with ``round(0.75 * h)``; the two agree for every height divisible by 4, Cityscapes' included."""
    return height * 3 // 4


def crop_ego_car(array: np.ndarray) -> np.ndarray:
    """The rows of an [H, W] ground-truth map above the ego car (``kept_rows``)."""
    return array[:kept_rows(array.shape[0])]


def eval_crop_slices(full_height: int, full_width: int) -> tuple[slice, slice]:
    """Rows and columns evaluated, in the frame's coordinates (rows 256:768, columns 192:1856 at 1024x2048)."""
    top, left, right = EVAL_CROP_FRACTIONS
    return (slice(int(round(top * full_height)), kept_rows(full_height)),
            slice(int(round(left * full_width)), int(round(right * full_width))))


# ------------------------------------------------------------------------------------------ network input
class CityscapesEvalImages(Dataset):
    """Test images as the network sees them: the top 3/4 (ego car cut off), resized with LANCZOS (Monodepth2's
    resampling) to (height, width). Items: ``{("color", 0): uint8 [3, height, width], "index": i}``, the keys
    ``evaluation.predict_scaled_disparities`` reads."""

    def __init__(self, root: str | os.PathLike, lines: Sequence[str], height: int, width: int, split: str = "test"):
        self.root, self.height, self.width, self.split = Path(root), height, width, split
        self.frames = [parse_line(line) for line in lines]

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict:
        city, frame = self.frames[index]
        image = pil_loader(frame_file(self.root, "image", city, frame, self.split))
        w, h = image.size
        image = image.crop((0, 0, w, kept_rows(h)))
        return {("color", 0): to_uint8_tensor(resize_image(image, self.width, self.height)),
                "index": torch.tensor(index)}


__all__ = ["CITYSCAPES_SIZE", "EGO_KEEP_FRACTION", "EVAL_CROP_FRACTIONS", "parse_line", "component_dir",
           "frame_file", "list_frames", "write_test_list", "missing_files", "read_camera", "decode_disparity",
           "read_disparity_png",
           "disparity_to_depth", "gt_depth", "kept_rows", "crop_ego_car", "eval_crop_slices",
           "CityscapesEvalImages"]
