"""Ground-truth depth for evaluation: export a split's GT maps to `gt_depths.npz` and load it back.

GT maps of one split have different sizes (375x1242, 370x1224, ...). Monodepth2 stores them as a 1-D object
array, which only loads with `allow_pickle=True`, and unpickling a downloaded file can run any code in it. Here
`gt_depths.npz` holds plain arrays: `depths` (every map flattened and concatenated, float32) and `shapes`
([N, 2] int64). It loads with `allow_pickle=False`. Monodepth2's own files are read only when the caller
passes `allow_pickle=True` (`evaluate_depth.py --allow_pickle`). Monodepth2's evaluate_depth.py does not read
this layout.

Staleness: the file also holds `split_sha256` (a 0-d string array, no pickle), the SHA-256 of the split file it
was exported from. The evaluator passes its test file to `load_gt_depths`, which refuses a mismatch (the split
changed after the export: the maps would be scored against the wrong frames) and warns for files without the
hash (older exports, Monodepth2's), whose staleness cannot be checked.
"""

from collections.abc import Sequence
from pathlib import Path

import warnings

import numpy as np

from monodepth2_geopt.fileio import atomic_path
from monodepth2_geopt.kitti_layout import calib_dir, camera_index, depth_png_path, read_depth_png, velodyne_path
from monodepth2_geopt.kitti_utils import generate_depth_map
from monodepth2_geopt.splits import read_split_file, refuse_existing, sha256_file
from monodepth2_geopt.errors import InputError

GT_SOURCES = ("velodyne", "depth_png")
# Which GT each published evaluation split uses (Monodepth2 export_gt_depth.py).
SPLIT_GT_SOURCE = {"eigen": "velodyne", "eigen_benchmark": "depth_png"}
EXPORT_COMMAND = "python export_gt_depth.py --data_path <KITTI raw path> --split {split}"
SPLIT_HASH_KEY = "split_sha256"


def gt_depth_for_frame(data_path: str | Path, folder: str, frame_index: int,
                       side: str | None = "l", source: str = "velodyne") -> np.ndarray:
    """Float32 [H, W] GT depth (0 = none) of one KITTI raw frame.

    "velodyne": the scan projected with `generate_depth_map(..., vel_depth=True)`, i.e. depth is
    the velodyne forward coordinate, exactly what Monodepth2 evaluates the eigen split against.
    "depth_png": `<folder>/proj_depth/groundtruth/image_0X/%010d.png` / 256 from the KITTI depth
    benchmark (eigen_benchmark; a separate download merged into the raw tree).
    """
    if source == "velodyne":
        return generate_depth_map(calib_dir(data_path, folder), velodyne_path(data_path, folder, frame_index),
                                  cam=camera_index(side), vel_depth=True)
    if source == "depth_png":
        return read_depth_png(depth_png_path(data_path, folder, frame_index, side))
    raise InputError(f"unknown GT source {source!r}; expected one of {GT_SOURCES}")


def save_gt_depths(path: str | Path, depths: Sequence[np.ndarray], split_sha256: str | None = None) -> Path:
    """Save GT maps of any sizes as plain arrays (``depths`` concatenated, ``shapes``): no pickle.

    ``split_sha256``: the SHA-256 of the split file the maps follow, stored as ``split_sha256`` so that
    ``load_gt_depths`` can refuse the file once the split changes. Written atomically (temp file, rename).
    """
    path = Path(path)
    maps = [np.asarray(d, dtype=np.float32) for d in depths]
    shapes = np.array([m.shape for m in maps], dtype=np.int64).reshape(len(maps), 2)
    flat = np.concatenate([m.ravel() for m in maps]) if maps else np.zeros(0, np.float32)
    arrays = {"depths": flat, "shapes": shapes}
    if split_sha256 is not None:
        arrays[SPLIT_HASH_KEY] = np.array(split_sha256)  # 0-d unicode array: loads without pickle
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    return path


def export_gt_depths(data_path: str | Path, split_dir: str | Path, source: str = "velodyne",
                     output: str | Path | None = None, overwrite: bool = False) -> Path:
    """GT of every line of `<split_dir>/test_files.txt` to `output` (default `<split_dir>/gt_depths.npz`).

    The file records the test file's SHA-256. An existing output is refused (before any map is read) unless
    ``overwrite``.
    """
    split_dir = Path(split_dir)
    output = Path(output) if output is not None else split_dir / "gt_depths.npz"
    test_file = split_dir / "test_files.txt"
    entries = read_split_file(test_file)
    refuse_existing([output], overwrite)
    split_hash = sha256_file(test_file)
    depths = [gt_depth_for_frame(data_path, folder, index, side, source)
              for folder, index, side in entries]
    if sha256_file(test_file) != split_hash:
        raise InputError(f"{test_file} changed while its ground truth was exported; run the export again")
    return save_gt_depths(output, depths, split_hash)


def load_gt_depths(path: str | Path, split: str = "<split>", allow_pickle: bool = False,
                   split_file: str | Path | None = None) -> list[np.ndarray]:
    """The GT maps of `save_gt_depths` (or of Monodepth2's export with ``allow_pickle``), float32 arrays.

    A file that needs unpickling (Monodepth2's object array) is refused unless ``allow_pickle``, with a message
    naming the file: unpickling runs whatever code the file holds.
    ``split_file``: the split file the maps must follow. A file exported from another version of it (its
    ``split_sha256`` differs) is refused with a message naming both files and the re-export command; a file
    without the hash is accepted with a warning that its staleness cannot be checked.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GT depths not found: {path}. Create them with "
                                f"`{EXPORT_COMMAND.format(split=split)}`")
    recreate = f"re-create it with `{EXPORT_COMMAND.format(split=split)} --overwrite`"
    try:
        with np.load(path, allow_pickle=allow_pickle) as archive:
            stored_hash = str(archive[SPLIT_HASH_KEY]) if SPLIT_HASH_KEY in archive else None
            if split_file is not None:
                _check_split_hash(path, Path(split_file), stored_hash, recreate)
            if "depths" in archive and "shapes" in archive:
                shapes = archive["shapes"].tolist()
                maps = np.split(archive["depths"], np.cumsum([h * w for h, w in shapes])[:-1])
                return [m.astype(np.float32, copy=False).reshape(shape) for m, shape in zip(maps, shapes)]
            if "data" not in archive:
                raise InputError(f"{path} has neither 'depths'/'shapes' nor Monodepth2's 'data'; {recreate}")
            data = archive["data"]
    except ValueError as err:
        if isinstance(err, InputError):
            raise
        if "allow_pickle" not in str(err):
            raise InputError(f"cannot read {path} ({err}); {recreate}") from None
        raise InputError(f"{path} is a pickled object array (Monodepth2's gt_depths.npz format), and loading it "
                         f"would run any code it holds: {recreate} (no pickle), or pass --allow_pickle if you "
                         "trust the file") from None
    return [np.asarray(depth, dtype=np.float32) for depth in data]


def _check_split_hash(path: Path, split_file: Path, stored_hash: str | None, recreate: str) -> None:
    if stored_hash is None:
        warnings.warn(f"{path} does not record which version of {split_file} it was exported from (an older "
                      f"or Monodepth2 export), so whether it is stale cannot be checked; {recreate} to record it",
                      stacklevel=3)
        return
    if split_file.is_file() and sha256_file(split_file) != stored_hash:
        raise InputError(f"{path} is stale: it was exported from another version of {split_file} (the split "
                         f"changed since); {recreate}")


__all__ = ["GT_SOURCES", "SPLIT_GT_SOURCE", "SPLIT_HASH_KEY", "gt_depth_for_frame", "save_gt_depths", "export_gt_depths",
           "load_gt_depths"]
