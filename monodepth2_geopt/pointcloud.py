"""Depth maps as coloured point clouds, written as PLY (``test_simple.py --save_ply``).

Format: PLY 1.0, ``binary_little_endian`` by default (``ascii`` on request), one ``vertex`` element with float32
``x y z`` and uint8 ``red green blue``; ``comment`` lines in the header say what the coordinates are (unit, scale,
intrinsics). Meshlab, CloudCompare, Open3D and Blender read both encodings.
Convention: camera frame of the image, x right, y down, z forward (OpenCV / KITTI); z is the depth.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from monodepth2_geopt.errors import InputError
from monodepth2_geopt.fileio import atomic_path
from monodepth2_geopt.geometry import depth_to_points
from monodepth2_geopt.intrinsics import matrices

_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def point_cloud(depth: np.ndarray, image: np.ndarray, k_norm: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Points and colours of every pixel with a finite depth > 0.

    Args: depth float [H, W] (z-depth; the points come out in its unit); image uint8 [H, W, 3] RGB of the same size;
    k_norm normalised intrinsics (fx/W, fy/H, cx/W, cy/H) as ``--intrinsics``.
    Returns: points float32 [N, 3] in the camera frame (``geometry.depth_to_points``), colours uint8 [N, 3].
    """
    depth = np.asarray(depth)
    if depth.ndim != 2 or np.asarray(image).shape != (*depth.shape, 3):
        raise InputError(f"point_cloud needs depth [H, W] and an RGB image [H, W, 3] of the same size, got "
                         f"{depth.shape} and {np.asarray(image).shape}")
    h, w = depth.shape
    _, inv_K = matrices(torch.tensor([list(map(float, k_norm))], dtype=torch.float64), h, w)
    points = depth_to_points(torch.from_numpy(depth.astype(np.float64))[None, None], inv_K)[0].numpy()
    valid = np.isfinite(depth) & (depth > 0)
    return points[valid].astype(np.float32), np.asarray(image, dtype=np.uint8)[valid]


def write_ply(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray, comments: Sequence[str] = (),
              binary: bool = True) -> Path:
    """Write [N, 3] points (float32) and [N, 3] uint8 colours as PLY, atomically (``fileio.atomic_path``)."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if len(points) != len(colors):
        raise InputError(f"{len(points)} points but {len(colors)} colours")
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0"]
    header += [f"comment {c}".replace("\n", " ") for c in comments]
    header += [f"element vertex {len(points)}", "property float x", "property float y", "property float z",
               "property uchar red", "property uchar green", "property uchar blue", "end_header"]
    vertices = np.empty(len(points), _VERTEX)
    for i, name in enumerate("xyz"):
        vertices[name] = points[:, i]
    for i, name in enumerate(("red", "green", "blue")):
        vertices[name] = colors[:, i]
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        if binary:
            f.write(vertices.tobytes())
        else:
            for p, c in zip(points, colors):
                f.write(f"{p[0]:.6g} {p[1]:.6g} {p[2]:.6g} {c[0]} {c[1]} {c[2]}\n".encode("ascii"))
    return path


def read_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a PLY written by :func:`write_ply`: (points float32 [N, 3], colours uint8 [N, 3], header comments)."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    comments = [ln[len("comment "):] for ln in header if ln.startswith("comment ")]
    count = next(int(ln.split()[2]) for ln in header if ln.startswith("element vertex"))
    if "format binary_little_endian 1.0" in header:
        vertices = np.frombuffer(data[end:], _VERTEX, count)
        points = np.stack([vertices[n] for n in "xyz"], 1)
        colors = np.stack([vertices[n] for n in ("red", "green", "blue")], 1)
    else:
        rows = np.loadtxt(data[end:].decode("ascii").splitlines(), ndmin=2).reshape(-1, 6)[:count]
        points, colors = rows[:, :3].astype(np.float32), rows[:, 3:].astype(np.uint8)
    return points, colors, comments


__all__ = ["point_cloud", "write_ply", "read_ply"]
