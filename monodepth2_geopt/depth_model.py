"""``DepthModel``: a trained depth network as one object (the Python API, in the style of Depth-Anything-V2).

    from monodepth2_geopt import load_depth_model
    model = load_depth_model("models/mono+stereo_640x192", device="cpu")
    depth = model.infer_image(rgb)                # rgb: uint8 [H, W, 3] RGB -> float32 [H, W] at the same size
    depths = model.infer_images([rgb1, rgb2])     # any sizes, batched
    for frame, depth in model.infer_video("drive.mp4"): ...

Conventions:
- ``forward(x)``: x is RGB in [0, 1], float [B, 3, height, width] at the checkpoint's size (``model.height``,
  ``model.width``); it returns Monodepth2's scale-0 sigmoid disparity, [B, 1, height, width] in (0, 1). This is
  the network that ``export.py`` writes to ONNX / TorchScript.
- Depth is Monodepth2's ``disp_to_depth`` with the checkpoint's ``--min_depth`` / ``--max_depth`` (``opt.json``
  beside the weights folder; Monodepth2's 0.1 / 100 without it), then:
  - **metric** (metres) for a model trained with stereo (``use_stereo`` in ``encoder.pth``: S and MS):
    depth x 5.4, Monodepth2's ``STEREO_SCALE_FACTOR`` (KITTI's 0.54 m baseline over the 0.1 used in training);
  - **relative** for a monocular (M) model: the network's own units, true depth = s x depth with an unknown s per
    image. Nothing is median-scaled here (Monodepth2's evaluation finds s from ground truth).
  ``model.is_metric`` says which; ``metric=True/False`` overrides it (``--pred_metric_depth`` forces x5.4).
- The ``infer_*`` methods resize the input to the network size as Monodepth2 (Pillow LANCZOS), predict, upsample
  the disparity back to the input size (bilinear, ``align_corners=False``, as Monodepth2's ``test_simple.py``) and
  then convert it. They take RGB (not OpenCV's BGR: pass ``bgr[..., ::-1]``) uint8 [H, W, 3] arrays or PIL images.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from monodepth2_geopt.errors import InputError
from monodepth2_geopt.geometry import disp_to_depth
from monodepth2_geopt.kitti_layout import resize_image, to_uint8_tensor
from monodepth2_geopt.metrics import STEREO_SCALE_FACTOR

# Monodepth2's training defaults (--min_depth/--max_depth), used when the weights have no opt.json.
DEFAULT_MIN_DEPTH, DEFAULT_MAX_DEPTH = 0.1, 100.0
# Monodepth2's input size, for checkpoints without height/width metadata.
DEFAULT_HEIGHT, DEFAULT_WIDTH = 192, 640

Output = Literal["depth", "disp"]


def as_rgb_image(image) -> Image.Image:
    """A uint8 [H, W, 3] RGB array or a PIL image as an RGB PIL image; anything else is an InputError."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"expected an RGB image as a uint8 [H, W, 3] array, got {image.dtype} {image.shape}")
        return Image.fromarray(np.ascontiguousarray(image))
    raise InputError(f"expected a uint8 [H, W, 3] RGB array or a PIL image, got {type(image).__name__}")


class DepthModel(nn.Module):
    """Monodepth2's depth network (ResNet encoder + disparity decoder) with its checkpoint's metadata.

    Attributes: ``encoder``, ``decoder``, ``meta`` (``height``, ``width``, ``use_stereo``, ``num_layers`` as read
    from ``encoder.pth``), ``min_depth`` / ``max_depth`` (training options) and ``source`` (the weights folder).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, meta: dict, min_depth: float = DEFAULT_MIN_DEPTH,
                 max_depth: float = DEFAULT_MAX_DEPTH, source: str | Path | None = None):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.meta = dict(meta)
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.source = source

    # ------------------------------------------------------------------ metadata
    @property
    def height(self) -> int:
        return int(self.meta.get("height", DEFAULT_HEIGHT))

    @property
    def width(self) -> int:
        return int(self.meta.get("width", DEFAULT_WIDTH))

    @property
    def use_stereo(self) -> bool:
        return bool(self.meta.get("use_stereo", False))

    @property
    def is_metric(self) -> bool:
        """True when depths are in metres (a stereo-trained model, x5.4); False: relative (monocular)."""
        return self.use_stereo

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def depth_scale(self, metric: bool | None = None) -> float:
        """The factor from network depth to output depth: 5.4 when metric (default: ``is_metric``), else 1."""
        return STEREO_SCALE_FACTOR if (self.is_metric if metric is None else metric) else 1.0

    def describe_scale(self, metric: bool | None = None) -> str:
        """One line naming the unit of the depths this model returns (for file headers and logs)."""
        if metric is None or metric == self.is_metric:
            if self.is_metric:
                return "metric depth in metres (stereo-trained model: network depth x 5.4)"
            return ("relative depth in the network's units (monocular model; not median-scaled: true depth = s x "
                    "depth for an unknown s)")
        if metric:
            return ("network depth x 5.4 as asked; NOT metric: this model was not trained with stereo")
        return "network depth (x5.4 not applied), relative"

    # ------------------------------------------------------------------ the network
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] [B, 3, height, width] -> scale-0 sigmoid disparity [B, 1, height, width]."""
        return self.decoder(self.encoder(image))[("disp", 0)]

    def scaled_disparity(self, disp: torch.Tensor) -> torch.Tensor:
        """Sigmoid disparity -> Monodepth2's scaled disparity in [1 / max_depth, 1 / min_depth] (what its
        ``_disp.npy`` files hold)."""
        return disp_to_depth(disp, self.min_depth, self.max_depth)[0]

    def depth(self, disp: torch.Tensor, metric: bool | None = None) -> torch.Tensor:
        """Sigmoid disparity -> depth (metres when ``metric``, default ``is_metric``; else network units)."""
        return self.depth_scale(metric) / self.scaled_disparity(disp)

    # ------------------------------------------------------------------ images in, arrays out
    def prepare(self, images: Sequence) -> torch.Tensor:
        """Images (uint8 [H, W, 3] RGB arrays or PIL images, any sizes) -> [B, 3, height, width] in [0, 1] on
        the model's device, resized with Pillow's LANCZOS as Monodepth2."""
        batch = [to_uint8_tensor(resize_image(as_rgb_image(im), self.width, self.height)) for im in images]
        return torch.stack(batch).to(self.device).float().div_(255.0)

    def _check_finite(self, disp: torch.Tensor) -> None:
        finite = torch.isfinite(disp)
        if not bool(finite.all()):
            raise InputError(f"{self.source or 'the model'}: the prediction has non-finite values "
                             f"({1 - float(finite.float().mean()):.0%} of pixels), so the weights are broken (a "
                             "diverged run?); nothing was written")

    def _finish(self, disp: torch.Tensor, size: tuple[int, int], output: Output, metric: bool | None) -> np.ndarray:
        """One [1, 1, h, w] sigmoid disparity -> float32 [H, W] ``output`` at ``size`` = (H, W)."""
        disp = F.interpolate(disp.float(), size=size, mode="bilinear", align_corners=False)
        out = self.scaled_disparity(disp) if output == "disp" else self.depth(disp, metric)
        return out[0, 0].cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def infer_images(self, images: Iterable, output: Output = "depth", metric: bool | None = None,
                     batch_size: int = 8) -> list[np.ndarray]:
        """``infer_image`` for many images of any sizes, ``batch_size`` at a time; one [H, W] array per image."""
        if output not in ("depth", "disp"):
            raise InputError(f"output must be 'depth' or 'disp', got {output!r}")
        images = [as_rgb_image(im) for im in images]
        results = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            disp = self(self.prepare(chunk))
            self._check_finite(disp)
            results += [self._finish(d[None], (im.size[1], im.size[0]), output, metric) for d, im in zip(disp, chunk)]
        return results

    def infer_image(self, image, output: Output = "depth", metric: bool | None = None) -> np.ndarray:
        """Depth (or with ``output="disp"`` Monodepth2's scaled disparity) of one RGB image, float32 [H, W] at the
        image's own size. Metric (metres) for stereo-trained models, relative for monocular ones
        (``is_metric``; see the module docstring); ``metric`` overrides."""
        return self.infer_images([image], output, metric, batch_size=1)[0]

    def infer_video(self, path: str | Path, output: Output = "depth", metric: bool | None = None,
                    batch_size: int = 4) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(frame, prediction) for every frame of a video (anything PyAV decodes): the uint8 [H, W, 3] RGB frame
        and its float32 [H, W] depth (or disparity), predicted ``batch_size`` frames at a time."""
        frames: list[np.ndarray] = []
        for frame in iter_video_frames(path):
            frames.append(frame)
            if len(frames) == batch_size:
                yield from zip(frames, self.infer_images(frames, output, metric, batch_size))
                frames = []
        if frames:
            yield from zip(frames, self.infer_images(frames, output, metric, batch_size))


# ---------------------------------------------------------------------------------------------- video
def video_frame_rate(path: str | Path) -> tuple[Fraction, int | None]:
    """(frame rate, number of frames or None) of a video's first video stream."""
    import av

    with _open_video(path, av) as src:
        stream = src.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        return Fraction(rate), (stream.frames or None)


def iter_video_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of a video's first video stream as uint8 [H, W, 3] RGB arrays."""
    import av

    with _open_video(path, av) as src:
        any_frame = False
        for frame in src.decode(src.streams.video[0]):
            any_frame = True
            yield frame.to_ndarray(format="rgb24")
        if not any_frame:
            raise InputError(f"{path} has no decodable frames")


def _open_video(path: str | Path, av):
    try:
        src = av.open(str(path))
    except Exception as err:
        raise InputError(f"cannot open video {path} ({type(err).__name__}: {err})") from None
    if not src.streams.video:
        src.close()
        raise InputError(f"{path} has no video stream")
    return src


__all__ = ["DepthModel", "as_rgb_image", "iter_video_frames", "video_frame_rate", "DEFAULT_MIN_DEPTH",
           "DEFAULT_MAX_DEPTH"]
