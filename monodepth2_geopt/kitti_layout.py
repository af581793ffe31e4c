"""The KITTI layout, written once: camera sides, the paths of a frame's files, split lines, the 16-bit depth PNG
codec and the image loader. Every reader (datasets, ground-truth export, evaluation, flow, image cache) and the
synthetic world's writer go through these functions, so what is written is what is read.

Conventions
-----------
* **Sides** (the third token of a split line): ``l`` / ``2`` = left colour camera = ``image_02``, ``r`` / ``3`` =
  right colour camera = ``image_03``. A line without a side (``<folder> <frame_index>``, the benchmark's and
  extract_frames.py's lines) means the left camera here; ``KITTIDataset`` refuses it, as Monodepth2 does.
* **KITTI raw** (``data_path`` = the folder holding the ``<date>`` folders, ``folder`` = ``<date>/<drive>``)::

      <data_path>/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt         calibration, one per date
      <folder>/image_0{2,3}/data/%010d.<ext>                                 colour frames
      <folder>/velodyne_points/data/%010d.bin                                float32 N x 4 scan
      <folder>/proj_depth/groundtruth/image_0{2,3}/%010d.png                 depth benchmark GT (codec below)
      <folder>/flow/image_0{2,3}/%010d.png                                   KITTI flow PNG t -> t+1 (flow_io)

  KITTI odometry: ``<data_path>/sequences/%02d/image_{2,3}/%06d.<ext>``.
* **Split line** (Monodepth2): ``<folder> <frame_index> [<side>]``, whitespace-separated, so a folder must not
  contain whitespace; a split file is these lines, each ending in ``\\n``.
* **Depth PNG** (KITTI depth benchmark): uint16 = ``round(depth_m * 256)``, 0 = no ground truth; so 1/256 m
  steps and at most 65535 / 256 = 255.996 m.
* **Images**: read as RGB, resized with Pillow's LANCZOS (Monodepth2's ``resize``) only when their size differs,
  handed on as uint8 ``[3, H, W]`` tensors (float conversion happens on the device).

Paths are returned as ``str`` (``os.path.join``), as Monodepth2's ``get_image_path`` does.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from monodepth2_geopt.errors import InputError
from monodepth2_geopt.fileio import atomic_write_text
from monodepth2_geopt.flow_io import write_png

# ---------------------------------------------------------------------------------------------- sides
SIDES = ("l", "r", "2", "3")
CAMERA_OF_SIDE = {"l": 2, "2": 2, "r": 3, "3": 3}  # Monodepth2's KITTIDataset.side_map
OTHER_SIDE = {"l": "r", "r": "l", "2": "3", "3": "2"}
CAMERA_FOLDERS = ("image_02", "image_03")  # left, right
IMAGE_DATA = "data"  # KITTI raw keeps a camera's frames in image_0X/data/
FLOW_DIR = "flow"
DEPTH_PNG_DIR = ("proj_depth", "groundtruth")
VELODYNE_DIR = ("velodyne_points", "data")
CAM_TO_CAM = "calib_cam_to_cam.txt"  # in calib_dir: P_rect_0X, R_rect_00, S_rect_0X
VELO_TO_CAM = "calib_velo_to_cam.txt"  # in calib_dir: R, T

SplitEntry = tuple[str, int, str | None]


def camera_index(side: str | None) -> int:
    """KITTI camera number of a side: 2 for ``l``/``2``/None (a line without side), 3 for ``r``/``3``."""
    if side is None:
        return 2
    if side not in CAMERA_OF_SIDE:
        raise InputError(f"side {side!r} is not one of {SIDES}")
    return CAMERA_OF_SIDE[side]


def camera_folder(side: str | None) -> str:
    """``image_02`` or ``image_03`` (see :func:`camera_index`)."""
    return f"image_0{camera_index(side)}"


def side_of_camera_folder(name: str) -> str:
    """``l`` for ``image_02``, ``r`` for ``image_03``: the inverse of :func:`camera_folder`."""
    if name not in CAMERA_FOLDERS:
        raise InputError(f"{name!r} is not a KITTI colour camera folder {CAMERA_FOLDERS}")
    return "l" if name == CAMERA_FOLDERS[0] else "r"


def other_side(side: str) -> str:
    """The stereo partner's side, in the same spelling: l <-> r, 2 <-> 3."""
    return OTHER_SIDE[side]


# ---------------------------------------------------------------------------------------------- paths
def frame_name(frame_index: int, ext: str) -> str:
    """``%010d<ext>``: KITTI raw's file name of a frame (``ext`` with its dot, e.g. ``.png``)."""
    return f"{frame_index:010d}{ext}"


def image_dir(data_path: str | os.PathLike, folder: str, side: str | None) -> str:
    """``<data_path>/<folder>/image_0X/data``: the folder of one camera's frames."""
    return os.path.join(data_path, folder, camera_folder(side), IMAGE_DATA)


def frame_path(data_path: str | os.PathLike, folder: str, frame_index: int, side: str | None, ext: str) -> str:
    """``<data_path>/<folder>/image_0X/data/%010d<ext>``."""
    return os.path.join(image_dir(data_path, folder, side), frame_name(frame_index, ext))


def odom_frame_path(data_path: str | os.PathLike, sequence: str | int, frame_index: int, side: str | None,
                    ext: str) -> str:
    """KITTI odometry: ``<data_path>/sequences/%02d/image_{2,3}/%06d<ext>``."""
    return os.path.join(data_path, "sequences", f"{int(sequence):02d}", f"image_{camera_index(side)}",
                        f"{frame_index:06d}{ext}")


def depth_png_path(data_path: str | os.PathLike, folder: str, frame_index: int, side: str | None) -> str:
    """``<data_path>/<folder>/proj_depth/groundtruth/image_0X/%010d.png`` (KITTI depth benchmark GT)."""
    return os.path.join(data_path, folder, *DEPTH_PNG_DIR, camera_folder(side), frame_name(frame_index, ".png"))


def velodyne_path(data_path: str | os.PathLike, folder: str, frame_index: int) -> str:
    """``<data_path>/<folder>/velodyne_points/data/%010d.bin``."""
    return os.path.join(data_path, folder, *VELODYNE_DIR, frame_name(frame_index, ".bin"))


def flow_png_path(data_path: str | os.PathLike, folder: str, frame_index: int, side: str | None) -> str:
    """``<data_path>/<folder>/flow/image_0X/%010d.png``: KITTI flow PNG from frame t to t+1."""
    return os.path.join(data_path, folder, FLOW_DIR, camera_folder(side), frame_name(frame_index, ".png"))


def calib_dir(data_path: str | os.PathLike, folder: str) -> str:
    """``<data_path>/<date>``: the folder holding the calibration files of drive ``<date>/<drive>``."""
    return os.path.join(data_path, folder.split("/")[0])


def flow_png_of_image(image: str | os.PathLike) -> Path:
    """The flow PNG t -> t+1 of frame ``<drive>/image_0X/data/<t>.<ext>``: ``<drive>/flow/image_0X/<t>.png``."""
    image = Path(image)
    return image.parent.parent.parent / FLOW_DIR / image.parent.parent.name / f"{image.stem}.png"


def image_dir_of_flow_png(flow_png: str | os.PathLike) -> Path:
    """``<drive>/image_0X/data`` of ``<drive>/flow/image_0X/<t>.png``: the inverse of :func:`flow_png_of_image`."""
    flow_png = Path(flow_png)
    return flow_png.parent.parent.parent / flow_png.parent.name / IMAGE_DATA


# ---------------------------------------------------------------------------------------------- split lines
def parse_split_line(line: str, line_number: int | None = None) -> SplitEntry:
    """Parse `folder frame_index [side]` into (folder, frame_index, side or None)."""
    where = f"line {line_number}: " if line_number is not None else ""
    tokens = line.split()
    if len(tokens) not in (2, 3):
        raise InputError(f"{where}expected 'folder frame_index [side]', got {line!r}")
    try:
        frame_index = int(tokens[1])
    except ValueError:
        raise InputError(f"{where}frame index {tokens[1]!r} is not an integer in {line!r}") from None
    side = tokens[2] if len(tokens) == 3 else None
    if side is not None and side not in SIDES:
        raise InputError(f"{where}side {side!r} is not one of {SIDES} in {line!r}")
    return tokens[0], frame_index, side


def format_split_line(folder: str, frame_index: int, side: str | None = None) -> str:
    """``<folder> <frame_index> [<side>]``: the line :func:`parse_split_line` reads back."""
    return f"{folder} {frame_index}" if side is None else f"{folder} {frame_index} {side}"


def write_split_file(path: str | os.PathLike, lines: Iterable[str]) -> None:
    """Write split lines, each ending in a newline, atomically (``fileio.atomic_path``)."""
    atomic_write_text(path, "".join(f"{line}\n" for line in lines))


# ---------------------------------------------------------------------------------------------- depth PNG
DEPTH_PNG_SCALE = 256.0  # uint16 value = depth in metres * 256; 0 = no ground truth
DEPTH_PNG_MAX = np.iinfo(np.uint16).max


def encode_depth_png(depth: np.ndarray, beyond_range: Literal["clip", "zero"] = "clip") -> np.ndarray:
    """[H, W] metres -> uint16 ``round(depth * 256)``; NaN, inf and depths <= 0 -> 0 (no ground truth).

    ``beyond_range``: what a depth over 255.996 m (a value over 65535) becomes: ``clip`` stores 65535 (the
    prediction writer: a far prediction stays far), ``zero`` stores 0 = no data (the synthetic world's GT, whose
    exact far depths live in its .npy files).
    """
    depth = np.nan_to_num(np.asarray(depth, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if depth.ndim != 2:
        raise InputError(f"depth must be [H, W], got shape {depth.shape}")
    values = np.round(depth * DEPTH_PNG_SCALE)
    if beyond_range == "zero":
        values = np.where(values <= DEPTH_PNG_MAX, values, 0.0)
    return np.clip(values, 0, DEPTH_PNG_MAX).astype(np.uint16)


def decode_depth_png(values: np.ndarray) -> np.ndarray:
    """uint16 depth PNG values -> float32 metres (value / 256); 0 stays 0 (no ground truth)."""
    return np.asarray(values).astype(np.float32) / DEPTH_PNG_SCALE


def write_depth_png(path: str | os.PathLike, depth: np.ndarray, beyond_range: Literal["clip", "zero"] = "clip",
                    compress_level: int = 6) -> None:
    """Write [H, W] metres as a KITTI 16-bit greyscale depth PNG (:func:`encode_depth_png`)."""
    write_png(path, encode_depth_png(depth, beyond_range), compress_level)


def read_depth_png(path: str | os.PathLike) -> np.ndarray:
    """Read a KITTI 16-bit depth PNG as float32 metres (value / 256); 0 means no GT."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"depth PNG not found: {path}")
    with Image.open(path) as image:
        if image.mode not in ("I;16", "I;16B", "I"):
            raise InputError(f"{path} is not a 16-bit depth PNG (PIL mode {image.mode!r})")
        values = np.asarray(image)
    return decode_depth_png(values)


# ---------------------------------------------------------------------------------------------- images
@contextlib.contextmanager
def open_image(path: str | os.PathLike) -> Iterator[Image.Image]:
    """``Image.open`` whose missing and unreadable files (also when decoded inside the block) raise errors that
    name the file and the fix."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {path} does not exist (check --data_path, the split file and --png)")
    try:
        with Image.open(path) as img:
            yield img
    except Exception as err:
        raise InputError(f"image {path} is corrupt or not an image ({type(err).__name__}: {err}); "
                         "re-extract it or remove its line from the split file") from None


def pil_loader(path: str | os.PathLike) -> Image.Image:
    """Open an image as RGB; missing and unreadable files raise errors that name the file."""
    with open_image(path) as img:
        return img.convert("RGB")


def resize_image(img: Image.Image, width: int, height: int,
                 resample: Image.Resampling = Image.Resampling.LANCZOS) -> Image.Image:
    """``img`` at (width, height), LANCZOS as Monodepth2; the same image when it already has that size."""
    return img if img.size == (width, height) else img.resize((width, height), resample)


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a uint8 [3, H, W] tensor (its own memory)."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def load_image_uint8(path: str | os.PathLike, height: int, width: int) -> torch.Tensor:
    """Read an image (:func:`pil_loader`), resize it (:func:`resize_image`): uint8 [3, height, width]."""
    return to_uint8_tensor(resize_image(pil_loader(path), width, height))


__all__ = [
    "SIDES", "CAMERA_OF_SIDE", "OTHER_SIDE", "CAMERA_FOLDERS", "IMAGE_DATA", "FLOW_DIR", "DEPTH_PNG_DIR",
    "VELODYNE_DIR", "CAM_TO_CAM", "VELO_TO_CAM", "SplitEntry", "camera_index", "camera_folder", "side_of_camera_folder",
    "other_side", "frame_name", "image_dir", "frame_path", "odom_frame_path", "depth_png_path", "velodyne_path",
    "flow_png_path", "calib_dir", "flow_png_of_image", "image_dir_of_flow_png", "parse_split_line",
    "format_split_line", "write_split_file", "DEPTH_PNG_SCALE", "DEPTH_PNG_MAX", "encode_depth_png",
    "decode_depth_png", "write_depth_png", "read_depth_png", "pil_loader", "resize_image", "to_uint8_tensor",
    "load_image_uint8",
]
