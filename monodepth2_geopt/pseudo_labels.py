"""Teacher pseudo-labels for depth distillation (NimbleD): writing and reading them, resampling them like the training
images, the teachers, and the run of ``make_pseudo_labels.py``.

Files (``make_pseudo_labels.py``): ``<out_dir>`` mirrors the image tree under ``--data_path``: the label of
``<data_path>/<rel>/<name>.<jpg|png>`` is ``<out_dir>/<rel>/<name>.png`` (or ``.npy``), at the image's own size.
A label is a **disparity** known up to scale and shift (what the scale-and-shift-invariant loss needs):

- ``png`` (default): 16-bit greyscale; value 0 = no label (the teacher gave NaN/inf, or depth <= 0); a value
  v >= 1 is the disparity ``offset + scale * (v - 1)``, with ``offset`` (the image's smallest disparity) and
  ``scale`` ((largest - smallest) / 65534) stored per file in the PNG's text chunks ``m2g_disp_offset`` /
  ``m2g_disp_scale`` (decimal). So each file uses the full 16 bits of its own range (a relative precision of
  1.5e-5 of it) and negative disparities of an affine-invariant teacher survive.
- ``npy``: float16 disparity, NaN = no label (a relative precision of 5e-4; |values| must stay below 65504).

``<out_dir>/pseudo_labels.json`` (the manifest) names the teacher, its output kind and the format; a folder made by
another teacher is never written into without ``--overwrite``. Files are written atomically (``fileio``), so an
existing label is complete and a rerun skips it (resumable).

Teachers: a weights folder of this project (its scaled disparity: ``DepthModel.infer_image(rgb, output="disp")``),
or ``module:function`` (``pkg.mod:fn`` importable, or ``path/to/file.py:fn``) naming a callable with this contract:
it takes one image as a uint8 numpy array [H, W, 3] in RGB order and returns a [H', W'] array (numpy or torch;
leading singleton dimensions are dropped) of disparity (``--teacher_output disp``: larger = nearer, any scale and shift) or depth
(``--teacher_output depth``: converted to 1 / depth; depth <= 0 or NaN = no label, inf = disparity 0). An output of
another size is resized (bilinear) to the image's size.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from monodepth2_geopt.errors import InputError
from monodepth2_geopt.fileio import atomic_path, atomic_write_text

LABEL_FORMATS = ("png", "npy")
TEACHER_OUTPUTS = ("disp", "depth")
MANIFEST_NAME = "pseudo_labels.json"
MANIFEST_VERSION = 1
PNG_OFFSET_KEY, PNG_SCALE_KEY = "m2g_disp_offset", "m2g_disp_scale"
PNG_LEVELS = 65534  # valid values 1..65535; 0 = no label
FLOAT16_MAX = float(np.finfo(np.float16).max)


# ---------------------------------------------------------------------------------------------- encoding
def encode_label_png(disp: np.ndarray) -> tuple[np.ndarray, float, float]:
    """[H, W] disparity (NaN/inf = no label) -> (uint16 values, offset, scale); see the module docstring."""
    disp = np.asarray(disp, dtype=np.float64)
    valid = np.isfinite(disp)
    values = np.zeros(disp.shape, dtype=np.uint16)
    if not valid.any():
        return values, 0.0, 0.0
    lo, hi = float(disp[valid].min()), float(disp[valid].max())
    scale = (hi - lo) / PNG_LEVELS
    q = np.round((disp[valid] - lo) / scale) if scale > 0 else np.zeros(int(valid.sum()))
    values[valid] = (1 + np.clip(q, 0, PNG_LEVELS)).astype(np.uint16)
    return values, lo, scale


def decode_label_png(values: np.ndarray, offset: float, scale: float) -> np.ndarray:
    """uint16 values -> float32 disparity, NaN where the value is 0 (no label)."""
    values = np.asarray(values)
    disp = offset + scale * (values.astype(np.float64) - 1.0)
    return np.where(values > 0, disp, np.nan).astype(np.float32)


def write_label(path: str | os.PathLike, disp: np.ndarray, fmt: str) -> None:
    """Write one label atomically in ``fmt`` ("png" or "npy")."""
    disp = np.asarray(disp, dtype=np.float32)
    if disp.ndim != 2:
        raise ValueError(f"a label is [H, W], got shape {disp.shape}")
    with atomic_path(path) as tmp:
        if fmt == "png":
            values, offset, scale = encode_label_png(disp)
            info = PngImagePlugin.PngInfo()
            info.add_text(PNG_OFFSET_KEY, repr(offset))
            info.add_text(PNG_SCALE_KEY, repr(scale))
            # zlib level 1: measured on 854x480 labels, 3x faster to write than level 6 for 8 % more bytes
            Image.fromarray(values).save(tmp, format="PNG", pnginfo=info, compress_level=1)
        elif fmt == "npy":
            finite = disp[np.isfinite(disp)]
            if finite.size and np.abs(finite).max() > FLOAT16_MAX:
                raise InputError(f"{path}: the teacher's disparity reaches {np.abs(finite).max():.4g}, beyond float16 "
                                 f"({FLOAT16_MAX:g}); use --format png (scaled per file)")
            np.save(tmp, np.where(np.isfinite(disp), disp, np.nan).astype(np.float16))
        else:
            raise ValueError(f"format must be one of {LABEL_FORMATS}, got {fmt!r}")


def read_label(path: str | os.PathLike) -> np.ndarray:
    """A label file as float32 disparity [H, W], NaN = no label. Unreadable files raise an InputError naming them."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            disp = np.load(path, allow_pickle=False)
            if disp.ndim != 2:
                raise ValueError(f"shape {disp.shape}, expected [H, W]")
            return disp.astype(np.float32)
        with Image.open(path) as img:
            if img.mode not in ("I;16", "I;16B", "I") or PNG_SCALE_KEY not in img.text:
                raise ValueError(f"not a pseudo-label PNG (mode {img.mode}, no {PNG_SCALE_KEY} text chunk)")
            return decode_label_png(np.asarray(img), float(img.text[PNG_OFFSET_KEY]), float(img.text[PNG_SCALE_KEY]))
    except FileNotFoundError:
        raise
    except Exception as err:
        raise InputError(f"pseudo-label {path} cannot be read ({type(err).__name__}: {err}); delete it and rerun "
                         "make_pseudo_labels.py (existing labels are kept, missing ones written)") from None


def resize_label(disp: np.ndarray, width: int, height: int,
                 box: Sequence[float] | None = None) -> np.ndarray:
    """A label resampled like a training image: the region ``box`` (normalised x0, y0, x1, y1; default the whole
    label) to (width, height), bilinear (Pillow's, antialiased when shrinking). A pixel is labelled where at
    least 99.9 % of its filter weight falls on labelled pixels (normalised convolution); else NaN."""
    disp = np.asarray(disp, dtype=np.float32)
    h, w = disp.shape
    px_box = (0.0, 0.0, float(w), float(h)) if box is None else (box[0] * w, box[1] * h, box[2] * w, box[3] * h)
    if (w, h) == (width, height) and box is None:
        return disp.copy()
    valid = np.isfinite(disp)

    def resample(a: np.ndarray) -> np.ndarray:
        image = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))
        return np.array(image.resize((width, height), Image.Resampling.BILINEAR, box=px_box))  # writable

    if valid.all():
        return resample(disp)
    weight = resample(valid.astype(np.float32))
    total = resample(np.where(valid, disp, 0.0).astype(np.float32))
    return np.where(weight > 0.999, total / np.maximum(weight, 1e-6), np.nan).astype(np.float32)


# ---------------------------------------------------------------------------------------------- where labels live
def relative_image_path(data_path: str | os.PathLike, image: str | os.PathLike) -> str:
    """``image`` relative to ``data_path`` (POSIX), refused when it lies outside."""
    rel = os.path.relpath(os.path.abspath(image), os.path.abspath(data_path))
    if rel.startswith(".."):
        raise InputError(f"image {image} is not under --data_path {data_path}: labels mirror that tree")
    return Path(rel).as_posix()


def label_path(out_dir: str | os.PathLike, data_path: str | os.PathLike, image: str | os.PathLike,
               fmt: str) -> Path:
    """Where the label of ``image`` goes: the same relative path under ``out_dir``, suffix ``.<fmt>``."""
    return Path(out_dir) / Path(relative_image_path(data_path, image)).with_suffix("." + fmt)


def read_manifest(out_dir: str | os.PathLike) -> dict | None:
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise InputError(f"{path} is not valid JSON ({err}); delete it (and its labels) or pass --overwrite") from None


class PseudoLabelStore:
    """The labels of a ``--pseudo_label_path`` folder, as the datasets read them. The format comes from the
    manifest; a folder without one (labels made elsewhere in this layout) is searched for .png, then .npy."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise InputError(f"--pseudo_label_path {self.root} is not a folder: make the labels with "
                             "`python make_pseudo_labels.py --teacher ... --data_path ... --out_dir DIR`")
        manifest = read_manifest(self.root)
        fmt = (manifest or {}).get("format")
        self.formats = (fmt,) if fmt in LABEL_FORMATS else LABEL_FORMATS
        self.teacher = (manifest or {}).get("teacher", "unknown (no manifest)")

    def expected(self, data_path, image) -> Path:
        return label_path(self.root, data_path, image, self.formats[0])

    def find(self, data_path, image) -> Path | None:
        for fmt in self.formats:
            path = label_path(self.root, data_path, image, fmt)
            if path.is_file():
                return path
        return None

    def load(self, data_path, image, width: int, height: int, box: Sequence[float] | None = None,
             flip: bool = False) -> torch.Tensor:
        """The label of ``image`` at the training resolution: float32 [1, height, width], NaN = no label,
        cropped to ``box`` (normalised) and mirrored with ``flip`` exactly as the image was."""
        path = self.find(data_path, image)
        if path is None:
            raise FileNotFoundError(f"pseudo-label {self.expected(data_path, image)} of {image} does not exist")
        disp = resize_label(read_label(path), width, height, box)
        if flip:
            disp = disp[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(disp))[None]


def missing_labels(store: PseudoLabelStore, dataset) -> list[tuple[int, Path]]:
    """(item index, expected label path) of every item of ``dataset`` (a depth dataset with ``data_path`` and
    ``target_image``) whose target frame has no label in ``store``. One stat per item."""
    missing = []
    for i in range(len(dataset)):
        image = dataset.target_image(i)
        if store.find(dataset.data_path, image) is None:
            missing.append((i, store.expected(dataset.data_path, image)))
    return missing


# ---------------------------------------------------------------------------------------------- teachers
@dataclass
class Teacher:
    """``predict(rgb uint8 [H, W, 3]) -> float32 disparity [H, W]`` at the image's size, NaN = no label."""
    predict: Callable[[np.ndarray], np.ndarray]
    identity: dict  # what the manifest records


def _load_callable(spec: str) -> Callable:
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise InputError(f"--teacher {spec!r}: give a weights folder or 'module:function' (e.g. my_teacher:predict "
                         "or path/to/teacher.py:predict)")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser()
            if not path.is_file():
                raise InputError(f"--teacher {spec!r}: {path} does not exist")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except InputError:
        raise
    except ImportError as err:
        raise InputError(f"--teacher {spec!r}: cannot import {module_name} ({err}); is it installed / on "
                         "PYTHONPATH, or give its file as path/to/file.py:function") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InputError(f"--teacher {spec!r}: {module_name} has no callable {attr!r}")
    return fn


def _to_2d(out, spec: str) -> np.ndarray:
    if torch.is_tensor(out):
        out = out.detach().float().cpu().numpy()
    out = np.asarray(out, dtype=np.float32)
    while out.ndim > 2 and out.shape[0] == 1:
        out = out[0]
    if out.ndim != 2:
        raise InputError(f"--teacher {spec}: returned shape {out.shape}; it must return one [H, W] map per image")
    return out


def depth_to_label(depth: np.ndarray) -> np.ndarray:
    """Depth -> disparity label: 1 / depth; depth <= 0 or NaN = no label (NaN), depth inf = disparity 0."""
    depth = np.asarray(depth, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        disp = np.where(depth > 0, 1.0 / depth, np.nan)
    return disp.astype(np.float32)


def load_teacher(spec: str, output: str = "disp", device: torch.device | str = "cpu") -> Teacher:
    """A weights folder of this project (its scaled disparity at the image's size, ``DepthModel.infer_image``) or
    ``module:function``."""
    if output not in TEACHER_OUTPUTS:
        raise InputError(f"--teacher_output must be one of {TEACHER_OUTPUTS}, got {output!r}")
    folder = Path(spec).expanduser()
    if folder.is_dir():
        from monodepth2_geopt.model_loading import load_depth_model
        from monodepth2_geopt.splits import sha256_file
        if output != "disp":
            raise InputError(f"--teacher {spec} is a weights folder: it predicts disparity, so drop "
                             "--teacher_output depth")
        model = load_depth_model(folder, device)  # a folder without encoder.pth / depth.pth is named here

        def predict(rgb: np.ndarray) -> np.ndarray:
            return model.infer_image(rgb, output="disp")  # Monodepth2's scaled disparity, upsampled bilinearly

        identity = {"teacher": str(folder.resolve()), "kind": "weights_folder",
                    "sha256": {n: sha256_file(folder / n) for n in ("encoder.pth", "depth.pth")}}
        return Teacher(predict, identity)
    if ":" not in spec or (("/" in spec or os.sep in spec) and ".py:" not in spec):
        raise InputError(f"--teacher {spec}: no such weights folder, and not 'module:function'")
    fn = _load_callable(spec)

    def predict_callable(rgb: np.ndarray) -> np.ndarray:
        out = _to_2d(fn(rgb), spec)
        disp = depth_to_label(out) if output == "depth" else np.where(np.isfinite(out), out, np.nan)
        if disp.shape != rgb.shape[:2]:
            disp = resize_label(disp, rgb.shape[1], rgb.shape[0])
        return disp.astype(np.float32)

    return Teacher(predict_callable, {"teacher": spec, "kind": "callable"})


# ---------------------------------------------------------------------------------------------- inputs
def split_images(data_path: str | os.PathLike, split: str, dataset: str = "kitti", png: bool = False) -> list[Path]:
    """The target image (frame 0) of every line of a split: a split file, or a split folder's train_files.txt and
    val_files.txt (those that exist). ``dataset``: ``kitti``/``kitti_odom``/``kitti_depth`` (KITTI layouts,
    ``png``: .png frames) or ``video`` (extract_frames.py folders, ``<folder> <frame>`` lines)."""
    from monodepth2_geopt.splits import readlines, resolve_split_dir
    path = Path(split).expanduser()
    if path.is_file():
        files = [path]
    else:
        folder = resolve_split_dir(split)
        files = [folder / f"{n}_files.txt" for n in ("train", "val") if (folder / f"{n}_files.txt").is_file()]
        if not files:
            raise InputError(f"--split {split}: {folder} has no train_files.txt or val_files.txt")
    lines = [ln for f in files for ln in readlines(f) if ln.strip()]
    if not lines:
        raise InputError(f"--split {split}: no lines in {', '.join(map(str, files))}")
    if dataset == "video":
        from monodepth2_geopt.datasets.video_dataset import UncalibratedVideoDataset
        frames = UncalibratedVideoDataset(data_path, lines, 32, 32, frame_idxs=(0,), is_train=False)
        images = [frames.get_paths(i)[0] for i in range(len(frames))]
    else:
        from monodepth2_geopt.datasets import DATASETS
        from monodepth2_geopt.kitti_layout import parse_split_line
        if dataset not in DATASETS:
            raise InputError(f"--dataset {dataset}: choose one of {', '.join([*DATASETS, 'video'])}")
        ds = DATASETS[dataset](str(data_path), lines, 32, 32, [0], img_ext=".png" if png else ".jpg")
        images = [Path(ds.get_image_path(*parse_split_line(ln))) for ln in lines]
    unique = list(dict.fromkeys(images))
    missing = [p for p in unique if not p.is_file()]
    if missing:
        raise InputError(f"{len(missing)} of {len(unique)} images of --split {split} do not exist, e.g. {missing[0]} "
                         "(check --data_path, --dataset and --png)")
    return unique


def folder_images(data_path: str | os.PathLike, exclude: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Every frame image under ``data_path`` (one image format per folder, as ``UncalibratedVideoDataset`` reads
    them), skipping hidden folders, ground-truth folders of a KITTI tree and ``exclude`` (e.g. the output)."""
    from monodepth2_geopt.datasets.video_dataset import NON_FRAME_DIRS, _list_images, _natural_key
    root = Path(data_path).expanduser()
    if not root.is_dir():
        raise InputError(f"--data_path {root} is not a folder")
    skip = {os.path.abspath(p) for p in exclude}
    images = []
    for dirpath, dirnames, _ in os.walk(root, followlinks=True):
        dirnames[:] = sorted((d for d in dirnames if not d.startswith(".") and d not in NON_FRAME_DIRS
                              and os.path.abspath(os.path.join(dirpath, d)) not in skip), key=_natural_key)
        images += sorted(_list_images(Path(dirpath), None), key=lambda p: _natural_key(p.name))
    if not images:
        raise InputError(f"no images (*.jpg, *.jpeg, *.png) under --data_path {root}")
    return images


# ---------------------------------------------------------------------------------------------- the run
def check_manifest(out_dir: Path, manifest: dict, overwrite: bool) -> None:
    """Refuse an ``out_dir`` that holds another run's labels (another teacher, output kind or format), or files
    but no manifest, unless ``overwrite``."""
    if overwrite or not out_dir.exists():
        return
    old = read_manifest(out_dir)
    keys = ("teacher", "teacher_output", "format", "sha256")
    if old is None:
        if any(out_dir.iterdir()):
            raise InputError(f"--out_dir {out_dir} is not empty and has no {MANIFEST_NAME}: it holds something else; "
                             "choose another --out_dir or pass --overwrite")
        return
    diff = [k for k in keys if old.get(k) != manifest.get(k)]
    if diff:
        k = diff[0]
        raise InputError(f"--out_dir {out_dir} holds labels of another run ({k}: {old.get(k)!r}, now "
                         f"{manifest.get(k)!r}); pass --overwrite to replace them, or choose another --out_dir")


def make_pseudo_labels(teacher: Teacher, images: Sequence[Path], data_path: str | os.PathLike,
                       out_dir: str | os.PathLike, fmt: str = "png", teacher_output: str = "disp",
                       overwrite: bool = False, progress: bool = True, log=print) -> dict:
    """Write the label of every image (existing ones are skipped unless ``overwrite``); returns counts."""
    from tqdm import tqdm

    from monodepth2_geopt.kitti_layout import pil_loader
    if fmt not in LABEL_FORMATS:
        raise InputError(f"--format must be one of {LABEL_FORMATS}, got {fmt!r}")
    out_dir = Path(out_dir).expanduser()
    manifest = {"version": MANIFEST_VERSION, **teacher.identity, "teacher_output": teacher_output, "format": fmt,
                "data_path": str(Path(data_path).expanduser().resolve()),
                "encoding": ("16-bit PNG: 0 = no label, else disparity = m2g_disp_offset + m2g_disp_scale * "
                             "(value - 1) (text chunks)" if fmt == "png" else "float16 disparity, NaN = no label")}
    check_manifest(out_dir, manifest, overwrite)
    targets = [label_path(out_dir, data_path, image, fmt) for image in images]
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
    todo = [(image, target) for image, target in zip(images, targets) if overwrite or not target.is_file()]
    log(f"-> {len(images)} images, {len(images) - len(todo)} labels already there, writing {len(todo)} to {out_dir}")
    invalid = 0.0
    for image, target in tqdm(todo, desc="pseudo-labels", unit="img", disable=not progress, mininterval=1.0):
        rgb = np.asarray(pil_loader(image), dtype=np.uint8)
        try:
            disp = teacher.predict(rgb)
        except InputError:
            raise
        except Exception as err:
            raise InputError(f"--teacher {teacher.identity['teacher']} failed on {image} ({type(err).__name__}: "
                             f"{err})") from None
        if disp.shape != rgb.shape[:2]:
            raise InputError(f"--teacher {teacher.identity['teacher']}: a map of {disp.shape} for the image {image} "
                             f"of {rgb.shape[:2]}")
        invalid += float(np.mean(~np.isfinite(disp)))
        write_label(target, disp, fmt)
    if todo and invalid / len(todo) > 0.5:
        log(f"warning: on average {invalid / len(todo):.0%} of each label is invalid (NaN/inf or depth <= 0): "
            "is --teacher_output right?")
    return {"images": len(images), "written": len(todo), "skipped": len(images) - len(todo), "out_dir": str(out_dir)}


__all__ = ["LABEL_FORMATS", "TEACHER_OUTPUTS", "MANIFEST_NAME", "encode_label_png", "decode_label_png", "write_label",
           "read_label", "resize_label", "relative_image_path", "label_path", "read_manifest", "PseudoLabelStore",
           "missing_labels",
           "Teacher", "load_teacher", "depth_to_label", "split_images", "folder_images", "check_manifest",
           "make_pseudo_labels"]
