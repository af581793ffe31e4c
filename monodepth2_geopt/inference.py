"""Depth prediction on images, folders and videos (``test_simple.py``), with your own or released weights.

Outputs, next to each input unless an output folder is given:
- ``<name>_disp.jpeg``: magma colour map of the disparity (vmax = 95th percentile), at the input's size;
- ``<name>_disp.npy``: the scaled disparity (``disp_to_depth``) at network resolution, [1, 1, H, W], or
  with ``pred_metric_depth`` ``<name>_depth.npy``: 5.4 x depth, metric for stereo-trained models;
- for a video (mp4/avi/mkv/mov/...): ``<name>_disp.mp4``, input | disparity side by side.
In folder mode files that look like outputs (``*_disp.*``, ``*_depth.npy``) are skipped, and an unreadable
image is reported and skipped; a single unreadable image is an error.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from urllib.error import URLError
from urllib.parse import quote
from urllib.request import urlopen

import numpy as np
import torch
from PIL import Image

from monodepth2_geopt.errors import InputError
from monodepth2_geopt.geometry import disp_to_depth
from monodepth2_geopt.metrics import STEREO_SCALE_FACTOR
from monodepth2_geopt.fileio import atomic_path
from monodepth2_geopt.kitti_layout import resize_image, to_uint8_tensor
from monodepth2_geopt.splits import refuse_existing
from monodepth2_geopt.visualize import colorize_disparity

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS_DIR = REPO_ROOT / "models"
MODEL_URL = "https://storage.googleapis.com/niantic-lon-static/research/monodepth2/{}.zip"
# Released Monodepth2 models -> MD5 of the zip as published in Monodepth2's utils.py (None: the README links
# these zips but no checksum was published; they are downloaded over HTTPS and their SHA-256 is printed).
RELEASED_MODELS: dict[str, str | None] = {
    "mono_640x192": "a964b8356e08a02d009609d9e3928f7c",
    "stereo_640x192": "3dfb76bcff0786e4ec07ac00f658dd07",
    "mono+stereo_640x192": "c024d69012485ed05d7eaa9617a96b81",
    "mono_no_pt_640x192": "9c2f071e35027c895a4728358ffc913a",
    "stereo_no_pt_640x192": "41ec2de112905f85541ac33a854742d1",
    "mono+stereo_no_pt_640x192": "46c3b824f541d143a45c37df65fbab0a",
    "mono_1024x320": "0ab0766efdfeea89a0d9ea8ba90e1e63",
    "stereo_1024x320": "afc2f2126d70cf3fdf26b550898b501a",
    "mono+stereo_1024x320": "cdc5fc9b23513c07d5b19235d9ef08f7",
    "mono_odom_640x192": None,
    "mono+stereo_odom_640x192": None,
    "mono_resnet50_640x192": None,
    "mono_resnet50_no_pt_640x192": None,
}
# Monodepth2's training defaults (--min_depth/--max_depth), used when the weights have no opt.json.
DEFAULT_MIN_DEPTH, DEFAULT_MAX_DEPTH = 0.1, 100.0
OUTPUT_MARKERS = ("_disp", "_depth")  # stems of files this module writes end with one of these
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm")

Log = Callable[[str], None]


# ------------------------------------------------------------------------------------------------------
# Released models


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_released_model(name: str, dest: Path, timeout: float = 30.0, log: Log = print) -> Path:
    """Download and unzip Niantic's ``<name>.zip`` into ``dest`` (MD5-checked when a checksum is published)."""
    url = MODEL_URL.format(quote(name))  # "+" must be sent as %2B
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{name}.") as tmp:
        archive = Path(tmp) / f"{name}.zip"
        log(f"-> Downloading {url}")
        with urlopen(url, timeout=timeout) as response, open(archive, "wb") as f:
            shutil.copyfileobj(response, f)
        expected = RELEASED_MODELS[name]
        if expected is not None and _md5(archive) != expected:
            raise InputError(f"MD5 mismatch for {url}: got {_md5(archive)}, expected {expected}; "
                             "nothing was installed (try again)")
        if expected is None:
            sha = hashlib.sha256(archive.read_bytes()).hexdigest()
            log(f"   no published checksum for {name}; SHA-256 of the download: {sha}")
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(unpacked)
        found = sorted(p.parent for p in unpacked.rglob("encoder.pth"))
        if not found:
            raise InputError(f"{url} does not contain encoder.pth")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(found[0], dest)
    return dest


def released_model_folder(name: str, models_dir: str | Path = DEFAULT_MODELS_DIR, download: bool = True,
                          timeout: float = 30.0, log: Log = print) -> Path:
    """``<models_dir>/<name>`` holding encoder.pth and depth.pth; downloaded first when missing (if online)."""
    if name not in RELEASED_MODELS:
        raise InputError(f"unknown --model_name {name!r}; choose one of {', '.join(RELEASED_MODELS)} or pass "
                         "--load_weights_folder for your own weights")
    folder = Path(models_dir) / name
    if (folder / "encoder.pth").is_file() and (folder / "depth.pth").is_file():
        return folder
    where = (f"download {MODEL_URL.format(quote(name))} on a machine with internet access and unzip it so that "
             f"{folder / 'encoder.pth'} and {folder / 'depth.pth'} exist")
    if not download:
        raise InputError(f"model {name} is not in {folder}: {where}")
    try:
        return download_released_model(name, folder, timeout, log)
    except (URLError, OSError, zipfile.BadZipFile) as err:
        raise InputError(f"model {name} is not in {folder} and could not be downloaded "
                         f"({getattr(err, 'reason', err)}): {where}") from None


# ------------------------------------------------------------------------------------------------------
# Prediction


def _depth_range(weights_folder: Path) -> tuple[float, float]:
    # train.py writes models/opt.json next to the weights_<epoch> folders.
    opt_json = weights_folder.parent / "opt.json"
    try:
        opt = json.loads(opt_json.read_text())
        return float(opt["min_depth"]), float(opt["max_depth"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_MIN_DEPTH, DEFAULT_MAX_DEPTH


class DepthPredictor:
    """A depth model from a weights folder; ``predict`` turns a PIL image into a scaled disparity map."""

    def __init__(self, weights_folder: str | Path, device: torch.device | str = "cpu"):
        from monodepth2_geopt.model_loading import load_depth_model

        self.weights_folder = Path(weights_folder)
        self.device = torch.device(device)
        self.encoder, self.decoder, self.meta = load_depth_model(self.weights_folder, self.device)
        self.height = int(self.meta.get("height", 192))
        self.width = int(self.meta.get("width", 640))
        self.min_depth, self.max_depth = _depth_range(self.weights_folder)
        self.use_stereo = bool(self.meta.get("use_stereo", False))

    @torch.no_grad()
    def predict(self, image: Image.Image) -> np.ndarray:
        """Scaled disparity [1, 1, H, W] at network resolution (float32)."""
        x = (to_uint8_tensor(resize_image(image.convert("RGB"), self.width, self.height)).float() / 255.0)[None]
        disp = self.decoder(self.encoder(x.to(self.device)))[("disp", 0)]
        scaled, _ = disp_to_depth(disp, self.min_depth, self.max_depth)
        out = scaled.float().cpu().numpy()
        finite = np.isfinite(out)
        if not finite.all():
            raise InputError(f"{self.weights_folder}: the prediction has non-finite values "
                             f"({1 - finite.mean():.0%} of pixels), so the weights are broken (a "
                             "diverged run?); nothing was written")
        return out

    def metric_depth(self, scaled_disp: np.ndarray) -> np.ndarray:
        """5.4 / scaled disparity: metric depth for stereo-trained models."""
        return STEREO_SCALE_FACTOR / scaled_disp


def is_own_output(path: str | Path) -> bool:
    """Files this module writes (``x_disp.jpeg``, ``x_disp.npy``, ``x_depth.npy``, ``x_disp.mp4``...)."""
    return Path(path).stem.endswith(OUTPUT_MARKERS)


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def list_inputs(image_path: str | Path, ext: str = "jpg") -> list[Path]:
    """A single file, or a folder's ``*.<ext>`` files (case-insensitive, sorted) minus our own outputs."""
    path = Path(image_path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"--image_path {path} is neither a file nor a folder")
    suffix = "." + ext.lower().lstrip(".")
    files = sorted(p for p in path.iterdir()
                   if p.is_file() and p.suffix.lower() == suffix and not is_own_output(p))
    if not files:
        raise InputError(f"no *.{ext.lstrip('.')} files in {path} other than this script's own outputs "
                         "(set --ext to the images' extension)")
    return files


def _open_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except Exception as err:
        raise InputError(f"cannot read image {path} ({type(err).__name__}: {err})") from None


def process_image(predictor: DepthPredictor, path: Path, out_dir: Path, pred_metric_depth: bool = False
                  ) -> list[Path]:
    """Write ``<name>_disp.jpeg`` and ``<name>_disp.npy`` (or ``<name>_depth.npy``); return their paths."""
    image = _open_image(path)
    disp = predictor.predict(image)
    jpeg, npy = output_paths(path, out_dir, pred_metric_depth)
    with atomic_path(npy) as tmp:
        np.save(tmp, predictor.metric_depth(disp) if pred_metric_depth else disp)
    with atomic_path(jpeg) as tmp:
        Image.fromarray(colorize_disparity(disp, image.size)).save(tmp, format="JPEG", quality=95)
    return [jpeg, npy]


def output_paths(path: Path, out_dir: Path, pred_metric_depth: bool = False) -> list[Path]:
    """The files ``process_image`` / ``process_video`` write for the input ``path``."""
    if is_video(path):
        return [out_dir / f"{path.stem}_disp.mp4"]
    return [out_dir / f"{path.stem}_disp.jpeg", out_dir / f"{path.stem}_{'depth' if pred_metric_depth else 'disp'}.npy"]


def process_video(predictor: DepthPredictor, path: Path, out_dir: Path, log: Log = print) -> Path:
    """Write ``<name>_disp.mp4``: each frame and its disparity colour map side by side (H.264 or MPEG-4)."""
    import av
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{path.stem}_disp.mp4"
    try:
        src = av.open(str(path))
    except Exception as err:
        raise InputError(f"cannot open video {path} ({type(err).__name__}: {err})") from None
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with atomic_path(target) as tmp:  # keeps the .mp4 suffix: PyAV picks the container from it
        with src:
            if not src.streams.video:
                raise InputError(f"{path} has no video stream")
            stream_in = src.streams.video[0]
            rate = stream_in.average_rate or stream_in.guessed_rate or Fraction(25)
            total = stream_in.frames or None
            with av.open(str(tmp), mode="w") as dst:
                stream_out = None
                for frame in tqdm(src.decode(stream_in), total=total, desc=path.name, unit="frame"):
                    image = frame.to_image()
                    w, h = image.size[0] // 2 * 2, image.size[1] // 2 * 2  # yuv420p needs even sizes
                    image = image.crop((0, 0, w, h))
                    panel = np.concatenate([np.asarray(image), colorize_disparity(predictor.predict(image), (w, h))], 1)
                    if stream_out is None:
                        stream_out = dst.add_stream(codec, rate=Fraction(rate).limit_denominator(100000))
                        stream_out.width, stream_out.height, stream_out.pix_fmt = 2 * w, h, "yuv420p"
                    for packet in stream_out.encode(av.VideoFrame.from_ndarray(panel, format="rgb24")):
                        dst.mux(packet)
                if stream_out is None:
                    raise InputError(f"{path} has no decodable frames")
                for packet in stream_out.encode(None):
                    dst.mux(packet)
    return target


def run_inference(image_path: str | Path, load_weights_folder: str | Path | None = None,
                  model_name: str | None = None, ext: str = "jpg", no_cuda: bool = False,
                  pred_metric_depth: bool = False, output_dir: str | Path | None = None,
                  models_dir: str | Path = DEFAULT_MODELS_DIR, log: Log = print, overwrite: bool = False
                  ) -> list[Path]:
    """Predict depth for an image, a folder of images or a video; returns the files written.

    Outputs that already exist are refused (before the model loads) unless ``overwrite``; each file is
    written atomically.
    """
    from tqdm import tqdm

    from monodepth2_geopt.utils import pick_device

    if load_weights_folder:
        folder = Path(load_weights_folder).expanduser()
    elif model_name:
        folder = released_model_folder(model_name, models_dir, log=log)
    else:
        raise InputError("pass --load_weights_folder <weights folder> or --model_name <released model>")
    inputs = list_inputs(image_path, ext)
    device = pick_device(no_cuda)
    predictor = DepthPredictor(folder, device)  # a bad weights folder is named first
    out_dirs = [Path(output_dir).expanduser() if output_dir else path.parent for path in inputs]
    refuse_existing([p for path, out_dir in zip(inputs, out_dirs)
                     for p in output_paths(path, out_dir, pred_metric_depth)], overwrite)
    log(f"-> Loaded ResNet-{predictor.meta['num_layers']} model from {folder} "
        f"({predictor.width}x{predictor.height}, {device})")
    if pred_metric_depth and not predictor.use_stereo:
        warnings.warn("--pred_metric_depth assumes a stereo-trained model (x5.4); this model was not trained "
                      "with stereo, so the depths are not metric", stacklevel=2)
    folder_mode = Path(image_path).expanduser().is_dir()
    written: list[Path] = []
    for path, out_dir in tqdm(list(zip(inputs, out_dirs)), desc="predicting", unit="image",
                              disable=not folder_mode or len(inputs) < 2):
        try:
            if is_video(path):
                written.append(process_video(predictor, path, out_dir, log))
            else:
                written.extend(process_image(predictor, path, out_dir, pred_metric_depth))
        except InputError as err:
            if not folder_mode:
                raise
            warnings.warn(f"skipped: {err}", stacklevel=2)
    log(f"-> Wrote {len(written)} files")
    return written


__all__ = ["RELEASED_MODELS", "MODEL_URL", "DEFAULT_MODELS_DIR", "download_released_model",
           "released_model_folder", "DepthPredictor", "is_own_output", "list_inputs",
           "process_image", "process_video", "output_paths", "run_inference"]
