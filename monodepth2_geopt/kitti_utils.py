"""KITTI raw helpers: calibration files, velodyne scans and velodyne->depth-map GT (Monodepth2's kitti_utils).

Where these files lie, and the 16-bit depth PNG codec, are ``kitti_layout``'s.

`generate_depth_map` reproduces the ground truth Monodepth2 evaluates against (its `kitti_utils.py`,
itself following the KITTI devkit), so numbers stay comparable with published results.
"""

from pathlib import Path

import numpy as np
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.kitti_layout import CAM_TO_CAM, VELO_TO_CAM


def read_calib_file(path: str | Path) -> dict[str, np.ndarray]:
    """Parse a KITTI calibration file into {key: float64 1-D array}.

    Lines whose values are not all numbers (e.g. `calib_time: 09-Jan-2012 13:57:47`) are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI calibration file not found: {path}")
    calib = {}
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, values = line.partition(":")
        if not sep:
            raise InputError(f"{path}:{line_number}: expected 'key: values', got {line!r}")
        try:
            calib[key.strip()] = np.array([float(v) for v in values.split()], dtype=np.float64)
        except ValueError:
            continue  # non-numeric entry such as calib_time
    return calib


def _calib_entry(calib: dict[str, np.ndarray], key: str, size: int, path: Path) -> np.ndarray:
    if key not in calib:
        raise InputError(f"{path} has no numeric entry {key!r}")
    if calib[key].size != size:
        raise InputError(f"{path}: {key} has {calib[key].size} values, expected {size}")
    return calib[key]


def load_velodyne_points(path: str | Path) -> np.ndarray:
    """Load a KITTI velodyne .bin as float32 [N, 4] homogeneous points (x, y, z, 1); reflectance dropped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"velodyne scan not found: {path}")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % 4:
        raise InputError(f"malformed velodyne scan {path}: {path.stat().st_size} bytes is not a "
                         "multiple of 16 (4 float32 per point)")
    points = raw.reshape(-1, 4)
    points[:, 3] = 1.0
    return points


def velo_to_image_matrix(calib_dir: str | Path, cam: int = 2) -> tuple[np.ndarray, tuple[int, int]]:
    """3x4 projection from velodyne coordinates to camera `cam`'s rectified image, and its (H, W).

    The matrix is P_rect_0{cam} @ R_rect_00 @ [R|T]_velo_to_cam; the size is read from S_rect_02,
    as Monodepth2 does for both cameras (all KITTI raw rectified images share it).
    """
    calib_dir = Path(calib_dir)
    cam_path = calib_dir / CAM_TO_CAM
    velo_path = calib_dir / VELO_TO_CAM
    cam2cam = read_calib_file(cam_path)
    velo2cam = read_calib_file(velo_path)

    velo_to_cam = np.eye(4)
    velo_to_cam[:3, :3] = _calib_entry(velo2cam, "R", 9, velo_path).reshape(3, 3)
    velo_to_cam[:3, 3] = _calib_entry(velo2cam, "T", 3, velo_path)
    rect = np.eye(4)
    rect[:3, :3] = _calib_entry(cam2cam, "R_rect_00", 9, cam_path).reshape(3, 3)
    p_rect = _calib_entry(cam2cam, f"P_rect_0{cam}", 12, cam_path).reshape(3, 4)
    width, height = _calib_entry(cam2cam, "S_rect_02", 2, cam_path).astype(int)
    return p_rect @ rect @ velo_to_cam, (int(height), int(width))


def generate_depth_map(calib_dir: str | Path, velo_filename: str | Path, cam: int = 2,
                       vel_depth: bool = False) -> np.ndarray:
    """Sparse float32 [H, W] depth map (metres, 0 = no point) from one velodyne scan.

    Same semantics as Monodepth2's GT: points with velodyne x < 0 (behind) are dropped; projected
    coordinates are rounded and shifted by -1 (the devkit's MATLAB-style indexing); where several
    points land on one pixel the closest depth is kept; negative depths become 0. Depth is the
    camera z, or with `vel_depth=True` the velodyne forward coordinate x (what `export_gt_depth.py`
    uses for the eigen split).
    """
    velo_to_im, (height, width) = velo_to_image_matrix(calib_dir, cam)
    velo = load_velodyne_points(velo_filename).astype(np.float64)
    velo = velo[velo[:, 0] >= 0]

    projected = velo @ velo_to_im.T  # [N, 3]: u*z, v*z, z
    depth = velo[:, 0] if vel_depth else projected[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):  # z == 0 gives inf/nan, dropped below
        cols = np.round(projected[:, 0] / projected[:, 2]) - 1
        rows = np.round(projected[:, 1] / projected[:, 2]) - 1
    inside = (cols >= 0) & (rows >= 0) & (cols < width) & (rows < height)
    flat = rows[inside].astype(int) * width + cols[inside].astype(int)

    depth_map = np.full(height * width, np.inf)
    np.minimum.at(depth_map, flat, depth[inside])  # closest point wins on duplicate pixels
    depth_map[~np.isfinite(depth_map) | (depth_map < 0)] = 0.0
    return depth_map.reshape(height, width).astype(np.float32)


__all__ = ["read_calib_file", "load_velodyne_points", "velo_to_image_matrix", "generate_depth_map"]
