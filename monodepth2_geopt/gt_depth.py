"""Ground-truth depth for evaluation: export a split's GT maps to `gt_depths.npz` and load it back.

GT maps of one split have different sizes (375x1242, 370x1224, ...), so they are stored as a 1-D
object array. That needs `allow_pickle=True` to load: only load files you created or trust.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monodepth2_geopt.kitti_utils import generate_depth_map, read_depth_png
from monodepth2_geopt.splits import read_split_file
from monodepth2_geopt.errors import InputError

GT_SOURCES = ("velodyne", "depth_png")
# Which GT each published evaluation split uses (Monodepth2 export_gt_depth.py).
SPLIT_GT_SOURCE = {"eigen": "velodyne", "eigen_benchmark": "depth_png"}
CAMERA_FOR_SIDE = {None: 2, "l": 2, "2": 2, "r": 3, "3": 3}
EXPORT_COMMAND = "python export_gt_depth.py --data_path <KITTI raw path> --split {split}"


def gt_depth_for_frame(data_path: str | Path, folder: str, frame_index: int,
                       side: str | None = "l", source: str = "velodyne") -> np.ndarray:
    """Float32 [H, W] GT depth (0 = none) of one KITTI raw frame.

    "velodyne": the scan projected with `generate_depth_map(..., vel_depth=True)`, i.e. depth is
    the velodyne forward coordinate, exactly what Monodepth2 evaluates the eigen split against.
    "depth_png": `<folder>/proj_depth/groundtruth/image_0X/%010d.png` / 256 from the KITTI depth
    benchmark (eigen_benchmark; a separate download merged into the raw tree).
    """
    data_path = Path(data_path)
    cam = CAMERA_FOR_SIDE[side]
    if source == "velodyne":
        calib_dir = data_path / folder.split("/")[0]
        velo = data_path / folder / "velodyne_points" / "data" / f"{frame_index:010d}.bin"
        return generate_depth_map(calib_dir, velo, cam=cam, vel_depth=True)
    if source == "depth_png":
        png = (data_path / folder / "proj_depth" / "groundtruth" / f"image_0{cam}"
               / f"{frame_index:010d}.png")
        return read_depth_png(png)
    raise InputError(f"unknown GT source {source!r}; expected one of {GT_SOURCES}")


def to_object_array(depths: Sequence[np.ndarray]) -> np.ndarray:
    """1-D object array holding each map as one element, whatever the shapes."""
    # np.array(list, dtype=object) would build an [N, H, W] array of Python floats when all maps
    # share a shape, so fill element by element.
    data = np.empty(len(depths), dtype=object)
    for i, depth in enumerate(depths):
        data[i] = depth
    return data


def save_gt_depths(path: str | Path, depths: Sequence[np.ndarray]) -> Path:
    """Save GT maps as `np.savez_compressed(path, data=<object array>)`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, data=to_object_array(depths))
    return path


def export_gt_depths(data_path: str | Path, split_dir: str | Path, source: str = "velodyne",
                     output: str | Path | None = None) -> Path:
    """GT of every line of `<split_dir>/test_files.txt` to `output` (default `<split_dir>/gt_depths.npz`)."""
    split_dir = Path(split_dir)
    entries = read_split_file(split_dir / "test_files.txt")
    depths = [gt_depth_for_frame(data_path, folder, index, side, source)
              for folder, index, side in entries]
    return save_gt_depths(output if output is not None else split_dir / "gt_depths.npz", depths)


def load_gt_depths(path: str | Path, split: str = "<split>") -> list[np.ndarray]:
    """Load the GT maps saved by `save_gt_depths` / export_gt_depth.py as a list of float32 arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GT depths not found: {path}. Create them with "
                                f"`{EXPORT_COMMAND.format(split=split)}`")
    with np.load(path, allow_pickle=True) as archive:
        if "data" not in archive:
            raise InputError(f"{path} has no 'data' array; re-create it with "
                             f"`{EXPORT_COMMAND.format(split=split)}`")
        data = archive["data"]
    return [np.asarray(depth, dtype=np.float32) for depth in data]


__all__ = ["GT_SOURCES", "SPLIT_GT_SOURCE", "gt_depth_for_frame", "to_object_array",
           "save_gt_depths", "export_gt_depths", "load_gt_depths"]
