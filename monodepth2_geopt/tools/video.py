"""Frame extraction from uncalibrated (internet) videos for GeoPt flow pretraining.

Turns video files (anything PyAV/FFmpeg decodes: mp4, avi, mkv, mov, webm, ...) into a frame
tree that :class:`datasets.video_dataset.UncalibratedVideoDataset` reads directly::

    <out>/<name>/000000.jpg, 000001.jpg, ...          # a video with a single segment
    <out>/<name>_seg00/000000.jpg, ...                 # a video split at scene cuts
    <out>/<name>_seg01/000000.jpg, ...
    <out>/train_files.txt                              # "<folder> <frame_index>" lines
    <out>/val_files.txt                                # only when val_fraction > 0
    <out>/extraction_summary.json                      # per video: counts, cut times, segments

Per video, in decoding order:

1. trimming: only frames with ``start <= t < end`` (seconds from the first frame's timestamp);
2. fps resampling by timestamps: for each target time ``start + k / fps`` the decoded frame whose
   timestamp interval contains it is taken (never upsampled: ``fps >=`` source rate keeps all frames);
3. scene cuts are detected between *consecutive decoded frames* (at the native frame rate, so a low
   target fps does not turn fast motion into false cuts) on a 64-pixel-wide grey thumbnail: a cut is a
   mean absolute grey difference ``>= cut_threshold`` (0-255 scale) or a 32-bin grey-histogram
   distance (half L1, in [0, 1]) ``>= cut_hist_threshold``. The first sampled frame after a cut opens
   a new segment, so no triplet ever spans a cut;
4. static frames are dropped: a sampled frame whose mean absolute thumbnail difference to the last
   *kept* frame is ``< static_threshold`` is skipped (so kept frames always differ by a minimum amount);
5. kept frames are resized (``width``/``height``/``max_side``, aspect preserving by default) and written
   as consecutive ``%06d`` images; segments shorter than ``min_segment_frames`` (default ``2*stride+1``,
   the minimum that yields one training triplet) are discarded.

Frames are written to hidden staging folders (``<out>/.<name>.partNN``) and renamed when the video is
done, so an interrupted run never leaves half-written folders that look like data.

All user-facing failures raise :class:`VideoExtractionError` with a one-line message; ``extract_frames.py``
(the command line: its parser and ``main``) prints it and exits with status 2.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.fileio import atomic_write_text
from monodepth2_geopt.kitti_layout import format_split_line, write_split_file
from monodepth2_geopt.splits import refuse_existing

try:  # PyAV is a hard dependency of extraction only; keep the module importable without it.
    import av
except ImportError:  # pragma: no cover - exercised only on broken installs
    av = None

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoExtractionError",
    "ExtractOptions",
    "SegmentResult",
    "VideoResult",
    "ExtractionSummary",
    "find_videos",
    "probe_video",
    "grey_thumbnail",
    "mean_abs_difference",
    "histogram_distance",
    "output_size",
    "split_entries",
    "write_split_files",
    "extract_video",
    "extract_videos",
]

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".flv", ".wmv",
     ".ts", ".mts", ".m2ts", ".3gp", ".ogv", ".vob", ".y4m"}
)
STILL_IMAGE_FORMATS = frozenset({"image2", "jpeg_pipe", "png_pipe", "bmp_pipe", "tiff_pipe", "webp_pipe"})
THUMB_WIDTH = 64
HIST_BINS = 32
IMAGE_EXTENSIONS = ("jpg", "png")


LIST_FILES = ("train_files.txt", "val_files.txt", "extraction_summary.json")  # written by extract_videos


class VideoExtractionError(InputError, RuntimeError):
    """A user-facing extraction failure (missing input, undecodable file, bad option...)."""


# --------------------------------------------------------------------------------------------------
# options and results
# --------------------------------------------------------------------------------------------------
@dataclass
class ExtractOptions:
    """Options of :func:`extract_video` / :func:`extract_videos` (see the module docstring)."""

    fps: float | None = None                 # target frame rate (None: keep the source rate)
    start: float = 0.0                       # seconds
    end: float | None = None                 # seconds, exclusive (None: until the end)
    width: int | None = None                 # output width (height follows unless also given)
    height: int | None = None                # output height
    max_side: int | None = None              # downscale so that max(w, h) <= max_side (never upscales)
    keep_aspect: bool = True                 # with width AND height: fit inside the box (False: stretch)
    static_threshold: float = 1.0            # drop if mean |grey diff| to the last kept frame < this; 0: off
    cut_threshold: float = 30.0              # mean |grey diff| between consecutive frames that marks a cut; 0 disables
    cut_hist_threshold: float = 0.5          # grey histogram distance (0..1) that marks a cut; 0 disables
    stride: int = 1                          # neighbour offset used for the split lists
    min_segment_frames: int | None = None    # shorter segments are discarded (default 2*stride+1)
    img_ext: str = "jpg"                     # "jpg" or "png"
    jpeg_quality: int = 95
    val_fraction: float = 0.1                # held-out tail of each segment for val_files.txt
    overwrite: bool = False                  # replace existing output folders of the same video
    skip_errors: bool = False                # with several videos: warn and skip undecodable ones

    def validate(self) -> ExtractOptions:
        """Normalise and check the options; raise :class:`VideoExtractionError` on bad values."""

        def bad(msg: str) -> None:
            raise VideoExtractionError(f"bad option: {msg}")

        def finite(name: str, value) -> float:
            try:
                value = float(value)
            except (TypeError, ValueError):
                bad(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                bad(f"{name} must be finite, got {value!r}")
            return value

        if self.fps is not None:
            self.fps = finite("fps", self.fps)
            if self.fps <= 0:
                bad(f"fps must be > 0, got {self.fps:g}")
        self.start = finite("start", self.start)
        if self.start < 0:
            bad(f"start must be >= 0 seconds, got {self.start:g}")
        if self.end is not None:
            self.end = finite("end", self.end)
            if self.end <= self.start:
                bad(f"end ({self.end:g} s) must be greater than start ({self.start:g} s)")
        def integer(name: str, value, minimum: int) -> int:
            try:
                ok = not isinstance(value, bool) and int(value) == float(value) and int(value) >= minimum
            except (TypeError, ValueError):
                ok = False
            if not ok:
                bad(f"{name} must be an integer >= {minimum}, got {value!r}")
            return int(value)

        for name in ("width", "height", "max_side"):
            if getattr(self, name) is not None:
                setattr(self, name, integer(name, getattr(self, name), 1))
        if self.max_side is not None and (self.width is not None or self.height is not None):
            bad("use either max_side or width/height, not both")
        for name in ("static_threshold", "cut_threshold", "cut_hist_threshold"):
            value = finite(name, getattr(self, name))
            if value < 0:
                bad(f"{name} must be >= 0 (0 disables it), got {value:g}")
            setattr(self, name, value)
        if self.cut_hist_threshold > 1:
            bad(f"cut_hist_threshold is a histogram distance in [0, 1], got {self.cut_hist_threshold:g}")
        self.stride = integer("stride", self.stride, 1)
        if self.min_segment_frames is None:
            self.min_segment_frames = 2 * self.stride + 1
        self.min_segment_frames = integer("min_segment_frames", self.min_segment_frames, 1)
        ext = str(self.img_ext).lower().lstrip(".")
        ext = "jpg" if ext == "jpeg" else ext
        if ext not in IMAGE_EXTENSIONS:
            bad(f"img_ext must be 'jpg' or 'png', got {self.img_ext!r}")
        self.img_ext = ext
        self.jpeg_quality = integer("jpeg_quality", self.jpeg_quality, 1)
        if self.jpeg_quality > 100:
            bad(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        self.val_fraction = finite("val_fraction", self.val_fraction)
        if not 0 <= self.val_fraction < 1:
            bad(f"val_fraction must be in [0, 1), got {self.val_fraction:g}")
        return self


@dataclass
class SegmentResult:
    folder: str                     # folder name relative to the output directory
    num_frames: int
    times: list[float]              # source timestamp (s) of every written frame


@dataclass
class VideoResult:
    source: str
    name: str
    width: int                      # source size
    height: int
    source_fps: float
    decoded: int = 0                # frames decoded inside [start, end)
    sampled: int = 0                # frames left after fps resampling
    kept: int = 0                   # frames written (in kept segments)
    dropped_static: int = 0
    dropped_short: int = 0          # frames of segments shorter than min_segment_frames
    cut_times: list[float] = field(default_factory=list)
    segments: list[SegmentResult] = field(default_factory=list)
    truncated: bool = False         # decoding failed part-way; the frames before the error were kept

    @property
    def num_cuts(self) -> int:
        return len(self.cut_times)


@dataclass
class ExtractionSummary:
    out_dir: str
    videos: list[VideoResult]
    train: list[str]
    val: list[str]
    skipped: list[str] = field(default_factory=list)   # "path: reason" for videos skipped with skip_errors


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------
def _require_av() -> None:
    if av is None:  # pragma: no cover
        raise VideoExtractionError("PyAV is not installed: pip install av")


def find_videos(input_path: str | Path) -> list[Path]:
    """A video file, or every video file (by extension) found recursively under a folder."""
    path = Path(input_path)
    if not path.exists():
        raise VideoExtractionError(f"input not found: '{path}'")
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise VideoExtractionError(f"input is neither a file nor a folder: '{path}'")
    videos = sorted(
        p for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    if not videos:
        exts = ", ".join(sorted(VIDEO_EXTENSIONS))
        raise VideoExtractionError(f"no video files found in folder '{path}' (searched recursively for {exts})")
    return videos


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return name or "video"


def _video_names(videos: Sequence[Path], root: Path | None) -> list[str]:
    """Output folder names: the sanitised stem, or the relative path when stems collide."""
    names = [_safe_name(v.stem) for v in videos]
    if root is not None:
        counts: dict[str, int] = {}
        for n in names:
            counts[n] = counts.get(n, 0) + 1
        names = [
            _safe_name("_".join(v.relative_to(root).with_suffix("").parts)) if counts[n] > 1 else n
            for v, n in zip(videos, names)
        ]
    seen: dict[str, int] = {}
    unique = []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        unique.append(n if k == 0 else f"{n}_{k + 1}")
    return unique


def _av_message(exc: BaseException) -> str:
    """FFmpeg's own message without the repeated file name."""
    return getattr(exc, "strerror", None) or str(exc)


def _open_video(path: Path):
    _require_av()
    if not path.is_file():
        raise VideoExtractionError(f"video file not found: '{path}'")
    try:
        container = av.open(str(path))
    except av.InvalidDataError as exc:  # FFmpeg recognises no media format: a damaged video, or not a video at all
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            raise VideoExtractionError(f"cannot decode video file '{path}': {_av_message(exc)}") from None
        raise VideoExtractionError(f"'{path}' is not a video ({_av_message(exc)}); give a video file "
                                   f"({', '.join(sorted(VIDEO_EXTENSIONS))}) or a folder of them") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoExtractionError(f"cannot decode video file '{path}': {_av_message(exc)}") from None
    if container.format.name in STILL_IMAGE_FORMATS or container.format.name.endswith("_pipe"):
        container.close()  # FFmpeg reads a still image as a one-frame video: nothing to pretrain on
        raise VideoExtractionError(f"'{path}' is not a video but a still image ({container.format.name}); give a "
                                   "video file or a folder of videos (folders of frames you already have go straight "
                                   "to pretrain_flow.py --data_path)")
    if not container.streams.video:
        container.close()
        raise VideoExtractionError(f"'{path}' is not a video: it has no video stream")
    return container, container.streams.video[0]


def _stream_rate(stream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return None


def probe_video(path: str | Path) -> dict:
    """Basic stream facts: width, height, fps, num_frames (container estimate, may be 0), duration (s)."""
    container, stream = _open_video(Path(path))
    try:
        rate = _stream_rate(stream)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        return {
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "fps": float(rate) if rate else None,
            "num_frames": int(stream.frames or 0),
            "duration": duration,
            "codec": stream.codec_context.name,
        }
    finally:
        container.close()


def grey_thumbnail(frame, width: int = THUMB_WIDTH) -> np.ndarray:
    """A small grey-level float32 image of a decoded ``av.VideoFrame`` (area downscale), or of a PIL image."""
    if isinstance(frame, Image.Image):
        w, h = frame.size
        tw = min(width, w)
        th = max(1, round(h * tw / w))
        return np.asarray(frame.convert("L").resize((tw, th), Image.BOX), dtype=np.float32)
    w, h = frame.width, frame.height
    tw = min(width, w)
    th = max(1, round(h * tw / w))
    grey = frame.reformat(width=tw, height=th, format="gray8", interpolation="AREA")
    return grey.to_ndarray().astype(np.float32)


def mean_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey difference (0-255 scale) of two thumbnails."""
    return float(np.abs(a - b).mean())


def _histogram(thumb: np.ndarray) -> np.ndarray:
    hist = np.bincount((thumb.astype(np.int64).ravel() * HIST_BINS) // 256, minlength=HIST_BINS)
    return hist / max(1, thumb.size)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Half L1 distance of the normalised 32-bin grey histograms of two thumbnails, in [0, 1]."""
    return float(0.5 * np.abs(_histogram(a) - _histogram(b)).sum())


def output_size(src_w: int, src_h: int, opts: ExtractOptions) -> tuple[int, int]:
    """Output (width, height) for a source size under the resize options."""
    if opts.max_side is not None:
        s = min(1.0, opts.max_side / max(src_w, src_h))
        return max(1, round(src_w * s)), max(1, round(src_h * s))
    if opts.width is not None and opts.height is not None:
        if not opts.keep_aspect:
            return opts.width, opts.height
        s = min(opts.width / src_w, opts.height / src_h)
        return max(1, min(opts.width, round(src_w * s))), max(1, min(opts.height, round(src_h * s)))
    if opts.width is not None:
        return opts.width, max(1, round(src_h * opts.width / src_w))
    if opts.height is not None:
        return max(1, round(src_w * opts.height / src_h)), opts.height
    return src_w, src_h


def split_entries(folder: str, num_frames: int, stride: int = 1) -> list[str]:
    """``"<folder> <i>"`` for every frame i of a segment with both neighbours i +- stride inside it."""
    return [format_split_line(folder, i) for i in range(stride, num_frames - stride)]


def write_split_files(
    out_dir: str | Path,
    segments: Sequence[tuple[str, int]],
    stride: int = 1,
    val_fraction: float = 0.0,
) -> tuple[list[str], list[str]]:
    """Write ``train_files.txt`` (and ``val_files.txt`` when ``val_fraction > 0``).

    ``segments`` are ``(folder, num_frames)`` pairs. Validation holds out *time*: the last
    ``round(val_fraction * N)`` targets of each segment of N targets (at least one when the segment is long
    enough), and the ``2 * stride`` training targets just before them are dropped, so that no validation
    triplet shares a frame with a training triplet (a random frame-level sample would validate on frames the
    network trained on as neighbours). Segments with fewer than ``2 * stride + 2`` targets stay in training.
    Both lists keep the folder/frame order.
    """
    out_dir = Path(out_dir)
    train: list[str] = []
    val: list[str] = []
    for folder, n in segments:
        entries = split_entries(folder, n, stride)
        n_val = max(1, round(val_fraction * len(entries))) if val_fraction > 0 else 0
        if n_val == 0 or len(entries) - n_val < 2 * stride + 1:
            train += entries
            continue
        train += entries[:len(entries) - n_val - 2 * stride]
        val += entries[len(entries) - n_val:]
    write_split_file(out_dir / "train_files.txt", train)
    if val_fraction > 0:
        write_split_file(out_dir / "val_files.txt", val)
    else:
        (out_dir / "val_files.txt").unlink(missing_ok=True)  # an older run's list would be stale
    return train, val


# --------------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------------
def _as_fraction(x: float) -> Fraction:
    return Fraction(x).limit_denominator(1_000_000)


class _Resampler:
    """Picks, for each target time ``start + k / fps``, the frame whose interval [t - d/2, t + d/2) holds it."""

    def __init__(self, fps: float | None, source_rate: Fraction | None, start: Fraction):
        self.start = start
        self.fps = _as_fraction(fps) if fps is not None else None
        self.period = 1 / source_rate if source_rate else None
        if self.fps is not None and self.period is not None and self.fps >= source_rate:
            self.fps = None  # never upsample: keep every frame
        self.last_k = -1

    def take(self, t: Fraction) -> bool:
        if self.fps is None:
            return True
        half = (self.period or 1 / self.fps) / 2
        k = max(0, math.ceil((t - half - self.start) * self.fps))
        if k <= self.last_k:
            k = self.last_k + 1
        if self.start + Fraction(k) / self.fps < t + half:
            self.last_k = k
            return True
        return False


def _iter_frames(container, stream, path: Path, start: Fraction, end: Fraction | None, state: dict
                 ) -> Iterator[tuple[Fraction, object]]:
    """Decoded frames with their time (s, Fraction, relative to the stream start) inside [start, end)."""
    time_base = Fraction(stream.time_base) if stream.time_base else None
    origin = stream.start_time if stream.start_time is not None else None
    rate = _stream_rate(stream)
    if start > 0 and time_base:
        try:
            container.seek(int((origin or 0) + start / time_base), stream=stream, backward=True, any_frame=False)
        except (av.FFmpegError, OSError, ValueError):
            pass  # decode from wherever the demuxer is; frames before start are skipped below
    prev_t: Fraction | None = None
    decoded_any = False
    try:
        for frame in container.decode(stream):
            if frame.pts is not None and time_base:
                if origin is None:
                    origin = frame.pts
                t = (frame.pts - origin) * time_base
            else:
                t = prev_t + (1 / rate if rate else Fraction(1, 30)) if prev_t is not None else Fraction(0)
            prev_t = t
            decoded_any = True
            if t < start:
                continue
            if end is not None and t >= end:
                break
            yield t, frame
    except (av.FFmpegError, OSError, ValueError) as exc:
        if not decoded_any:
            raise VideoExtractionError(f"cannot decode video file '{path}': {_av_message(exc)}") from None
        warnings.warn(f"decoding '{path}' stopped early ({_av_message(exc)}); keeping the frames decoded so far")
        state["truncated"] = True
    if not decoded_any:
        raise VideoExtractionError(f"cannot decode video file '{path}': no video frames could be decoded")


class _SegmentWriter:
    def __init__(self, staging: Path, opts: ExtractOptions, size: tuple[int, int]):
        self.dir = staging
        self.opts = opts
        self.size = size
        self.times: list[float] = []
        staging.mkdir(parents=True)

    def write(self, frame, t: Fraction) -> None:
        if (frame.width, frame.height) == self.size:
            img = frame.to_image()
        else:  # colour conversion and Lanczos scaling in one swscale pass (~5x faster than via PIL)
            w, h = self.size
            img = frame.reformat(width=w, height=h, format="rgb24", interpolation="LANCZOS").to_image()
        path = self.dir / f"{len(self.times):06d}.{self.opts.img_ext}"
        if self.opts.img_ext == "jpg":
            img.save(path, quality=self.opts.jpeg_quality)
        else:
            img.save(path, compress_level=3)
        self.times.append(round(float(t), 6))


def _existing_outputs(out_dir: Path, name: str) -> list[Path]:
    if not out_dir.is_dir():
        return []
    pattern = re.compile(re.escape(name) + r"_seg\d{2,}")
    return sorted(p for p in out_dir.iterdir() if p.is_dir() and (p.name == name or pattern.fullmatch(p.name)))


def _remove_staging(out_dir: Path, name: str) -> None:
    if out_dir.is_dir():
        for p in out_dir.glob(f".{name}.part*"):
            shutil.rmtree(p, ignore_errors=True)


def _claim_output(out_dir: Path, name: str, path: Path, opts: ExtractOptions) -> None:
    """Refuse ``name``'s existing frame folders unless ``opts.overwrite`` (then remove them), clear stale staging
    folders and create ``out_dir``."""
    existing = _existing_outputs(out_dir, name)
    if existing and not opts.overwrite:
        raise VideoExtractionError(
            f"output for '{path.name}' already exists: '{existing[0]}' (use overwrite / --overwrite)")
    for p in existing:
        shutil.rmtree(p)
    _remove_staging(out_dir, name)
    out_dir.mkdir(parents=True, exist_ok=True)


def _expected_frames(stream, rate: Fraction | None, start: Fraction, end: Fraction | None) -> int | None:
    """Frames the stream should decode inside [start, end), for the progress bar (None when unknown)."""
    if not (stream.frames and rate):
        return None
    duration = Fraction(stream.frames) / rate
    total = round(float(((end if end is not None else duration) - start) * rate))
    return max(0, min(total, stream.frames))


class _Segmenter:
    """Turns the decoded frames of one video into segments in staging folders, counting into ``result``.

    A scene cut (or a change of resolution) starts a new segment; the resampler picks the frames at the target
    fps; a frame nearly identical to the last kept one is dropped as static; a segment shorter than
    ``min_segment_frames`` is discarded when it closes. :meth:`publish` renames the kept segments to their final
    folders.
    """

    def __init__(self, out_dir: Path, name: str, opts: ExtractOptions, result: VideoResult, resampler: _Resampler):
        self.out_dir = out_dir
        self.name = name
        self.opts = opts
        self.result = result
        self.resampler = resampler
        self.kept: list[_SegmentWriter] = []
        self.current: _SegmentWriter | None = None
        self.part = 0
        self.prev_thumb: np.ndarray | None = None
        self.last_kept: np.ndarray | None = None
        self.cut_pending = False

    def _is_cut(self, thumb: np.ndarray) -> bool:
        prev, opts = self.prev_thumb, self.opts
        # a change of resolution mid-stream also starts a new segment
        return (
            prev.shape != thumb.shape
            or (opts.cut_threshold > 0 and mean_abs_difference(prev, thumb) >= opts.cut_threshold)
            or (opts.cut_hist_threshold > 0 and histogram_distance(prev, thumb) >= opts.cut_hist_threshold)
        )

    def _is_static(self, thumb: np.ndarray) -> bool:
        last, opts = self.last_kept, self.opts
        return (opts.static_threshold > 0 and last is not None and last.shape == thumb.shape
                and mean_abs_difference(last, thumb) < opts.static_threshold)

    def add(self, t: Fraction, frame) -> None:
        """One decoded frame at time ``t``: detect a cut, resample, drop if static, else write it."""
        result = self.result
        result.decoded += 1
        thumb = grey_thumbnail(frame)
        if self.prev_thumb is not None and self._is_cut(thumb):
            result.cut_times.append(round(float(t), 6))
            self.cut_pending = True
        self.prev_thumb = thumb
        if not self.resampler.take(t):
            return
        result.sampled += 1
        if self.current is None or self.cut_pending:
            self.close()
            size = output_size(frame.width, frame.height, self.opts)
            self.current = _SegmentWriter(self.out_dir / f".{self.name}.part{self.part:03d}", self.opts, size)
            self.part += 1
            self.cut_pending = False
        elif self._is_static(thumb):
            result.dropped_static += 1
            return
        self.current.write(frame, t)
        self.last_kept = thumb

    def close(self) -> None:
        """Close the current segment: keep it, or discard it when it is too short."""
        current, self.current = self.current, None
        if current is None:
            return
        if len(current.times) >= self.opts.min_segment_frames:
            self.kept.append(current)
        else:
            self.result.dropped_short += len(current.times)
            shutil.rmtree(current.dir, ignore_errors=True)

    def publish(self) -> None:
        """Rename the kept staging folders to ``<name>`` (one segment) or ``<name>_segNN`` and record them."""
        single = len(self.kept) == 1
        for i, seg in enumerate(self.kept):
            folder = self.name if single else f"{self.name}_seg{i:02d}"
            seg.dir.rename(self.out_dir / folder)
            self.result.segments.append(SegmentResult(folder=folder, num_frames=len(seg.times), times=seg.times))
        self.result.kept = sum(s.num_frames for s in self.result.segments)


def extract_video(
    video_path: str | Path,
    out_dir: str | Path,
    options: ExtractOptions | None = None,
    name: str | None = None,
    progress: bool = False,
) -> VideoResult:
    """Extract one video into ``<out_dir>/<name>[_segNN]/%06d.<ext>`` (see the module docstring).

    Does not write the split lists (see :func:`extract_videos` / :func:`write_split_files`).
    """
    opts = (options or ExtractOptions()).validate()
    path = Path(video_path)
    out_dir = Path(out_dir)
    name = _safe_name(name) if name else _safe_name(path.stem)

    container, stream = _open_video(path)
    try:
        _claim_output(out_dir, name, path, opts)
        stream.thread_type = "AUTO"
        rate = _stream_rate(stream)
        result = VideoResult(source=str(path), name=name, width=stream.codec_context.width,
                             height=stream.codec_context.height, source_fps=float(rate) if rate else 0.0)
        start = _as_fraction(opts.start)
        end = _as_fraction(opts.end) if opts.end is not None else None
        segmenter = _Segmenter(out_dir, name, opts, result, _Resampler(opts.fps, rate, start))
        state = {"truncated": False}

        from tqdm import tqdm

        with tqdm(total=_expected_frames(stream, rate, start, end), desc=name, unit="frame", leave=False,
                  disable=not progress) as bar:
            for t, frame in _iter_frames(container, stream, path, start, end, state):
                bar.update(1)
                segmenter.add(t, frame)
        segmenter.close()
        result.truncated = state["truncated"]
        segmenter.publish()
        return result
    except BaseException:
        _remove_staging(out_dir, name)
        raise
    finally:
        container.close()


def extract_videos(
    input_path: str | Path,
    out_dir: str | Path,
    options: ExtractOptions | None = None,
    progress: bool = True,
) -> ExtractionSummary:
    """Extract a video file or every video under a folder, then write the split lists and a summary.

    ``train_files.txt`` / ``val_files.txt`` list the segments written by *this* call. When ``out_dir`` already
    holds them (or ``extraction_summary.json``), nothing is extracted unless ``options.overwrite``.
    """
    opts = (options or ExtractOptions()).validate()
    input_path = Path(input_path)
    out_dir = Path(out_dir)
    refuse_existing([out_dir / name for name in LIST_FILES], opts.overwrite, "overwrite / --overwrite",
                    VideoExtractionError)
    videos = find_videos(input_path)
    names = _video_names(videos, input_path if input_path.is_dir() else None)
    # every video's frame folders too, before the first video is decoded
    refuse_existing([p for name in names for p in _existing_outputs(out_dir, name)], opts.overwrite,
                    "overwrite / --overwrite", VideoExtractionError)

    from tqdm import tqdm

    results: list[VideoResult] = []
    skipped: list[str] = []
    for video, name in tqdm(list(zip(videos, names)), desc="videos", unit="video",
                            disable=not progress or len(videos) < 2):
        try:
            results.append(extract_video(video, out_dir, opts, name=name, progress=progress))
        except VideoExtractionError as exc:
            if not opts.skip_errors or len(videos) < 2:
                raise
            warnings.warn(f"skipping: {exc}")
            skipped.append(f"{video}: {exc}")
    if not results:
        raise VideoExtractionError(f"no video under '{input_path}' could be decoded")
    if sum(r.kept for r in results) == 0:
        raise VideoExtractionError(
            f"no frames kept from '{input_path}': check start/end, fps and the static/cut thresholds")

    out_dir.mkdir(parents=True, exist_ok=True)
    train, val = write_split_files(
        out_dir, [(s.folder, s.num_frames) for r in results for s in r.segments],
        stride=opts.stride, val_fraction=opts.val_fraction)
    summary = ExtractionSummary(out_dir=str(out_dir), videos=results, train=train, val=val, skipped=skipped)
    atomic_write_text(out_dir / "extraction_summary.json",
                      json.dumps({"options": asdict(opts), **asdict(summary)}, indent=1))
    return summary


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------
