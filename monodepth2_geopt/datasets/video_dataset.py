"""Frame triplets from any folder tree of video frames, with no intrinsics (GeoPt flow pretraining).

:class:`UncalibratedVideoDataset` returns, for a target frame t, the frames t + f * stride for every f in
``frame_idxs`` (default t, t - stride, t + stride), cropped to the training aspect ratio and resized to
(height, width). Calibration is never read, so KITTI raw, Cityscapes sequences and frames extracted
from internet videos (``extract_frames.py``) are all usable as "uncalibrated" sources.

Frame naming understood inside a folder (the folder's images decide, per folder):

* **numeric names** (``000123.jpg``, KITTI raw ``0000000123.png``, the extractor's ``%06d.jpg``):
  frame number = the integer in the name; neighbours are looked up by number, so gaps in the numbering
  never produce a triplet;
* **Cityscapes sequence** names ``<city>_<seq>_<frame>_leftImg8bit.png`` (or ``rightImg8bit``): every
  ``<city>_<seq>`` is its own sequence, neighbours are frame +- stride of the same sequence;
* **any other names**: natural sort order, frame number = position in the sorted list.

Split lines (Monodepth2 format ``<folder> <frame_index> [side]``):

* ``<folder>`` with a KITTI raw layout (``<folder>/image_02/data``): side ``l``/``2`` (default) reads
  ``image_02/data``, ``r``/``3`` reads ``image_03/data``; frame_index is the number in the file name;
* ``<folder>`` a plain frame folder: frame_index as above (number in the name, or sorted position);
* ``<folder>/<city>_<seq>`` for Cityscapes (or ``<folder>`` alone when it holds a single sequence),
  frame_index = the Cityscapes frame number; side ``r`` picks ``rightImg8bit``.

Each item is decoded, cropped and resized on the CPU only: colour augmentation, normalisation and the
scale pyramid happen on the device in the trainer. Item schema::

    ("color", f) -> torch.uint8 [3, height, width]   for f in frame_idxs
    "flip"       -> torch.bool scalar
    "index"      -> int
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import ConcatDataset, Dataset, WeightedRandomSampler
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.kitti_layout import (CAMERA_FOLDERS, IMAGE_DATA, camera_folder, side_of_camera_folder,
                                           to_uint8_tensor)

__all__ = ["UncalibratedVideoDataset", "VideoDatasetError", "make_mixed_dataset", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_CITYSCAPES_RE = re.compile(r"^(?P<prefix>.+)_(?P<frame>\d+)_(?P<cam>left|right)Img8bit$")
_EXPECTED_LAYOUT = (
    "expected folders of frames (*.jpg, *.jpeg, *.png) such as <video>/000000.jpg, KITTI raw "
    "<drive>/image_02/data/0000000000.png or Cityscapes <city>/<city>_<seq>_<frame>_leftImg8bit.png"
)
_RESAMPLE = {"lanczos": Image.LANCZOS, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


NON_FRAME_DIRS = frozenset({"proj_depth", "flow", "flow_occ", "flow_noc", "depth", "velodyne_points", "oxts",
                            "disp_occ_0", "disp_noc_0"})


class VideoDatasetError(InputError, RuntimeError):
    """A user-facing data problem: no images, undecodable image, missing neighbour, bad split line."""


def _natural_key(name: str):
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


class _Sequence:
    """One ordered run of frames: ``frames`` maps frame number -> path."""

    def __init__(self, kind: str, directory: Path, frames: dict[int, Path], line_folder: str,
                 side: str | None = None, prefix: str | None = None, ext: str = ".jpg", digits: int = 0):
        self.kind = kind                  # "numeric" | "kitti" | "cityscapes" | "sorted"
        self.directory = directory
        self.frames = frames
        self.line_folder = line_folder    # the split-line folder token that resolves to this sequence
        self.side = side                  # "l"/"r" for KITTI raw and Cityscapes
        self.prefix = prefix              # "<city>_<seq>" for Cityscapes
        self.ext = ext
        self.digits = digits

    def split_line(self, key: int) -> str:
        if self.kind == "kitti":
            return f"{self.line_folder} {key} {self.side}"
        if self.kind == "cityscapes" and self.side == "r":
            return f"{self.line_folder} {key} r"
        return f"{self.line_folder} {key}"

    def expected_path(self, key: int) -> str:
        """The file a missing frame would have (for error messages)."""
        if key < 0:
            return f"frame {key} of '{self.directory}' (before the first frame)"
        if self.kind == "cityscapes":
            cam = "right" if self.side == "r" else "left"
            return str(self.directory / f"{self.prefix}_{key:06d}_{cam}Img8bit{self.ext}")
        if self.kind in ("numeric", "kitti"):
            return str(self.directory / f"{key:0{self.digits}d}{self.ext}")
        return f"frame {key} of '{self.directory}' (it holds {len(self.frames)} images in sorted order)"


def _list_images(directory: Path, img_ext: str | None) -> list[Path]:
    try:
        with os.scandir(directory) as it:
            files = [Path(e.path) for e in it
                     if not e.name.startswith(".") and e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file()]
    except OSError:
        return []
    if img_ext is not None:
        return [f for f in files if f.suffix.lower() == img_ext]
    exts = Counter(f.suffix.lower() for f in files)
    if len(exts) > 1:  # one image format per folder: the most common one
        best = max(exts, key=lambda e: (exts[e], -IMAGE_EXTENSIONS.index(e)))
        files = [f for f in files if f.suffix.lower() == best]
    return files


def _rel(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix() if path != root else "."
    return rel or "."


def _sequences_in_dir(directory: Path, root: Path, img_ext: str | None) -> list[_Sequence]:
    files = _list_images(directory, img_ext)
    if not files:
        return []
    ext = files[0].suffix
    rel = _rel(directory, root)
    matches = [_CITYSCAPES_RE.match(f.stem) for f in files]
    if all(matches):
        groups: dict[tuple[str, str], dict[int, Path]] = {}
        for f, m in zip(files, matches):
            groups.setdefault((m["prefix"], m["cam"]), {})[int(m["frame"])] = f
        seqs = []
        for (prefix, cam), frames in sorted(groups.items()):
            folder = f"{rel}/{prefix}" if rel != "." else prefix
            seqs.append(_Sequence("cityscapes", directory, frames, folder, side="r" if cam == "right" else "l",
                                  prefix=prefix, ext=ext))
        return seqs
    stems = [f.stem for f in files]
    if all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        frames = {int(f.stem): f for f in files}
        digits = len(min(stems, key=len))
        cam_dir = directory.parent
        if directory.name == IMAGE_DATA and cam_dir.name in CAMERA_FOLDERS:
            drive = cam_dir.parent
            try:
                folder = _rel(drive, root)
            except ValueError:
                folder = str(drive)
            side = side_of_camera_folder(cam_dir.name)
            return [_Sequence("kitti", directory, frames, folder, side=side, ext=ext, digits=digits)]
        return [_Sequence("numeric", directory, frames, rel, ext=ext, digits=digits)]
    ordered = sorted(files, key=lambda f: _natural_key(f.name))
    return [_Sequence("sorted", directory, dict(enumerate(ordered)), rel, ext=ext)]


class UncalibratedVideoDataset(Dataset):
    """Frame triplets (or any ``frame_idxs`` tuple) from folders of video frames; no intrinsics.

    Args:
        data_path: root folder of the frame tree.
        filenames: ``None`` to scan ``data_path`` recursively (every frame whose neighbours at
            ``f * stride`` exist becomes a target, in folder / frame order), or split lines
            ``"<folder> <frame_index> [side]"`` (a list of strings, or the path of a split file).
        height, width: output size of every image.
        frame_idxs: frame offsets, in units of ``stride``; keys of the returned ``("color", f)`` entries.
        stride: distance in frames between neighbours.
        is_train: random crop (with scale jitter) and random horizontal flip; otherwise the centred
            maximal crop and no flip (deterministic).
        img_ext: only read images with this extension (``"png"``/``".jpg"``...); ``None`` accepts
            jpg/jpeg/png (per folder, the most common of them).
        scale_range: training crop size as a fraction of the largest crop with the output aspect ratio.
        flip_prob: probability of flipping a training triplet horizontally.
        resample: ``"lanczos"`` (default), ``"bilinear"`` or ``"bicubic"``.
        check_files: with ``filenames``, check at construction that every target and neighbour exists.
    """

    return_crop_box = False  # add "crop_box" to each item (VideoDepthDataset, for pseudo-labels)
    whole_frame = False  # no crop: resize each whole frame to the output size (evaluate_intrinsics.py --whole_frame)

    def __init__(
        self,
        data_path: str | os.PathLike,
        filenames: Sequence[str] | str | os.PathLike | None = None,
        height: int = 192,
        width: int = 640,
        frame_idxs: Sequence[int] = (0, -1, 1),
        stride: int = 1,
        is_train: bool = True,
        img_ext: str | None = None,
        scale_range: tuple[float, float] = (0.8, 1.0),
        flip_prob: float = 0.5,
        resample: str = "lanczos",
        check_files: bool = True,
    ):
        super().__init__()
        self.data_path = Path(data_path)
        self.height, self.width = int(height), int(width)
        self.frame_idxs = tuple(int(f) for f in frame_idxs)
        self.stride = int(stride)
        self.is_train = bool(is_train)
        self.img_ext = None if img_ext is None else "." + str(img_ext).lower().lstrip(".")
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.flip_prob = float(flip_prob)
        self._check_args(resample)
        self.resample = _RESAMPLE[resample.lower()]

        if not self.data_path.is_dir():
            raise VideoDatasetError(f"data_path not found or not a folder: '{self.data_path}'")
        self._sequences: list[_Sequence] = []
        self._samples: list[tuple[int, int]] = []      # (sequence index, target frame number)
        if filenames is None:
            self._scan()
        else:
            if isinstance(filenames, (str, os.PathLike)):
                path = Path(filenames)
                if not path.is_file():
                    raise VideoDatasetError(f"split file not found: '{path}'")
                filenames = path.read_text().splitlines()
            self._from_split(list(filenames), check_files)

    # ------------------------------------------------------------------ construction
    def _check_args(self, resample: str) -> None:
        if self.height <= 0 or self.width <= 0:
            raise VideoDatasetError(f"height and width must be positive, got {self.height}x{self.width}")
        if not self.frame_idxs:
            raise VideoDatasetError("frame_idxs must not be empty")
        if self.stride < 1:
            raise VideoDatasetError(f"stride must be >= 1, got {self.stride}")
        if self.img_ext is not None and self.img_ext not in IMAGE_EXTENSIONS:
            raise VideoDatasetError(f"img_ext must be one of {IMAGE_EXTENSIONS}, got {self.img_ext!r}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi <= 1:
            raise VideoDatasetError(f"scale_range must satisfy 0 < low <= high <= 1, got {self.scale_range}")
        if not 0 <= self.flip_prob <= 1:
            raise VideoDatasetError(f"flip_prob must be in [0, 1], got {self.flip_prob}")
        if str(resample).lower() not in _RESAMPLE:
            raise VideoDatasetError(f"resample must be one of {sorted(_RESAMPLE)}, got {resample!r}")

    def _offsets(self) -> list[int]:
        return [f * self.stride for f in self.frame_idxs]

    def _scan(self) -> None:
        offsets = self._offsets()
        n_images = 0
        for dirpath, dirnames, _ in os.walk(self.data_path, followlinks=True):
            # Ground-truth folders of a KITTI-layout tree (depth/flow PNGs, velodyne) are not frame sequences.
            dirnames[:] = sorted((d for d in dirnames if not d.startswith(".") and d not in NON_FRAME_DIRS),
                                 key=_natural_key)
            for seq in _sequences_in_dir(Path(dirpath), self.data_path, self.img_ext):
                n_images += len(seq.frames)
                self._sequences.append(seq)
                s = len(self._sequences) - 1
                for key in sorted(seq.frames):
                    if all(key + o in seq.frames for o in offsets):
                        self._samples.append((s, key))
        ext = f" with extension {self.img_ext}" if self.img_ext else ""
        if n_images == 0:
            raise VideoDatasetError(f"no images{ext} found under '{self.data_path}': {_EXPECTED_LAYOUT}")
        if not self._samples:
            raise VideoDatasetError(
                f"found {n_images} images{ext} in {len(self._sequences)} sequence(s) under '{self.data_path}' "
                f"but no frame has neighbours at offsets {offsets} (sequences too short for stride {self.stride}?)")

    def _resolve(self, folder: str, side: str | None, cache: dict) -> int:
        key = (folder, side)
        if key in cache:
            return cache[key]
        p = self.data_path / folder
        cam_side = "r" if side in ("r", "3") else "l"
        ext = f" with extension {self.img_ext}" if self.img_ext else ""
        if p.is_dir():
            kitti_cams = [p / c / IMAGE_DATA for c in CAMERA_FOLDERS]
            if any(c.is_dir() for c in kitti_cams):
                cam = camera_folder(cam_side)  # an unknown side reads the left camera
                d = p / cam / IMAGE_DATA
                if not d.is_dir():
                    raise VideoDatasetError(f"KITTI raw folder '{p}' has no {cam}/data (side '{side}')")
                seqs = _sequences_in_dir(d, self.data_path, self.img_ext)
                where = d
            else:
                seqs = _sequences_in_dir(p, self.data_path, self.img_ext)
                where = p
                if len(seqs) > 1:  # Cityscapes folder: pick the camera, then require a single sequence
                    seqs = [s for s in seqs if s.side == cam_side]
                    if len(seqs) > 1:
                        raise VideoDatasetError(
                            f"'{p}' holds {len(seqs)} Cityscapes sequences: name one in the split line "
                            f"as '{folder}/<city>_<seq> <frame>'")
            if not seqs:
                raise VideoDatasetError(f"no images{ext} in '{where}': {_EXPECTED_LAYOUT}")
        elif p.parent.is_dir():
            seqs = [s for s in _sequences_in_dir(p.parent, self.data_path, self.img_ext)
                    if s.kind == "cityscapes" and s.prefix == p.name and s.side == cam_side]
            if not seqs:
                raise VideoDatasetError(f"folder not found (nor a Cityscapes sequence prefix): '{p}'")
        else:
            raise VideoDatasetError(f"folder not found: '{p}'")
        self._sequences.append(seqs[0])
        cache[key] = len(self._sequences) - 1
        return cache[key]

    def _from_split(self, lines: list[str], check_files: bool) -> None:
        offsets = self._offsets()
        cache: dict = {}
        for lineno, line in enumerate(lines, 1):
            tokens = line.split()
            if not tokens:
                continue
            where = f"split line {lineno} ('{line.strip()}')"
            if len(tokens) < 2:
                raise VideoDatasetError(f"{where}: expected '<folder> <frame_index> [side]'")
            try:
                frame = int(tokens[1])
            except ValueError:
                raise VideoDatasetError(f"{where}: frame index '{tokens[1]}' is not an integer") from None
            side = tokens[2].lower() if len(tokens) > 2 else None
            try:
                s = self._resolve(tokens[0], side, cache)
            except VideoDatasetError as exc:
                raise VideoDatasetError(f"{where}: {exc}") from None
            if check_files:
                seq = self._sequences[s]
                for o in offsets:
                    if frame + o not in seq.frames:
                        role = "target frame" if o == 0 else f"neighbour at offset {o:+d}"
                        raise VideoDatasetError(f"{where}: missing {role}: {seq.expected_path(frame + o)}")
            self._samples.append((s, frame))
        if not self._samples:
            raise VideoDatasetError(f"the split list for '{self.data_path}' is empty")

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._samples)

    def exclude_folders(self, names) -> int:
        """Drop every sample whose sequence lies under a folder named in ``names`` (any path component below
        ``data_path``), e.g. the KITTI drives of a test split; returns the number of samples dropped."""
        names = set(names)
        drop = {i for i, seq in enumerate(self._sequences)
                if names & set(seq.directory.relative_to(self.data_path).parts)}
        before = len(self._samples)
        self._samples = [(s, k) for s, k in self._samples if s not in drop]
        return before - len(self._samples)

    @property
    def filenames(self) -> list[str]:
        """Split lines (``<folder> <frame_index> [side]``) of every sample, reloadable via ``filenames=``."""
        return [self._sequences[s].split_line(k) for s, k in self._samples]

    def get_paths(self, index: int) -> dict[int, Path]:
        """The image path of every frame id of sample ``index``."""
        s, key = self._samples[index]
        seq = self._sequences[s]
        paths = {}
        for f in self.frame_idxs:
            k = key + f * self.stride
            if k not in seq.frames:
                raise VideoDatasetError(f"sample {index}: missing frame {f:+d}: {seq.expected_path(k)}")
            paths[f] = seq.frames[k]
        return paths

    def _crop_box(self, src_w: int, src_h: int) -> tuple[float, float, float, float]:
        if self.whole_frame:  # the whole frame, resized to the output (as the KITTI-layout readers do)
            return 0.0, 0.0, float(src_w), float(src_h)
        aspect = self.width / self.height
        if src_w / src_h > aspect:
            max_h, max_w = float(src_h), src_h * aspect
        else:
            max_w, max_h = float(src_w), src_w / aspect
        if self.is_train:
            lo, hi = self.scale_range
            s = lo + (hi - lo) * torch.rand(()).item()
            cw, ch = max_w * s, max_h * s
            x0 = (src_w - cw) * torch.rand(()).item()
            y0 = (src_h - ch) * torch.rand(()).item()
        else:
            cw, ch = max_w, max_h
            x0, y0 = (src_w - cw) / 2, (src_h - ch) / 2
        return x0, y0, x0 + cw, y0 + ch

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = index % len(self)
        paths = self.get_paths(index)
        images = {}
        for f, path in paths.items():
            try:
                images[f] = Image.open(path)
            except FileNotFoundError:
                raise VideoDatasetError(f"image file not found: '{path}'") from None
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
                raise VideoDatasetError(f"cannot read image '{path}': {exc}") from None
        try:
            size = images[self.frame_idxs[0]].size
            for f, img in images.items():
                if img.size != size:
                    raise VideoDatasetError(
                        f"frames of one sample differ in size: '{paths[f]}' is {img.size[0]}x{img.size[1]}, "
                        f"'{paths[self.frame_idxs[0]]}' is {size[0]}x{size[1]}")
            box = self._crop_box(*size)
            flip = self.is_train and self.flip_prob > 0 and torch.rand(()).item() < self.flip_prob
            inputs: dict = {}
            for f in self.frame_idxs:
                inputs[("color", f)] = self._load(images[f], paths[f], box, flip)
        finally:
            for img in images.values():
                img.close()
        inputs["flip"] = torch.tensor(flip)
        inputs["index"] = index
        if self.return_crop_box:  # normalised (x0, y0, x1, y1): depth training crops pseudo-labels the same way
            inputs["crop_box"] = (box[0] / size[0], box[1] / size[1], box[2] / size[0], box[3] / size[1])
            inputs["crop_aspect"] = (box[2] - box[0]) / (box[3] - box[1])  # width / height in source pixels
        return inputs

    def _load(self, img: Image.Image, path: Path, box, flip: bool) -> torch.Tensor:
        try:
            src_w, src_h = img.size
            x0, y0, x1, y1 = box
            if img.format == "JPEG" and img.mode in ("RGB", "L", "YCbCr"):
                # let the JPEG decoder downscale (DCT scaling) when the crop is >= 2x the output
                req = (math.ceil(src_w * self.width / (x1 - x0)), math.ceil(src_h * self.height / (y1 - y0)))
                img.draft("RGB", req)
                sx, sy = img.size[0] / src_w, img.size[1] / src_h
                x0, x1, y0, y1 = x0 * sx, x1 * sx, y0 * sy, y1 * sy
            rgb = img.convert("RGB")
            out = rgb.resize((self.width, self.height), self.resample, box=(x0, y0, x1, y1))
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            raise VideoDatasetError(f"cannot read image '{path}': {exc}") from None
        if flip:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_uint8_tensor(out)


def make_mixed_dataset(
    datasets: Sequence[Dataset],
    weights: Sequence[float],
    num_samples: int | None = None,
    replacement: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[ConcatDataset, WeightedRandomSampler]:
    """Concatenate datasets and build a sampler drawing from dataset i with probability ~ weights[i].

    Every sample of dataset i gets weight ``weights[i] / len(datasets[i])``, so ``weights=(1, 1, 2)``
    draws KITTI : Cityscapes : videos = 1 : 1 : 2 whatever their sizes. ``num_samples`` (the epoch
    length) defaults to the total number of samples. Use as ``DataLoader(ds, sampler=sampler, ...)``.
    """
    datasets = list(datasets)
    weights = [float(w) for w in weights]
    if not datasets:
        raise ValueError("make_mixed_dataset needs at least one dataset")
    if len(weights) != len(datasets):
        raise ValueError(f"got {len(datasets)} datasets but {len(weights)} weights")
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be finite, >= 0 and not all 0, got {weights}")
    lengths = [len(d) for d in datasets]
    for i, (n, w) in enumerate(zip(lengths, weights)):
        if n == 0 and w > 0:
            raise ValueError(f"dataset {i} is empty but has weight {w}")
    per_sample = torch.cat([torch.full((n,), w / n if n else 0.0, dtype=torch.double)
                            for n, w in zip(lengths, weights)])
    num_samples = sum(lengths) if num_samples is None else int(num_samples)
    if num_samples <= 0:
        raise ValueError(f"num_samples must be > 0, got {num_samples}")
    sampler = WeightedRandomSampler(per_sample, num_samples, replacement=replacement, generator=generator)
    return ConcatDataset(datasets), sampler
