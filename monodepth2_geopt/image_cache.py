"""Optional pre-resized uint8 image cache: one memory-mapped array per (drive folder, camera).

``prepare_cache.py`` decodes and resizes every frame a split needs once; training workers then read a
[H, W, 3] slice of a memmap instead of decoding and resizing a JPEG (the data-loading bottleneck of
Monodepth2 at high throughput). Layout under ``<cache_dir>``::

    manifest.json            {"format", "height", "width", "lines_sha256", "num_frames",
                              "sources": {path relative to --data_path: [size, mtime_ns]}}
    <folder>/<camera>.npy    uint8 [N, H, W, 3]
    <folder>/<camera>.json   {"height": H, "width": W, "frames": {frame_index: row}}

Built atomically: the whole cache is written into a hidden folder beside ``<cache_dir>`` and then replaces it
(``fileio.atomic_dir``), so a kill during a rebuild leaves the old complete cache (or, between the two renames,
none), never arrays of the new build indexed by the old build's frame tables (which returned another frame's
pixels).

Stale caches are refused, not rebuilt, when training opens them: ``ImageCache`` (given the dataset's
``data_path``) compares every cached source image's size and mtime with the manifest and raises an InputError
naming the first changed file and the ``prepare_cache.py ... --overwrite`` command. Refusing is what a user
expects: a rebuild takes minutes to hours and would start silently inside ``train.py`` (in every DDP rank at
once, racing), the cache folder is an input of training that training should not write, and quietly decoding
instead would hide a several-fold slowdown. Frames a split needs that the cache lacks (another split) are
decoded as before, with a warning. ``prepare_cache.py`` on an up-to-date cache does nothing; on a stale or
different one it refuses without ``--overwrite``; a folder that is not a cache is refused even with it.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from monodepth2_geopt.errors import InputError
from monodepth2_geopt.fileio import atomic_dir
from monodepth2_geopt.kitti_layout import camera_folder, parse_split_line, resize_image

MANIFEST = "manifest.json"
CACHE_FORMAT = 2  # 1: no manifest (before staleness checks); refused
REBUILD = ("rebuild it with `python prepare_cache.py --data_path ... --split ... --height H --width W "
           "--image_cache {root} --overwrite`")


def needed_frames(dataset) -> dict[tuple[str, object], set[int]]:
    """{(folder, side): frame indices} of every image ``dataset`` (a MonoDataset) can ask for."""
    needed: dict[tuple[str, object], set[int]] = {}
    for line in dataset.filenames:
        folder, index, side = parse_split_line(line)
        for f in dataset.frame_idxs:
            if f == "s":
                needed.setdefault((folder, dataset.other_side(side)), set()).add(index)
            else:
                needed.setdefault((folder, side), set()).add(index + f)
    return needed


def _source_stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


def expected_manifest(dataset) -> dict:
    """The manifest a cache of ``dataset`` built now would have (stats every source image)."""
    sources = {}
    for (folder, side), indices in needed_frames(dataset).items():
        for i in indices:
            path = dataset.get_image_path(folder, i, side)
            stat = _source_stat(path)
            if stat is not None:
                sources[os.path.relpath(path, dataset.data_path)] = stat
    lines = hashlib.sha256("\n".join(list(dataset.filenames) + [repr(list(dataset.frame_idxs))]).encode())
    return {"format": CACHE_FORMAT, "height": dataset.height, "width": dataset.width,
            "lines_sha256": lines.hexdigest(), "num_frames": len(sources), "sources": dict(sorted(sources.items()))}


def read_manifest(root: Path) -> dict | None:
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {path} ({err}); {REBUILD.format(root=root)}") from None


def stale_sources(manifest: dict, data_path: str | os.PathLike) -> list[str]:
    """Cached source images (paths relative to ``data_path``) whose size or mtime changed, or that are gone."""
    return [rel for rel, stat in manifest["sources"].items()
            if _source_stat(os.path.join(data_path, rel)) != list(stat)]


def _is_cache_layout(root: Path) -> bool:
    """A folder holding only what build_cache writes (manifest, <folder>/image_0X.npy/.json): safe to replace."""
    for path in root.rglob("*"):
        if path.is_file() and not (path.name == MANIFEST or path.suffix in (".npy", ".json")):
            return False
    return True


class ImageCache:
    """Read side of the cache; arrays are opened lazily (once per worker process).

    With ``data_path`` the cache is checked against the source images (see the module docstring): a cache
    without manifest (an older build), of another size, or whose sources changed raises an InputError.
    """

    def __init__(self, cache_dir: str | os.PathLike, height: int, width: int,
                 data_path: str | os.PathLike | None = None):
        self.root = Path(cache_dir)
        if not self.root.is_dir():
            raise InputError(f"image cache {self.root} does not exist; build it with "
                             "`python prepare_cache.py --data_path ... --split ... --height H --width W`")
        self.height, self.width = height, width
        self._open: dict = {}
        manifest = read_manifest(self.root)
        if manifest is None:
            raise InputError(f"image cache {self.root} has no {MANIFEST} (built by an older version: whether it "
                             f"is stale cannot be checked); {REBUILD.format(root=self.root)}")
        if (manifest["height"], manifest["width"]) != (height, width):
            raise InputError(f"image cache {self.root} is {manifest['width']}x{manifest['height']}, but training "
                             f"uses {width}x{height}; {REBUILD.format(root=self.root)}")
        if data_path is not None:  # one stat per cached image (well under a second for KITTI's eigen_zhou)
            stale = stale_sources(manifest, data_path)
            if stale:
                raise InputError(f"image cache {self.root} is stale: {len(stale)} of its "
                                 f"{len(manifest['sources'])} source images changed or went missing since it "
                                 f"was built (e.g. {Path(data_path) / stale[0]}); {REBUILD.format(root=self.root)}")

    def warn_missing(self, dataset) -> None:
        """Warn when ``dataset`` needs frames the cache lacks (they are decoded instead: slower, not wrong)."""
        missing = total = 0
        for (folder, side), indices in needed_frames(dataset).items():
            entry = self._entry(folder, side)
            have = entry[1] if entry is not None else {}
            total += len(indices)
            missing += sum(i not in have for i in indices)
        if missing:
            warnings.warn(f"image cache {self.root} lacks {missing} of the {total} frames this split uses (built "
                          f"for another split?); they are decoded instead, which is slower. To cache them, "
                          f"{REBUILD.format(root=self.root)}", stacklevel=3)

    def _entry(self, folder: str, side):
        key = (folder, camera_folder(side))
        if key not in self._open:
            base = self.root / folder / key[1]
            meta_path = base.with_suffix(".json")
            if not meta_path.is_file():
                self._open[key] = None
            else:
                meta = json.loads(meta_path.read_text())
                if (meta["height"], meta["width"]) != (self.height, self.width):
                    raise InputError(f"image cache {meta_path} is {meta['width']}x{meta['height']}, but training "
                                     f"uses {self.width}x{self.height}; {REBUILD.format(root=self.root)}")
                frames = {int(k): v for k, v in meta["frames"].items()}
                array = np.load(base.with_suffix(".npy"), mmap_mode="r")
                if len(array) != len(frames):
                    raise InputError(f"image cache {base}.npy has {len(array)} images but its table {meta_path} "
                                     f"{len(frames)}; {REBUILD.format(root=self.root)}")
                self._open[key] = (array, frames)
        return self._open[key]

    def get(self, folder: str, frame_index: int, side) -> np.ndarray | None:
        """[H, W, 3] uint8 view, or None when the frame is not cached (the caller decodes it instead)."""
        entry = self._entry(folder, side)
        if entry is None or frame_index not in entry[1]:
            return None
        return entry[0][entry[1][frame_index]]


def build_cache(dataset, cache_dir: str | os.PathLike, num_threads: int | None = None, progress: bool = True,
                overwrite: bool = False, log=print) -> int:
    """Decode + resize every frame ``dataset`` (a MonoDataset) can ask for into the cache. Returns #frames.

    An existing cache that matches (same lines, size, unchanged sources) is kept as it is; a stale or different
    one is refused unless ``overwrite``; a non-empty folder that is not a cache is refused either way. The new
    cache replaces the old one atomically (module docstring).
    """
    root = Path(cache_dir)
    expected = expected_manifest(dataset)
    if root.is_dir() and any(root.iterdir()):
        if not _is_cache_layout(root):
            raise InputError(f"--image_cache {root} is not empty and is not an image cache; choose a new folder")
        current = read_manifest(root)
        if current is None:
            reason = f"it has no {MANIFEST} (built by an older version)"
        elif current == expected:
            if not overwrite:
                log(f"image cache {root} is up to date ({current['num_frames']} frames); nothing to do")
                return current["num_frames"]
            reason = "it is up to date"
        elif (current["height"], current["width"]) != (expected["height"], expected["width"]):
            reason = f"it is {current['width']}x{current['height']}"
        elif current["lines_sha256"] != expected["lines_sha256"]:
            reason = "it was built for other split lines or frame ids"
        else:
            reason = "its source images changed"
        if not overwrite:
            raise InputError(f"image cache {root} exists and {reason}; pass --overwrite to rebuild it")

    items = sorted(needed_frames(dataset).items(), key=lambda kv: (kv[0][0], str(kv[0][1])))
    try:
        from tqdm import tqdm
        bar = tqdm(total=sum(len(v) for _, v in items), unit="img", disable=not progress)
    except ImportError:  # pragma: no cover
        bar = None

    def load(args):
        folder, index, side = args
        path = dataset.get_image_path(folder, index, side)
        if not os.path.isfile(path):
            return None
        return np.asarray(resize_image(dataset.loader(path), dataset.width, dataset.height), dtype=np.uint8)

    total = 0
    with atomic_dir(root) as build, ThreadPoolExecutor(num_threads or os.cpu_count()) as pool:
        for (folder, side), indices in items:
            indices = sorted(indices)
            images = list(pool.map(load, [(folder, i, side) for i in indices]))
            kept = [(i, im) for i, im in zip(indices, images) if im is not None]
            base = build / folder / camera_folder(side)
            base.parent.mkdir(parents=True, exist_ok=True)
            arr = np.lib.format.open_memmap(base.with_suffix(".npy"), mode="w+", dtype=np.uint8,
                                            shape=(len(kept), dataset.height, dataset.width, 3))
            for row, (_, im) in enumerate(kept):
                arr[row] = im
            arr.flush()
            del arr
            meta = {"height": dataset.height, "width": dataset.width,
                    "frames": {str(i): row for row, (i, _) in enumerate(kept)}}
            base.with_suffix(".json").write_text(json.dumps(meta))
            total += len(kept)
            if bar is not None:
                bar.update(len(indices))
        # The sources' stats from before decoding: an image changed since is caught as stale when read.
        (build / MANIFEST).write_text(json.dumps(expected, indent=1))
    if bar is not None:
        bar.close()
    return total
