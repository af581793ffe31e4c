"""Depth prediction on images, folders and videos (``test_simple.py``), with your own or released weights.

The model is the Python API's ``DepthModel`` (``load_depth_model``); every file is at the input's own size.
Outputs go to ``--out_dir`` (default ``./test_simple_out`` in the working directory; ``--next_to_inputs`` for
Monodepth2's habit of writing beside each input):
- ``<name>_disp.jpeg``: magma colour map of the disparity (per image from its min to its 95th percentile, as
  Monodepth2; ``--fixed_range``: one range for a whole video or folder, so colours do not flicker);
- ``<name>_disp.npy``: Monodepth2's scaled disparity (``disp_to_depth``), float32 [1, 1, H, W]; with
  ``--pred_metric_depth`` (Monodepth2's flag) ``<name>_depth.npy`` instead: 5.4 x depth [1, 1, H, W];
- ``--save_depth``: ``<name>_depth.npy`` (float32 [1, 1, H, W]) and ``<name>_depth.png`` (uint16, KITTI's depth
  PNG: value / 256 = depth), metric (metres, x5.4) for stereo-trained models and relative for monocular ones;
- ``--save_ply``: ``<name>_points.ply``, a coloured point cloud (binary PLY) in the camera frame, in the same
  unit as the depth, with ``--intrinsics`` (default KITTI's normalised ones); its header comments give the scale;
- for a video (mp4/avi/mkv/mov/...): ``<name>_disp.mp4``, input | disparity side by side.
In folder mode files that look like outputs (``*_disp.*``, ``*_depth.*``, ``*_points.*``) are skipped, and an
unreadable image is reported and skipped; a single unreadable image is an error.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from urllib.error import URLError
from urllib.parse import quote
from urllib.request import urlopen

import numpy as np
from PIL import Image

from monodepth2_geopt.datasets.mono_dataset import KITTI_NORMALISED_K
from monodepth2_geopt.depth_model import DepthModel
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.fileio import atomic_path
from monodepth2_geopt.splits import refuse_existing
from monodepth2_geopt.visualize import colormap_disparity, disparity_range

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
DEFAULT_OUT_DIR = Path("test_simple_out")  # relative: in the working directory, never beside the inputs by default
OUTPUT_MARKERS = ("_disp", "_depth", "_points")  # stems of files this module writes end with one of these
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
# Prediction: files written per input


@dataclass(frozen=True)
class OutputOptions:
    """What ``test_simple.py`` writes per image besides ``<name>_disp.jpeg`` (see the module docstring).

    ``pred_metric_depth``: Monodepth2's flag, depth x 5.4 whatever the model (else metric only for stereo-trained
    models); ``intrinsics``: normalised (fx/W, fy/H, cx/W, cy/H) for the point cloud, default KITTI's;
    ``fixed_range``: None (Monodepth2's per-image colour range), ``()`` (the first image's or frame's range for
    all) or (near, far) depths in the output's unit mapped to the ends of the colour map.
    """
    pred_metric_depth: bool = False
    save_depth: bool = False
    save_ply: bool = False
    intrinsics: tuple[float, float, float, float] | None = None
    fixed_range: tuple[float, ...] | None = None

    @property
    def metric(self) -> bool | None:
        """``DepthModel``'s ``metric`` argument: forced by ``pred_metric_depth``, else the model's own."""
        return True if self.pred_metric_depth else None


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


def output_paths(path: Path, out_dir: Path, options: OutputOptions = OutputOptions()) -> list[Path]:
    """The files ``process_image`` / ``process_video`` write for the input ``path``."""
    if is_video(path):
        return [out_dir / f"{path.stem}_disp.mp4"]
    files = [out_dir / f"{path.stem}_disp.jpeg"]
    if not options.pred_metric_depth:
        files.append(out_dir / f"{path.stem}_disp.npy")
    if options.pred_metric_depth or options.save_depth:
        files.append(out_dir / f"{path.stem}_depth.npy")
    if options.save_depth:
        files.append(out_dir / f"{path.stem}_depth.png")
    if options.save_ply:
        files.append(out_dir / f"{path.stem}_points.ply")
    return files


class ColourRange:
    """The disparity range of the colour maps: per image (Monodepth2), the first image's, or fixed depths."""

    def __init__(self, model: DepthModel, options: OutputOptions):
        self.fixed = options.fixed_range is not None
        self.range: tuple[float, float] | None = None
        if options.fixed_range:
            near, far = options.fixed_range
            scale = model.depth_scale(options.metric)
            self.range = (scale / far, scale / near)  # scaled disparity = scale / depth

    def __call__(self, scaled_disp: np.ndarray) -> tuple[float, float] | None:
        if self.fixed and self.range is None:
            self.range = disparity_range(scaled_disp)
        return self.range


def process_image(model: DepthModel, path: Path, out_dir: Path, options: OutputOptions = OutputOptions(),
                  colour_range: ColourRange | None = None) -> list[Path]:
    """Write ``output_paths(path, out_dir, options)`` for one image, all at the image's own size; return them."""
    from monodepth2_geopt.kitti_layout import write_depth_png
    from monodepth2_geopt.pointcloud import point_cloud, write_ply

    image = _open_image(path)
    disp = model.infer_image(image, output="disp")  # [H, W] scaled disparity at the input's size
    depth = model.depth_scale(options.metric) / disp
    written = []
    for target in output_paths(path, out_dir, options):
        with atomic_path(target) as tmp:
            if target.name.endswith("_disp.jpeg"):
                vrange = colour_range(disp) if colour_range is not None else None
                Image.fromarray(colormap_disparity(disp, vrange=vrange)).save(tmp, format="JPEG", quality=95)
            elif target.name.endswith("_disp.npy"):
                np.save(tmp, disp[None, None])  # Monodepth2's layout [1, 1, H, W]
            elif target.name.endswith("_depth.npy"):
                np.save(tmp, depth[None, None].astype(np.float32))
            elif target.name.endswith("_depth.png"):
                write_depth_png(tmp, depth)  # KITTI's uint16: value / 256 = depth
            elif target.name.endswith("_points.ply"):
                k = options.intrinsics or KITTI_NORMALISED_K
                points, colours = point_cloud(depth, np.asarray(image), k)
                write_ply(tmp, points, colours, ply_comments(model, options, path, k, image.size))
        written.append(target)
    return written


def ply_comments(model: DepthModel, options: OutputOptions, path: Path, k, size: tuple[int, int]) -> list[str]:
    """The PLY header's comments: source, scale (metric x5.4 or relative), frame and intrinsics."""
    source = "--intrinsics" if options.intrinsics else "KITTI's default (pass --intrinsics for other cameras)"
    return [f"monodepth2-geopt test_simple.py: point cloud of {path.name} ({size[0]}x{size[1]}) from {model.source}",
            f"scale: {model.describe_scale(options.metric)}",
            "frame: camera, x right, y down, z forward (OpenCV/KITTI); z = depth",
            f"intrinsics (normalised fx/W fy/H cx/W cy/H): {' '.join(f'{v:g}' for v in k)} from {source}"]


def process_video(model: DepthModel, path: Path, out_dir: Path, options: OutputOptions = OutputOptions()) -> Path:
    """Write ``<name>_disp.mp4``: each frame and its disparity colour map side by side (H.264 or MPEG-4)."""
    import av
    from tqdm import tqdm

    from monodepth2_geopt.depth_model import video_frame_rate

    target = out_dir / f"{path.stem}_disp.mp4"
    rate, total = video_frame_rate(path)
    colour_range = ColourRange(model, options)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with atomic_path(target) as tmp:  # keeps the .mp4 suffix: PyAV picks the container from it
        with av.open(str(tmp), mode="w") as dst:
            stream_out = None
            for frame, disp in tqdm(model.infer_video(path, output="disp"), total=total, desc=path.name,
                                    unit="frame"):
                h, w = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2  # yuv420p needs even sizes
                colours = colormap_disparity(disp, vrange=colour_range(disp))
                panel = np.ascontiguousarray(np.concatenate([frame[:h, :w], colours[:h, :w]], 1))
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


def _summarise(written: list[Path], limit: int = 20) -> list[str]:
    """The lines naming the files written (all of them up to ``limit``, then the first half and a count)."""
    if len(written) <= limit:
        return [f"   {p}" for p in written]
    shown = written[:limit // 2]
    return [f"   {p}" for p in shown] + [f"   ... and {len(written) - len(shown)} more in {written[-1].parent}"]


def run_inference(image_path: str | Path, load_weights_folder: str | Path | None = None,
                  model_name: str | None = None, ext: str = "jpg", no_cuda: bool = False,
                  pred_metric_depth: bool = False, output_dir: str | Path | None = None,
                  models_dir: str | Path = DEFAULT_MODELS_DIR, log: Log = print, overwrite: bool = False,
                  save_depth: bool = False, save_ply: bool = False, intrinsics=None, fixed_range=None,
                  next_to_inputs: bool = False) -> list[Path]:
    """Predict depth for an image, a folder of images or a video; returns the files written.

    Outputs go to ``output_dir`` (default ``./test_simple_out``, in the working directory), or next to each input
    with ``next_to_inputs`` (Monodepth2's behaviour). Outputs that already exist are refused (before the model
    loads) unless ``overwrite``; each file is written atomically. The other arguments are ``OutputOptions``'.
    """
    from tqdm import tqdm

    from monodepth2_geopt.intrinsics import check_intrinsics
    from monodepth2_geopt.model_loading import load_depth_model
    from monodepth2_geopt.utils import pick_device

    if next_to_inputs and output_dir:
        raise InputError("pass either --out_dir or --next_to_inputs, not both")
    if fixed_range and (len(fixed_range) != 2 or not 0 < fixed_range[0] < fixed_range[1]):
        raise InputError(f"--fixed_range {' '.join(map(str, fixed_range))}: give no value (the first frame's "
                         "range) or NEAR FAR depths with 0 < NEAR < FAR")
    options = OutputOptions(pred_metric_depth, save_depth, save_ply,
                            check_intrinsics(intrinsics) if intrinsics is not None else None,
                            tuple(fixed_range) if fixed_range is not None else None)
    if load_weights_folder:
        folder = Path(load_weights_folder).expanduser()
    elif model_name:
        folder = released_model_folder(model_name, models_dir, log=log)
    else:
        raise InputError("pass --load_weights_folder <weights folder> or --model_name <released model>")
    inputs = list_inputs(image_path, ext)
    device = pick_device(no_cuda)
    model = load_depth_model(folder, device)  # a bad weights folder is named first
    out_dirs = [path.parent if next_to_inputs else Path(output_dir or DEFAULT_OUT_DIR).expanduser()
                for path in inputs]
    refuse_existing([p for path, out_dir in zip(inputs, out_dirs) for p in output_paths(path, out_dir, options)],
                    overwrite)
    log(f"-> Loaded ResNet-{model.meta['num_layers']} model from {folder} ({model.width}x{model.height}, {device})")
    if pred_metric_depth and not model.use_stereo:
        warnings.warn("--pred_metric_depth assumes a stereo-trained model (x5.4); this model was not trained "
                      "with stereo, so the depths are not metric", stacklevel=2)
    if save_depth or save_ply or pred_metric_depth:
        log(f"-> Depth: {model.describe_scale(options.metric)}")
    if save_ply and options.intrinsics is None:
        log(f"-> Point clouds with KITTI's normalised intrinsics {' '.join(map(str, KITTI_NORMALISED_K))} "
            "(right for KITTI frames only; pass --intrinsics FX FY CX CY for your camera)")
    if any(map(is_video, inputs)) and (save_depth or save_ply or pred_metric_depth):
        log("-> Videos give the side-by-side mp4 only (--save_depth, --save_ply and --pred_metric_depth are "
            "per image: extract the frames first)")
    folder_mode = Path(image_path).expanduser().is_dir()
    colour_range = ColourRange(model, options)  # shared by a folder's images
    written: list[Path] = []
    for path, out_dir in tqdm(list(zip(inputs, out_dirs)), desc="predicting", unit="image",
                              disable=not folder_mode or len(inputs) < 2):
        try:
            if is_video(path):
                written.append(process_video(model, path, out_dir, options))
            else:
                written.extend(process_image(model, path, out_dir, options, colour_range))
        except InputError as err:
            if not folder_mode:
                raise
            warnings.warn(f"skipped: {err}", stacklevel=2)
    log(f"-> Wrote {len(written)} file{'' if len(written) == 1 else 's'}" + (":" if written else ""))
    for line in _summarise(written):
        log(line)
    return written


__all__ = ["RELEASED_MODELS", "MODEL_URL", "DEFAULT_MODELS_DIR", "DEFAULT_OUT_DIR", "download_released_model",
           "released_model_folder", "OutputOptions", "is_own_output", "list_inputs", "process_image",
           "process_video", "output_paths", "run_inference"]
