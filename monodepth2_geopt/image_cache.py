"""Optional pre-resized uint8 image cache: one memory-mapped array per (drive folder, camera).

``prepare_cache.py`` decodes and resizes every frame a split needs once; training workers then read a
[H, W, 3] slice of a memmap instead of decoding and resizing a JPEG (the data-loading bottleneck of
Monodepth2 at high throughput). Layout under ``<cache_dir>``::

    <folder>/<camera>.npy    uint8 [N, H, W, 3]
    <folder>/<camera>.json   {"height": H, "width": W, "frames": {frame_index: row}}
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from monodepth2_geopt.errors import InputError


def _camera(side) -> str:
    return {"l": "2", "2": "2", "r": "3", "3": "3", None: "2"}[side]


class ImageCache:
    """Read side of the cache; arrays are opened lazily (once per worker process)."""

    def __init__(self, cache_dir: str | os.PathLike, height: int, width: int):
        self.root = Path(cache_dir)
        if not self.root.is_dir():
            raise InputError(f"image cache {self.root} does not exist; build it with "
                             "`python prepare_cache.py --data_path ... --split ... --height H --width W`")
        self.height, self.width = height, width
        self._open: dict = {}

    def _entry(self, folder: str, side):
        key = (folder, _camera(side))
        if key not in self._open:
            base = self.root / folder / f"image_0{key[1]}"
            meta_path = base.with_suffix(".json")
            if not meta_path.is_file():
                self._open[key] = None
            else:
                meta = json.loads(meta_path.read_text())
                if (meta["height"], meta["width"]) != (self.height, self.width):
                    raise InputError(f"image cache {meta_path} is {meta['width']}x{meta['height']}, but training "
                                     f"uses {self.width}x{self.height}; rebuild it with prepare_cache.py")
                frames = {int(k): v for k, v in meta["frames"].items()}
                self._open[key] = (np.load(base.with_suffix(".npy"), mmap_mode="r"), frames)
        return self._open[key]

    def get(self, folder: str, frame_index: int, side) -> np.ndarray | None:
        """[H, W, 3] uint8 view, or None when the frame is not cached (the caller decodes it instead)."""
        entry = self._entry(folder, side)
        if entry is None or frame_index not in entry[1]:
            return None
        return entry[0][entry[1][frame_index]]


def build_cache(dataset, cache_dir: str | os.PathLike, num_threads: int | None = None, progress: bool = True) -> int:
    """Decode + resize every frame ``dataset`` (a MonoDataset) can ask for into the cache. Returns #frames."""
    from monodepth2_geopt.splits import parse_split_line

    needed: dict[tuple[str, str], set[int]] = {}
    for line in dataset.filenames:
        folder, index, side = parse_split_line(line)
        for f in dataset.frame_idxs:
            if f == "s":
                needed.setdefault((folder, dataset.other_side(side)), set()).add(index)
            else:
                needed.setdefault((folder, side), set()).add(index + f)
    root = Path(cache_dir)
    total = 0
    items = sorted(needed.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))
    try:
        from tqdm import tqdm
        bar = tqdm(total=sum(len(v) for v in needed.values()), unit="img", disable=not progress)
    except ImportError:  # pragma: no cover
        bar = None

    def load(args):
        folder, index, side = args
        path = dataset.get_image_path(folder, index, side)
        if not os.path.isfile(path):
            return None
        img = dataset.loader(path)
        if img.size != (dataset.width, dataset.height):
            img = img.resize((dataset.width, dataset.height), Image.Resampling.LANCZOS)
        return np.asarray(img, dtype=np.uint8)

    with ThreadPoolExecutor(num_threads or os.cpu_count()) as pool:
        for (folder, side), indices in items:
            indices = sorted(indices)
            images = list(pool.map(load, [(folder, i, side) for i in indices]))
            kept = [(i, im) for i, im in zip(indices, images) if im is not None]
            base = root / folder / f"image_0{_camera(side)}"
            base.parent.mkdir(parents=True, exist_ok=True)
            tmp = base.with_name(base.name + ".tmp.npy")
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                            shape=(len(kept), dataset.height, dataset.width, 3))
            for row, (_, im) in enumerate(kept):
                arr[row] = im
            arr.flush()
            del arr
            os.replace(tmp, base.with_suffix(".npy"))
            meta = {"height": dataset.height, "width": dataset.width,
                    "frames": {str(i): row for row, (i, _) in enumerate(kept)}}
            base.with_suffix(".json").write_text(json.dumps(meta))
            total += len(kept)
            if bar is not None:
                bar.update(len(indices))
    if bar is not None:
        bar.close()
    return total
