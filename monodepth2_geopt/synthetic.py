"""Procedural synthetic driving world with exact ground truth, written in KITTI's own formats.

A camera drives down a straight street (textured road, lane markings, sidewalks, grass),
lined with box-shaped buildings at 6-15 m from the lane, a second row of tall buildings
further back, parked box "cars" and, optionally, independently moving cars. Everything is
ray cast exactly in NumPy (a ground plane plus axis-aligned boxes, one slab test per box,
with per-box screen-space culling), so depth, flow, poses, stereo and LiDAR are exact.

Conventions
-----------
* Units: metres, pixels, radians; one time step = one frame.
* **Camera frame** (every camera): x right, y down, z forward (KITTI / OpenCV). Depth = z.
* **Scene frame** (internal): same axes as the camera; origin at camera height above the
  road centre line at z = 0, so the road is the plane ``y = +camera_height`` (1.65 m).
  Objects are axis-aligned boxes in this frame; a moving box translates with a constant
  velocity (m/frame) and its texture is attached to it.
* **World frame** (everything written to disk, :attr:`View.pose`): the *first left camera*
  of the sequence. ``pose`` = 4x4 camera-to-world ``T_w_c`` (``X_w = T_w_c @ X_c``).
* **Pixels**: 0-based, pixel (row i, column j) is the image point ``u = j, v = i`` (the pixel
  centre), so ``[u, v, 1]^T ~ K X_c`` with no half-pixel offset. This is the convention of
  Monodepth2's ``BackprojectDepth`` / ``Project3D``.
* **Intrinsics**: Monodepth2's normalised KITTI K, ``fx = 0.58 W, fy = 1.92 H, cx = W/2,
  cy = H/2``, so the unchanged KITTI loader's default intrinsics are exact for this data.
* **Stereo**: the right camera (``image_03``) is the left one translated by +0.54 m along its
  own x axis (same orientation), so ``disparity = fx * 0.54 / depth`` and
  ``u_right = u_left - disparity``.
* **Velodyne** (KITTI axes x forward, y left, z up): ``X_cam = R X_velo + T`` with
  ``R = [[0,-1,0],[0,0,-1],[1,0,0]]`` and ``T = (0, -0.08, -0.27)``, i.e. the scanner sits
  8 cm above and 27 cm behind the left camera (1.73 m above the road).
* **Depth**: 0 means "no surface" (sky). Dense depth PNGs (KITTI depth benchmark) store
  ``round(depth * 256)`` as uint16; depths beyond 255.99 m are stored as 0 there (they are
  exact in the ``.npy`` files).
* **Flow** (left camera, frame t -> t+1): ``flow[i, j] = (u', v') - (j, i)`` where ``(u', v')``
  is the projection at t+1 of the 3D point seen at pixel (i, j) at t (moved with its object).
  Valid iff not sky, in front of camera t+1, inside ``[-0.5, W-0.5) x [-0.5, H-0.5)`` and not
  occluded at t+1 (exact shadow-ray test).

Data layout written by :func:`generate_dataset` (KITTI raw / Monodepth2 layout)::

    <root>/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt, calib_imu_to_velo.txt
    <root>/<date>/<date>_drive_XXXX_sync/
        image_02/data/%010d.<ext>            left colour
        image_03/data/%010d.<ext>            right colour
        velodyne_points/data/%010d.bin       float32 N x 4 (x, y, z, reflectance), velodyne frame
        proj_depth/groundtruth/image_0{2,3}/%010d.png   uint16 depth*256, 0 = no data
        depth/image_0{2,3}/%010d.npy         float32 exact depth (m), 0 = sky
        flow/image_02/%010d.png              KITTI flow PNG, t -> t+1 (not for the last frame)
        poses.txt                            KITTI odometry format, left camera to world
    <root>/splits/{train,val,test}_files.txt  "<date>/<date>_drive_XXXX_sync <frame> <l|r>"
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
from PIL import Image

from . import kitti_layout as layout
from .errors import InputError
from .fileio import atomic_dir
from .flow_io import write_flow_png

__all__ = [
    "CAMERA_HEIGHT",
    "KITTI_FX",
    "KITTI_FY",
    "STEREO_BASELINE",
    "VELO_TO_CAM_R",
    "VELO_TO_CAM_T",
    "View",
    "World",
    "generate_dataset",
    "generate_video",
    "kitti_intrinsics",
    "render_frame",
    "write_calibration",
]

PathLike = Union[str, "os.PathLike[str]"]

KITTI_FX = 0.58  # normalised focal lengths / principal point of Monodepth2's KITTI K
KITTI_FY = 1.92
STEREO_BASELINE = 0.54  # metres
CAMERA_HEIGHT = 1.65  # metres above the road
VELO_TO_CAM_R = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
VELO_TO_CAM_T = np.array([0.0, -0.08, -0.27])
VELO_ELEVATION_DEG = (-24.8, 2.0)
VELO_MAX_RANGE = 120.0

_NEAR = 1e-3  # near plane (m) for hits and culling
_BIG = 1e30
_LANE_X = 1.75  # centre of the camera's lane (m, +x = right)
_ROAD_HALF = 3.5  # driving lanes |x| < 3.5
_PARK_HALF = 5.5  # parking strips 3.5 < |x| < 5.5
_WALK_HALF = 7.5  # sidewalks 5.5 < |x| < 7.5
_GROUND_HALF_WIDTH = 100.0

# surface kinds
_SKY, _GROUND = 0, 1
_KIND_BUILDING, _KIND_CAR = 0, 1

# corner / edge tables of an axis-aligned box
_CORNER_SEL = np.array([[(c >> 0) & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)], dtype=bool)
_EDGES = np.array(
    [(a, b) for a in range(8) for b in range(a + 1, 8) if (a ^ b).bit_count() == 1], dtype=np.int64
)


def kitti_intrinsics(width: int, height: int) -> np.ndarray:
    """3x3 pinhole K (pixels) of Monodepth2's normalised KITTI intrinsics at ``width x height``."""
    return np.array(
        [[KITTI_FX * width, 0.0, 0.5 * width], [0.0, KITTI_FY * height, 0.5 * height], [0.0, 0.0, 1.0]]
    )


def _apply(v: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``v @ m.T`` for (..., 3) vectors and a 3x3 matrix, without BLAS.

    Multithreaded BLAS is very slow for these tall-skinny products on a busy machine.
    """
    return v[..., 0:1] * m[:, 0] + v[..., 1:2] * m[:, 1] + v[..., 2:3] * m[:, 2]


def _rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


# ----------------------------------------------------------------------------------------------
# Procedural texture helpers (float64, vectorised)
# ----------------------------------------------------------------------------------------------
_TABLE_BITS = 10
_TABLE_MASK = (1 << _TABLE_BITS) - 1
_TABLE: np.ndarray | None = None


def _noise_table() -> np.ndarray:
    """Fixed 1024x1024 lattice of uniform values (flattened), shared by all worlds."""
    global _TABLE
    if _TABLE is None:
        _TABLE = np.random.default_rng(0x7AB1E).random(1 << (2 * _TABLE_BITS)).astype(np.float32)
    return _TABLE


def _lattice_index(ix: np.ndarray, iy: np.ndarray, seed) -> tuple[np.ndarray, np.ndarray]:
    """Wrapped lattice coordinates of integer points, shifted by a seed-dependent offset."""
    seed = np.asarray(seed, dtype=np.int64)
    offx = (seed * 7919 + (seed >> 7) * 31) & _TABLE_MASK
    offy = (seed * 104729 + (seed >> 11) * 17) & _TABLE_MASK
    return (ix + offx) & _TABLE_MASK, (iy + offy) & _TABLE_MASK


def _hash01(ix: np.ndarray, iy: np.ndarray, seed) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer lattice point (and seed)."""
    bx, by = _lattice_index(np.asarray(ix).astype(np.int64), np.asarray(iy).astype(np.int64), seed)
    return _noise_table()[(bx << _TABLE_BITS) | by]


def _value_noise(x: np.ndarray, y: np.ndarray, seed) -> np.ndarray:
    """Smooth 2D value noise in [0, 1) (lattice period 1, pattern period 1024)."""
    fx, fy = np.floor(x), np.floor(y)
    tx, ty = x - fx, y - fy
    tx = tx * tx * (3.0 - 2.0 * tx)
    ty = ty * ty * (3.0 - 2.0 * ty)
    bx, by = _lattice_index(fx.astype(np.int64), fy.astype(np.int64), seed)
    bx1, by1 = (bx + 1) & _TABLE_MASK, (by + 1) & _TABLE_MASK
    bx <<= _TABLE_BITS
    bx1 <<= _TABLE_BITS
    table = _noise_table()
    n00, n10 = table[bx | by], table[bx1 | by]
    n01, n11 = table[bx | by1], table[bx1 | by1]
    a = n00 + tx * (n10 - n00)
    b = n01 + tx * (n11 - n01)
    return a + ty * (b - a)


def _fbm(x, y, seed, footprint, freq: float, octaves: int) -> np.ndarray:
    """Band-limited fractal noise, zero mean, roughly in [-0.5, 0.5].

    ``x, y`` in metres (or radians for the sky), ``footprint`` = size of a pixel in the same
    units; octaves finer than the pixel footprint fade to their mean (cheap anti-aliasing).
    """
    out = np.zeros_like(x)
    seed = np.broadcast_to(np.asarray(seed, dtype=np.int64), x.shape)
    footprint = np.broadcast_to(footprint, x.shape)
    norm = 0.0
    amp = 1.0
    for k in range(octaves):
        f = freq * (2.0 ** k)
        w = np.clip(1.5 - 2.0 * footprint * f, 0.0, 1.0)
        m = w > 0
        if m.all():
            out += amp * w * (_value_noise(x * f + 17.3 * k, y * f - 7.1 * k, seed + 101 * k) - 0.5)
        elif m.any():
            out[m] += amp * w[m] * (_value_noise(x[m] * f + 17.3 * k, y[m] * f - 7.1 * k, seed[m] + 101 * k) - 0.5)
        norm += amp
        amp *= 0.5
    return out / norm


def _pulse(u: np.ndarray, period, width, footprint) -> np.ndarray:
    """Box-filtered periodic pulse: 1 on ``[0, width)`` modulo ``period``, filtered over ``footprint``.

    Exact box filtering via the pulse's integral, computed relative to the current period to
    avoid cancellation.
    """
    fp = np.maximum(footprint, 1e-4)
    n = np.floor(u / period)
    ul = u - n * period  # in [0, period)

    def integral(v):
        m = np.floor(v / period)
        return m * width + np.minimum(v - m * period, width)

    return np.clip((integral(ul + 0.5 * fp) - integral(ul - 0.5 * fp)) / fp, 0.0, 1.0)


def _step(u: np.ndarray, edge, footprint) -> np.ndarray:
    """Box-filtered step function: 0 for u < edge, 1 for u > edge."""
    fp = np.maximum(footprint, 1e-4)
    return np.clip((u - edge) / fp + 0.5, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Rendering results
# ----------------------------------------------------------------------------------------------
@dataclass
class View:
    """One rendered camera view.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        depth: (H, W) float32 z-depth in metres in this camera's frame; 0 = sky (no surface).
        surface: (H, W) int32 surface id: 0 sky, 1 ground, 2 + k box k of the world.
        points: (H, W, 3) float64 hit points in the internal scene frame (NaN for sky); map them
            to the world frame with :attr:`World.scene_to_world`.
        pose: (4, 4) camera-to-world transform (world = first left camera).
        K: (3, 3) intrinsics in pixels.
    """

    image: np.ndarray
    depth: np.ndarray
    surface: np.ndarray
    points: np.ndarray
    pose: np.ndarray
    K: np.ndarray


@dataclass
class _Hits:
    t: np.ndarray  # ray parameter of the nearest hit (_BIG if none)
    surf: np.ndarray  # surface id (0 = none / sky)
    axis: np.ndarray  # axis of the hit face normal (0, 1, 2)


# ----------------------------------------------------------------------------------------------
# The world
# ----------------------------------------------------------------------------------------------
class World:
    """A procedurally generated street and a camera trajectory through it.

    Args:
        seed: any int; the same seed gives the same world, trajectory and images (bitwise).
        num_frames: number of frames of the trajectory (the world is built to cover it).
        width, height: image size in pixels.
        moving_objects: number of independently moving cars (oncoming lane and ahead in the
            camera's lane, never colliding with the camera or each other).
        speed: mean camera speed in m/frame (each world varies it by ±15 %, plus ±10 % along
            the drive).
        brightness_change: amplitude of the smooth per-frame global gain (0 = none); the gain
            is the same for the left and right images of a frame.
        baseline: stereo baseline in metres (right camera at +baseline along camera x).
        K: optional 3x3 intrinsics; default :func:`kitti_intrinsics`.
    """

    def __init__(
        self,
        seed: int = 0,
        num_frames: int = 100,
        width: int = 320,
        height: int = 96,
        moving_objects: int = 0,
        speed: float = 1.0,
        brightness_change: float = 0.02,
        baseline: float = STEREO_BASELINE,
        K: np.ndarray | None = None,
    ) -> None:
        if num_frames < 1 or width < 2 or height < 2:
            raise ValueError("need num_frames >= 1 and an image of at least 2x2 pixels")
        self.seed = int(seed)
        self.num_frames = int(num_frames)
        self.width = int(width)
        self.height = int(height)
        self.baseline = float(baseline)
        self.brightness_change = float(brightness_change)
        self.K = kitti_intrinsics(width, height) if K is None else np.asarray(K, dtype=np.float64)
        self._rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x5EED]))
        self._make_trajectory(float(speed))
        self._make_style()
        self._make_scene(int(moving_objects))
        # pixel-grid rays in the camera frame (z component 1 -> ray parameter = depth)
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        self._grid_a = (np.arange(self.width) - cx) / fx
        self._grid_b = (np.arange(self.height) - cy) / fy
        d = np.ones((self.height, self.width, 3))
        d[..., 0] = self._grid_a[None, :]
        d[..., 1] = self._grid_b[:, None]
        self._grid_dirs_cam = d.reshape(-1, 3)
        self._pix_angle = 1.0 / min(fx, fy)  # angular size of a pixel (rad)

    # ------------------------------------------------------------------ generation
    def _make_trajectory(self, speed: float) -> None:
        rng = self._rng
        n = self.num_frames
        base = speed * rng.uniform(0.85, 1.15)
        f = np.arange(n, dtype=np.float64)
        step = base * (1.0 + 0.1 * np.sin(2 * np.pi * f / rng.uniform(40, 90) + rng.uniform(0, 2 * np.pi)))
        z = np.concatenate([[0.0], np.cumsum(step[:-1])])
        amp, period, phase = rng.uniform(0.1, 0.5), rng.uniform(40.0, 120.0), rng.uniform(0, 2 * np.pi)
        x = _LANE_X + amp * np.sin(2 * np.pi * z / period + phase)
        yaw = np.arctan(amp * 2 * np.pi / period * np.cos(2 * np.pi * z / period + phase))
        self._cam_pos = np.stack([x, np.zeros(n), z], axis=1)  # scene frame
        self._cam_yaw = yaw
        self._cam_rot = np.stack([_rot_y(a) for a in yaw])  # camera -> scene
        self._max_step = float(step.max())
        g = np.arange(n, dtype=np.float64)
        wobble = 0.6 * np.sin(2 * np.pi * g / rng.uniform(20, 50) + rng.uniform(0, 6.3)) + 0.4 * np.sin(
            2 * np.pi * g / rng.uniform(5, 15) + rng.uniform(0, 6.3)
        )
        self._gain = 1.0 + self.brightness_change * wobble
        # world frame = first camera
        t0 = np.eye(4)
        t0[:3, :3], t0[:3, 3] = self._cam_rot[0], self._cam_pos[0]
        self._scene_to_world = np.linalg.inv(t0)

    def _make_style(self) -> None:
        rng = self._rng
        s = rng.uniform(0.5, 1.0)
        self._sun = np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.9), -1.0, rng.uniform(-0.6, 0.6)])
        self._sun /= np.linalg.norm(self._sun)
        self._ambient = rng.uniform(0.45, 0.6)
        self._sky_horizon = np.array([0.78, 0.82, 0.88]) * rng.uniform(0.9, 1.05)
        self._sky_zenith = np.array([0.25, 0.45, 0.8]) * s + (1 - s) * np.array([0.55, 0.6, 0.7])
        self._asphalt = rng.uniform(0.25, 0.4)
        self._walk = np.array([0.62, 0.6, 0.56]) * rng.uniform(0.8, 1.1)
        self._grass = np.array([0.22, 0.38, 0.14]) * rng.uniform(0.8, 1.2)
        self._tex_seed = int(rng.integers(0, 2 ** 31))

    def _make_scene(self, moving_objects: int) -> None:
        rng = self._rng
        z_last = float(self._cam_pos[-1, 2])
        g = CAMERA_HEIGHT
        n_frames = self.num_frames
        # moving cars: one speed per lane, so they never collide with each other or the camera
        moving: list[tuple[list[float], list[float], list[float], int]] = []
        v_on = -rng.uniform(0.6, 1.5)  # oncoming lane
        v_own = self._max_step + rng.uniform(0.2, 0.8)  # camera's lane, ahead and pulling away
        n_on = moving_objects - 1 if moving_objects >= 2 else moving_objects  # one car ahead, rest oncoming
        # oncoming cars meet the camera after about z0 / (1 + |v|) frames: spread that over the drive
        gap_on = max((1.0 + abs(v_on)) * z_last / max(n_on, 1), 14.0)
        z_on = rng.uniform(15.0, 40.0)
        far = z_last + 150.0
        for k in range(moving_objects):
            length, w, h = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9), rng.uniform(1.35, 2.1)
            if k != 1:
                xc, vz, z0 = -_LANE_X + rng.uniform(-0.2, 0.2), v_on, z_on
                z_on += max(gap_on * rng.uniform(0.7, 1.3), length + 8.0)
            else:
                xc, vz, z0 = _LANE_X + rng.uniform(-0.1, 0.1), v_own, rng.uniform(10.0, 25.0)
            moving.append(([xc - w / 2, g - h, z0], [xc + w / 2, g, z0 + length], [0, 0, vz], _KIND_CAR))
            far = max(far, z0 + length + max(vz, 0.0) * n_frames + 10.0)
        # the world (ground, buildings) covers the trajectory, 150 m beyond it and every moving car
        self._z_min, self._z_max = -40.0, far
        boxes: list[tuple[list[float], list[float], list[float], int]] = []  # (min, max, vel, kind)
        for side in (-1.0, 1.0):
            # front row of buildings
            z = self._z_min + rng.uniform(0, 5)
            while z < self._z_max:
                length, depth = rng.uniform(6, 20), rng.uniform(6, 12)
                inner, h = rng.uniform(_WALK_HALF, 15.0), rng.uniform(4, 18)
                x0, x1 = sorted((side * inner, side * (inner + depth)))
                boxes.append(([x0, g - h, z], [x1, g, z + length], [0, 0, 0], _KIND_BUILDING))
                z += length + (rng.uniform(0.5, 2.0) if rng.random() < 0.6 else rng.uniform(3.0, 12.0))
            # back row of tall buildings
            z = self._z_min - rng.uniform(0, 10)
            while z < self._z_max + 40:
                length, depth = rng.uniform(15, 35), rng.uniform(10, 25)
                inner, h = rng.uniform(30.0, 40.0), rng.uniform(10, 35)
                x0, x1 = sorted((side * inner, side * (inner + depth)))
                boxes.append(([x0, g - h, z], [x1, g, z + length], [0, 0, 0], _KIND_BUILDING))
                z += length + rng.uniform(0.5, 10.0)
            # parked cars
            z = self._z_min + rng.uniform(0, 10)
            while z < self._z_max:
                length, w, h = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9), rng.uniform(1.35, 2.1)
                if rng.random() < 0.6:
                    xc = side * (_ROAD_HALF + 1.0 + rng.uniform(-0.1, 0.1))
                    boxes.append(([xc - w / 2, g - h, z], [xc + w / 2, g, z + length], [0, 0, 0], _KIND_CAR))
                z += length + rng.uniform(1.0, 12.0)
        boxes += moving
        self._box_min0 = np.array([b[0] for b in boxes], dtype=np.float64).reshape(-1, 3)
        self._box_max0 = np.array([b[1] for b in boxes], dtype=np.float64).reshape(-1, 3)
        self._box_vel = np.array([b[2] for b in boxes], dtype=np.float64).reshape(-1, 3)
        self._box_kind = np.array([b[3] for b in boxes], dtype=np.int64)
        nb = len(boxes)
        # per-box appearance
        palette = np.array(
            [[0.75, 0.7, 0.62], [0.6, 0.35, 0.28], [0.82, 0.8, 0.75], [0.5, 0.5, 0.52], [0.7, 0.6, 0.4],
             [0.4, 0.45, 0.5], [0.85, 0.75, 0.6], [0.55, 0.42, 0.35]]
        )
        car_palette = np.array(
            [[0.8, 0.1, 0.1], [0.1, 0.2, 0.6], [0.9, 0.9, 0.9], [0.15, 0.15, 0.15], [0.6, 0.6, 0.62],
             [0.1, 0.45, 0.2], [0.85, 0.7, 0.1], [0.35, 0.25, 0.45]]
        )
        col_b = palette[rng.integers(0, len(palette), nb)] * rng.uniform(0.75, 1.15, (nb, 1))
        col_c = car_palette[rng.integers(0, len(car_palette), nb)] * rng.uniform(0.85, 1.1, (nb, 1))
        self._box_color = np.clip(np.where((self._box_kind == _KIND_CAR)[:, None], col_c, col_b), 0, 1)
        self._box_seed = rng.integers(0, 2 ** 31, nb)
        self._win_period = np.stack([rng.uniform(2.2, 4.0, nb), rng.uniform(2.8, 3.6, nb)], axis=1)
        self._win_frac = np.stack([rng.uniform(0.35, 0.65, nb), rng.uniform(0.4, 0.6, nb)], axis=1)
        self._win_on = rng.random(nb) < 0.85

    # ------------------------------------------------------------------ poses
    def camera_to_scene(self, frame: int, side: str = "l") -> np.ndarray:
        """4x4 transform from camera ``side`` ('l' or 'r') at ``frame`` to the scene frame."""
        t = np.eye(4)
        t[:3, :3] = self._cam_rot[frame]
        t[:3, 3] = self._cam_pos[frame]
        if side == "r":
            t[:3, 3] = t[:3, 3] + self._cam_rot[frame] @ np.array([self.baseline, 0.0, 0.0])
        elif side != "l":
            raise ValueError(f"side must be 'l' or 'r', got {side!r}")
        return t

    def pose(self, frame: int, side: str = "l") -> np.ndarray:
        """4x4 camera-to-world pose (world = first left camera; x right, y down, z forward).

        Computed from the relative yaw so that ``pose(0, 'l')`` is exactly the identity.
        """
        c2s = self.camera_to_scene(frame, side)
        t = np.eye(4)
        t[:3, :3] = _rot_y(self._cam_yaw[frame] - self._cam_yaw[0])
        t[:3, 3] = self._cam_rot[0].T @ (c2s[:3, 3] - self._cam_pos[0])
        return t + 0.0  # no negative zeros

    @property
    def scene_to_world(self) -> np.ndarray:
        """4x4 transform from the internal scene frame (:attr:`View.points`) to the world frame."""
        return self._scene_to_world.copy()

    @property
    def poses(self) -> np.ndarray:
        """(N, 4, 4) left camera-to-world poses for all frames."""
        return np.stack([self.pose(f) for f in range(self.num_frames)])

    def gain(self, frame: int) -> float:
        """Global brightness gain applied to both images of ``frame``."""
        return float(self._gain[frame])

    def boxes_at(self, time: float) -> tuple[np.ndarray, np.ndarray]:
        """(min corners, max corners), each (B, 3), of all boxes at ``time`` (frames), scene frame."""
        off = self._box_vel * time
        return self._box_min0 + off, self._box_max0 + off

    # ------------------------------------------------------------------ ray casting
    def _box_rects(self, origin: np.ndarray, rot: np.ndarray, bmin: np.ndarray, bmax: np.ndarray):
        """Conservative bounding rectangles of every box in the normalised image plane
        (a = x/z, b = y/z) of a camera at ``origin`` with camera-to-scene rotation ``rot``.

        The box is clipped against the plane z = _NEAR first. Returns (keep, a0, a1, b0, b1,
        zmin) where zmin is a lower bound of the camera-frame depth of any visible box point.
        """
        corners = np.where(_CORNER_SEL[None], bmax[:, None, :], bmin[:, None, :])  # (B, 8, 3)
        c = _apply(corners - origin, rot.T)  # camera coordinates
        z = c[..., 2]
        front = z > _NEAR
        z0, z1 = z[:, _EDGES[:, 0]], z[:, _EDGES[:, 1]]
        cross = (z0 - _NEAR) * (z1 - _NEAR) < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(cross, (_NEAR - z0) / (z1 - z0), 0.0)
            pe = c[:, _EDGES[:, 0]] + s[..., None] * (c[:, _EDGES[:, 1]] - c[:, _EDGES[:, 0]])
            a = np.concatenate([c[..., 0] / np.where(front, z, 1.0), pe[..., 0] / _NEAR], axis=1)
            b = np.concatenate([c[..., 1] / np.where(front, z, 1.0), pe[..., 1] / _NEAR], axis=1)
        ok = np.concatenate([front, cross], axis=1)
        a0 = np.where(ok, a, np.inf).min(1)
        a1 = np.where(ok, a, -np.inf).max(1)
        b0 = np.where(ok, b, np.inf).min(1)
        b1 = np.where(ok, b, -np.inf).max(1)
        zmin = np.maximum(z.min(1), _NEAR)
        return ok.any(1), a0, a1, b0, b1, zmin

    @staticmethod
    def _slab(origin, d, inv_d, bmin, bmax):
        """Ray/box slab test. Returns (t_enter, t_exit, axis of the entry face)."""
        t1 = (bmin - origin) * inv_d
        t2 = (bmax - origin) * inv_d
        tlo = np.minimum(t1, t2)
        thi = np.maximum(t1, t2)
        axis = tlo.argmax(-1)
        return tlo.max(-1), thi.min(-1), axis

    @staticmethod
    def _inv(d: np.ndarray) -> np.ndarray:
        safe = np.where(np.abs(d) < 1e-30, np.where(d < 0, -1e-30, 1e-30), d)
        return 1.0 / safe

    def _cast_grid(self, origin: np.ndarray, rot: np.ndarray, time: float, with_ground: bool = True) -> _Hits:
        """Cast the pixel-grid rays of a camera (origin, camera-to-scene rot). t = depth."""
        h, w = self.height, self.width
        d = _apply(self._grid_dirs_cam, rot).reshape(h, w, 3)
        inv_d = self._inv(d)
        t = np.full((h, w), _BIG)
        surf = np.zeros((h, w), np.int32)
        axis = np.ones((h, w), np.int8)
        if with_ground:
            self._ground(origin, d, t, surf)
        bmin, bmax = self.boxes_at(time)
        keep, a0, a1, b0, b1, zmin = self._box_rects(origin, rot, bmin, bmax)
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        j0 = np.clip(np.ceil(np.clip(a0 * fx + cx, -1e9, 1e9)) - 1, 0, w).astype(np.int64)
        j1 = np.clip(np.floor(np.clip(a1 * fx + cx, -1e9, 1e9)) + 2, 0, w).astype(np.int64)
        i0 = np.clip(np.ceil(np.clip(b0 * fy + cy, -1e9, 1e9)) - 1, 0, h).astype(np.int64)
        i1 = np.clip(np.floor(np.clip(b1 * fy + cy, -1e9, 1e9)) + 2, 0, h).astype(np.int64)
        cand = np.flatnonzero(keep & (j1 > j0) & (i1 > i0))
        for k in cand[np.argsort(zmin[cand], kind="stable")]:  # front to back
            sl = (slice(i0[k], i1[k]), slice(j0[k], j1[k]))
            if t[sl].max() < zmin[k]:  # everything in the rectangle is already nearer (t = depth)
                continue
            tn, tf, ax = self._slab(origin, d[sl], inv_d[sl], bmin[k], bmax[k])
            tcur = t[sl]
            hit = (tn <= tf) & (tn > _NEAR) & (tn < tcur)
            if hit.any():
                tcur[hit] = tn[hit]
                surf[sl][hit] = 2 + k
                axis[sl][hit] = ax[hit]
        return _Hits(t, surf, axis)

    def _ground(self, origin, d, t, surf) -> None:
        """Intersect rays with the finite ground rectangle (y = CAMERA_HEIGHT); updates t, surf."""
        with np.errstate(divide="ignore", invalid="ignore"):
            tg = np.where(d[..., 1] > 1e-12, (CAMERA_HEIGHT - origin[1]) / d[..., 1], _BIG)
        px = origin[0] + tg * d[..., 0]
        pz = origin[2] + tg * d[..., 2]
        ok = (tg < t) & (np.abs(px) <= _GROUND_HALF_WIDTH) & (pz >= self._z_min) & (pz <= self._z_max)
        t[ok] = tg[ok]
        surf[ok] = _GROUND

    def _cast_rays(
        self,
        origin: np.ndarray,
        rot: np.ndarray,
        d: np.ndarray,
        time: float,
        t_max: float | np.ndarray = _BIG,
        exclude: np.ndarray | None = None,
        with_ground: bool = True,
    ) -> _Hits:
        """Cast arbitrary rays ``origin + t d`` (d: (N, 3) scene frame) that share an origin.

        ``rot`` is a reference camera-to-scene rotation used only for culling. Hits with
        t >= t_max or on the per-ray ``exclude`` surface id are ignored.
        """
        n = len(d)
        inv_d = self._inv(d)
        t = np.broadcast_to(np.asarray(t_max, dtype=np.float64), (n,)).copy()
        surf = np.zeros(n, np.int32)
        axis = np.ones(n, np.int8)
        if with_ground:
            self._ground(origin, d, t, surf)
        dc = _apply(d, rot.T)
        front = dc[:, 2] > 1e-9
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(front, dc[:, 0] / dc[:, 2], 0.0)
            b = np.where(front, dc[:, 1] / dc[:, 2], 0.0)
        order = np.argsort(a[front], kind="stable")
        front_idx = np.flatnonzero(front)[order]
        a_sorted = a[front_idx]
        b_sorted = b[front_idx]
        behind_idx = np.flatnonzero(~front)
        bmin, bmax = self.boxes_at(time)
        keep, a0, a1, b0, b1, _ = self._box_rects(origin, rot, bmin, bmax)
        lo = np.searchsorted(a_sorted, a0, side="left")
        hi = np.searchsorted(a_sorted, a1, side="right")
        for k in np.flatnonzero(keep & (hi > lo)):
            cand = front_idx[lo[k] : hi[k]]
            bb = b_sorted[lo[k] : hi[k]]
            idx = cand[(bb >= b0[k]) & (bb <= b1[k])]
            if len(behind_idx):
                idx = np.concatenate([idx, behind_idx])
            if exclude is not None:
                idx = idx[exclude[idx] != 2 + k]
            if len(idx) == 0:
                continue
            tn, tf, ax = self._slab(origin, d[idx], inv_d[idx], bmin[k], bmax[k])
            hit = (tn <= tf) & (tn > _NEAR * 1e-3) & (tn < t[idx])
            if hit.any():
                sel = idx[hit]
                t[sel] = tn[hit]
                surf[sel] = 2 + k
                axis[sel] = ax[hit]
        return _Hits(t, surf, axis)

    # ------------------------------------------------------------------ shading
    def _albedo(self, p: np.ndarray, surf: np.ndarray, axis: np.ndarray, time: float, fp: np.ndarray) -> np.ndarray:
        """Diffuse colour (N, 3) in [0, 1] of hit points ``p`` (scene frame), footprint ``fp`` (m)."""
        n = len(p)
        out = np.zeros((n, 3))
        g = surf == _GROUND
        if g.any():
            out[g] = self._ground_albedo(p[g], fp[g])
        bx = surf >= 2
        if bx.any():
            out[bx] = self._box_albedo(p[bx], surf[bx] - 2, axis[bx], time, fp[bx])
        return out

    def _ground_albedo(self, p, fp):
        x, z = p[:, 0], p[:, 2]
        ax = np.abs(x)
        seed = self._tex_seed
        w_walk = _step(ax, _PARK_HALF, fp)
        w_grass = _step(ax, _WALK_HALF, fp)
        col = np.zeros((len(p), 3))
        m = w_walk < 1  # road (lanes + parking strips)
        if m.any():
            xm, zm, fm, am = x[m], z[m], fp[m], ax[m]
            tex = 0.5 * _fbm(xm, zm, seed, fm, 4.0, 3) + 0.5 * _fbm(xm, zm, seed + 7, fm, 0.6, 3)
            asphalt = self._asphalt * (1.0 + 1.1 * tex)[:, None] * np.array([1.0, 1.0, 1.03])
            # lane markings: dashed centre line, solid lines at the lane edges
            centre = _pulse(xm + 0.075, 1e4, 0.15, fm) * _pulse(zm, 9.0, 3.0, fm)
            edge = _pulse(am - _ROAD_HALF + 0.075, 1e4, 0.15, fm)
            paint = np.clip(centre + edge, 0, 1)[:, None]
            col[m] += (asphalt * (1 - paint) + 0.85 * paint) * (1 - w_walk[m])[:, None]
        m = (w_walk > 0) & (w_grass < 1)  # sidewalk with tiles and a dark kerb
        if m.any():
            xm, zm, fm, am = x[m], z[m], fp[m], ax[m]
            tiles = 1.0 - 0.35 * np.maximum(_pulse(xm, 0.8, 0.06, fm), _pulse(zm, 0.8, 0.06, fm))
            kerb = 1.0 - 0.5 * _pulse(am - _PARK_HALF, 1e4, 0.15, fm)
            walk = self._walk[None, :] * ((tiles + 0.4 * _fbm(xm, zm, seed + 3, fm, 3.0, 2)) * kerb)[:, None]
            col[m] += walk * (w_walk[m] * (1 - w_grass[m]))[:, None]
        m = w_grass > 0  # grass / dirt
        if m.any():
            xm, zm, fm = x[m], z[m], fp[m]
            grass = self._grass[None, :] * (1.0 + 1.2 * _fbm(xm, zm, seed + 5, fm, 2.0, 3))[:, None]
            col[m] += grass * w_grass[m][:, None]
        return col

    def _box_albedo(self, p, k, axis, time, fp):
        bmin = self._box_min0[k] + self._box_vel[k] * time
        loc = p - bmin  # texture coordinates in the box's own frame
        up = self._box_max0[k, 1] - self._box_min0[k, 1] - loc[:, 1]  # height above the box's bottom
        u = np.where(axis == 0, loc[:, 2], loc[:, 0])
        v = np.where(axis == 1, loc[:, 2], up)
        seed = self._box_seed[k] + 1000 * axis
        car = self._box_kind[k] == _KIND_CAR
        noise = 0.25 * _fbm(u, v, seed, fp, 0.8, 2) + 0.2 * _fbm(u, v, seed + 11, fp, 5.0, 2)
        col = self._box_color[k] * (1.0 + np.where(car, 0.3, 1.0) * noise)[:, None]
        side = axis != 1
        # buildings: windows on vertical faces above a darker ground-floor band; darker roofs
        m = side & ~car
        if m.any():
            km, um, vm, fm = k[m], u[m], v[m], fp[m]
            per, frac = self._win_period[km], self._win_frac[km]
            wx, wy = per[:, 0] * frac[:, 0], per[:, 1] * frac[:, 1]
            win = _pulse(um - 0.5 * (per[:, 0] - wx), per[:, 0], wx, fm) * _pulse(
                vm - 0.5 * (per[:, 1] - wy), per[:, 1], wy, fm
            )
            win *= self._win_on[km] * _step(vm, 2.5, fm)
            glass_l = 0.08 + 0.3 * _hash01(np.floor(um / per[:, 0]), np.floor(vm / per[:, 1]), seed[m] + 5)
            glass = glass_l[:, None] * np.array([0.85, 0.95, 1.15])
            floor = _step(vm, 2.2, fm) * (1 - _step(vm, 2.5, fm))
            cm = col[m] * (1 - 0.35 * floor)[:, None]
            col[m] = cm * (1 - win[:, None]) + glass * win[:, None]
        col[~side & ~car] *= 0.6
        # cars: dark window band in the upper part of the sides, dark bumper band
        m = side & car
        if m.any():
            km, vm, fm = k[m], v[m], fp[m]
            hgt = self._box_max0[km, 1] - self._box_min0[km, 1]
            band = _step(vm, 0.55 * hgt, fm) * (1 - _step(vm, 0.92 * hgt, fm))
            bump = 1 - _step(vm, 0.35, fm)
            cm = col[m] * (1 - band[:, None]) + 0.12 * band[:, None]
            col[m] = cm * (1 - 0.6 * bump[:, None])
        return col

    def _sky(self, d: np.ndarray) -> np.ndarray:
        """Sky colour (N, 3) as a function of the scene-frame ray direction only (at infinity)."""
        dn = d / np.linalg.norm(d, axis=1, keepdims=True)
        elev = -dn[:, 1]
        az = np.arctan2(dn[:, 0], dn[:, 2])
        t = np.clip(elev * 4.0, 0.0, 1.0) ** 0.7
        col = self._sky_horizon * (1 - t[:, None]) + self._sky_zenith * t[:, None]
        cloud = _fbm(az * 3.0, elev * 8.0, self._tex_seed + 99, self._pix_angle * 8.0, 1.0, 4)
        cloud = np.clip((cloud + 0.05) * 4.0, 0.0, 1.0) * np.clip(elev * 10 + 0.3, 0, 1)
        return col * (1 - cloud[:, None]) + 0.95 * cloud[:, None]

    def _shade(self, origin, d, hits: _Hits, time: float, gain: float) -> tuple[np.ndarray, np.ndarray]:
        """RGB in [0, 1] for flat rays (N, 3) and the hit points (NaN for sky)."""
        t, surf, axis = hits.t, hits.surf, hits.axis
        hit = surf > 0
        p = np.full(d.shape, np.nan)
        p[hit] = origin + t[hit, None] * d[hit]
        rgb = np.empty(d.shape)
        if (~hit).any():
            rgb[~hit] = self._sky(d[~hit])
        if hit.any():
            dh = d[hit]
            ax = axis[hit].astype(np.int64)
            comp = dh[np.arange(len(dh)), ax]
            dnorm = np.sqrt(np.einsum("ij,ij->i", dh, dh))
            dist = t[hit] * dnorm
            cosang = np.abs(comp) / dnorm
            # pixel footprint on the surface (m): geometric mean of the two axes of the ellipse
            fp = dist * self._pix_angle / np.sqrt(np.maximum(cosang, 0.05))
            alb = self._albedo(p[hit], surf[hit], ax, time, fp)
            normal = np.zeros_like(dh)
            normal[np.arange(len(dh)), ax] = -np.sign(comp)
            lam = np.maximum(_apply(normal, self._sun[None, :])[:, 0], 0.0)
            rgb[hit] = alb * (self._ambient + (1 - self._ambient) * lam)[:, None]
        return rgb * gain, p

    # ------------------------------------------------------------------ public rendering
    def render(self, frame: int, side: str = "l") -> View:
        """Render camera ``side`` ('l' = image_02, 'r' = image_03) at ``frame``."""
        if not 0 <= frame < self.num_frames:
            raise IndexError(f"frame {frame} outside [0, {self.num_frames})")
        c2s = self.camera_to_scene(frame, side)
        origin, rot = c2s[:3, 3], c2s[:3, :3]
        hits = self._cast_grid(origin, rot, float(frame))
        d = _apply(self._grid_dirs_cam, rot)
        flat = _Hits(hits.t.reshape(-1), hits.surf.reshape(-1), hits.axis.reshape(-1))
        rgb, p = self._shade(origin, d, flat, float(frame), self.gain(frame))
        h, w = self.height, self.width
        image = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8).reshape(h, w, 3)
        depth = np.where(hits.surf > 0, hits.t, 0.0).astype(np.float32)
        return View(image, depth, hits.surf, p.reshape(h, w, 3), self.pose(frame, side), self.K.copy())

    def flow(self, frame: int, view: View | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact optical flow of the left camera from ``frame`` to ``frame + 1``.

        Args:
            frame: source frame t (0 <= t < num_frames - 1).
            view: the left :class:`View` of ``frame`` if already rendered (saves a render).

        Returns:
            flow (H, W, 2) float32 pixels (0 where invalid) and valid (H, W) bool.
        """
        if not 0 <= frame < self.num_frames - 1:
            raise IndexError(f"flow needs 0 <= frame < {self.num_frames - 1}")
        if view is None:
            view = self.render(frame, "l")
        h, w = self.height, self.width
        surf = view.surface.reshape(-1)
        p = view.points.reshape(-1, 3).copy()
        hit = surf > 0
        box = np.where(surf >= 2, surf - 2, 0)
        p[hit] += np.where((surf[hit] >= 2)[:, None], self._box_vel[box[hit]], 0.0)  # move with object
        c2s = self.camera_to_scene(frame + 1, "l")
        o1, r1 = c2s[:3, 3], c2s[:3, :3]
        pc = _apply(p - o1, r1.T)
        z = pc[:, 2]
        ok = hit & (z > _NEAR)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.K[0, 0] * pc[:, 0] / z + self.K[0, 2]
            v = self.K[1, 1] * pc[:, 1] / z + self.K[1, 2]
        ok &= (u >= -0.5) & (u < w - 0.5) & (v >= -0.5) & (v < h - 0.5)
        # self-occlusion: a point on a box face is visible iff the camera is in front of the face
        t1 = float(frame + 1)
        idx = np.flatnonzero(ok)
        if len(idx):
            sb = surf[idx] >= 2
            if sb.any():
                ib = idx[sb]
                bmin, bmax = self.boxes_at(t1)
                kk = surf[ib] - 2
                # recover the face from the point: the coordinate closest to a slab plane
                dmin = np.abs(p[ib] - bmin[kk])
                dmax = np.abs(p[ib] - bmax[kk])
                dd = np.minimum(dmin, dmax)
                view_axes = dd.argmin(1)
                r = np.arange(len(ib))
                sign = np.where(dmax[r, view_axes] < dmin[r, view_axes], 1.0, -1.0)
                front_side = (o1[view_axes] - p[ib, view_axes]) * sign > 0
                ok[ib[~front_side]] = False
            idx = np.flatnonzero(ok)
        # occlusion by any other object: shadow rays from camera t+1 towards the moved points
        if len(idx):
            dshadow = p[idx] - o1
            sh = self._cast_rays(o1, r1, dshadow, t1, t_max=1.0 - 1e-6, exclude=surf[idx], with_ground=False)
            ok[idx[sh.surf > 0]] = False
        flow = np.zeros((h * w, 2), np.float32)
        jj, ii = np.meshgrid(np.arange(w), np.arange(h))
        flow[ok, 0] = (u[ok] - jj.reshape(-1)[ok]).astype(np.float32)
        flow[ok, 1] = (v[ok] - ii.reshape(-1)[ok]).astype(np.float32)
        return flow.reshape(h, w, 2), ok.reshape(h, w)

    def velodyne_scan(
        self,
        frame: int,
        rings: int = 64,
        azimuths: int = 2000,
        fov_deg: float = 50.0,
        frustum_only: bool = True,
    ) -> np.ndarray:
        """Simulated 64-beam LiDAR scan (front sector only) in velodyne coordinates.

        Rays: ``rings`` elevations evenly spaced in [-24.8°, +2°], azimuth step 360°/``azimuths``
        within ±``fov_deg`` of the forward direction, cast from the velodyne origin (so occlusion
        differs slightly from the camera's, as with a real sensor). With ``frustum_only`` only
        rays whose direction falls inside the left image (plus a 5 % margin) are cast.
        Returns float32 (N, 4): x forward, y left, z up (m), reflectance in [0, 1] (coarse
        surface albedo). Sky and returns beyond 120 m are dropped.
        """
        el = np.deg2rad(np.linspace(VELO_ELEVATION_DEG[0], VELO_ELEVATION_DEG[1], rings))
        step = 2 * np.pi / azimuths
        naz = int(np.floor(np.deg2rad(fov_deg) / step))
        az = np.arange(-naz, naz + 1) * step
        ee, aa = np.meshgrid(el, az, indexing="ij")
        dv = np.stack([np.cos(ee) * np.cos(aa), np.cos(ee) * np.sin(aa), np.sin(ee)], -1).reshape(-1, 3)
        dcam = _apply(dv, VELO_TO_CAM_R)
        if frustum_only:
            u = self.K[0, 0] * dcam[:, 0] / dcam[:, 2] + self.K[0, 2]
            v = self.K[1, 1] * dcam[:, 1] / dcam[:, 2] + self.K[1, 2]
            mw, mh = 0.05 * self.width + 1, 0.05 * self.height + 1
            keep = (u > -mw) & (u < self.width - 1 + mw) & (v > -mh) & (v < self.height - 1 + mh)
            dv, dcam = dv[keep], dcam[keep]
        c2s = self.camera_to_scene(frame, "l")
        rot = c2s[:3, :3]
        origin = rot @ VELO_TO_CAM_T + c2s[:3, 3]
        d = _apply(dcam, rot)  # velodyne -> camera -> scene
        hits = self._cast_rays(origin, rot, d, float(frame), t_max=VELO_MAX_RANGE)
        m = hits.surf > 0
        t, surf, axis = hits.t[m], hits.surf[m], hits.axis[m]
        pts = dv[m] * t[:, None]
        p_scene = origin + d[m] * t[:, None]
        # a large footprint filters the textures down to their mean colours (cheap)
        refl = self._albedo(p_scene, surf, axis.astype(np.int64), float(frame), np.full(len(t), 50.0)).mean(1)
        return np.concatenate([pts, np.clip(refl, 0, 1)[:, None]], axis=1).astype(np.float32)


def render_frame(
    seed: int = 0,
    frame: int = 0,
    width: int = 320,
    height: int = 96,
    side: str = "l",
    num_frames: int | None = None,
    **world_kwargs,
) -> View:
    """Convenience: build a :class:`World` and render one view (image, depth, pose, K in memory)."""
    world = World(seed=seed, num_frames=num_frames or frame + 2, width=width, height=height, **world_kwargs)
    return world.render(frame, side)


# ----------------------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------------------
def _fmt(values: Sequence[float]) -> str:
    """KITTI-style '%e' numbers, with more digits only where needed to be exact."""
    out = []
    for v in np.asarray(values, dtype=np.float64).reshape(-1):
        s = f"{v:.6e}"
        out.append(s if float(s) == v else f"{v:.15e}")
    return " ".join(out)


def write_calibration(
    calib_dir: PathLike, width: int, height: int, baseline: float = STEREO_BASELINE
) -> dict[str, str]:
    """Write ``calib_cam_to_cam.txt``, ``calib_velo_to_cam.txt`` and ``calib_imu_to_velo.txt``.

    Rectified cameras 00/02 (left) coincide; 01/03 (right) sit at +``baseline`` along x, so
    ``P_rect_03 = [K | (-fx * baseline, 0, 0)^T]``. ``R_rect_00`` is the identity and
    ``S_rect_02 = (width, height)``. ``calib_velo_to_cam`` gives velodyne -> camera 00.
    """
    os.makedirs(calib_dir, exist_ok=True)
    k = kitti_intrinsics(width, height)
    eye = np.eye(3)
    lines = ["calib_time: 01-Jan-2000 00:00:00", "corner_dist: 9.950000e-02"]
    for cam in range(4):
        right = cam % 2 == 1
        p = np.hstack([k, np.zeros((3, 1))])
        if right:
            p[0, 3] = -k[0, 0] * baseline
        lines += [
            f"S_{cam:02d}: {_fmt([width, height])}",
            f"K_{cam:02d}: {_fmt(k)}",
            f"D_{cam:02d}: {_fmt(np.zeros(5))}",
            f"R_{cam:02d}: {_fmt(eye)}",
            f"T_{cam:02d}: {_fmt([-baseline if right else 0.0, 0.0, 0.0])}",
            f"S_rect_{cam:02d}: {_fmt([width, height])}",
            f"R_rect_{cam:02d}: {_fmt(eye)}",
            f"P_rect_{cam:02d}: {_fmt(p)}",
        ]
    paths = {
        "cam_to_cam": os.path.join(calib_dir, layout.CAM_TO_CAM),
        "velo_to_cam": os.path.join(calib_dir, layout.VELO_TO_CAM),
        "imu_to_velo": os.path.join(calib_dir, "calib_imu_to_velo.txt"),
    }
    with open(paths["cam_to_cam"], "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(paths["velo_to_cam"], "w") as f:
        f.write(
            "calib_time: 01-Jan-2000 00:00:00\n"
            f"R: {_fmt(VELO_TO_CAM_R)}\nT: {_fmt(VELO_TO_CAM_T)}\n"
            "delta_f: 0.000000e+00 0.000000e+00\ndelta_c: 0.000000e+00 0.000000e+00\n"
        )
    with open(paths["imu_to_velo"], "w") as f:
        f.write(f"calib_time: 01-Jan-2000 00:00:00\nR: {_fmt(eye)}\nT: {_fmt([-0.8, 0.3, -0.8])}\n")
    return paths


def _save_image(path: str, image: np.ndarray, ext: str) -> None:
    im = Image.fromarray(image)
    if ext == "png":
        im.save(path, format="PNG", compress_level=1)  # lossless; fast zlib level
    else:
        # Monodepth2's recommended conversion: quality 92, 4:2:0 chroma subsampling
        im.save(path, format="JPEG", quality=92, subsampling=2)


def _frame_files(root: str, folder: str, frame_index: int, ext: str, velodyne: bool) -> dict[str, str]:
    """The files of frame ``frame_index`` of drive ``folder``, at the paths the readers use (``kitti_layout``).

    Keys: ``image_l``/``image_r`` (``ext`` with its dot), ``depth_png_l``/``_r``, ``depth_npy_l``/``_r`` (this
    world's exact depth, ``<drive>/depth/image_0X/%010d.npy``), ``flow`` (left camera, t -> t+1) and, with
    ``velodyne``, ``velodyne``.
    """
    files = {"flow": layout.flow_png_path(root, folder, frame_index, "l")}
    for side in ("l", "r"):
        files["image_" + side] = layout.frame_path(root, folder, frame_index, side, ext)
        files["depth_png_" + side] = layout.depth_png_path(root, folder, frame_index, side)
        files["depth_npy_" + side] = os.path.join(root, folder, "depth", layout.camera_folder(side),
                                                  layout.frame_name(frame_index, ".npy"))
    if velodyne:
        files["velodyne"] = layout.velodyne_path(root, folder, frame_index)
    return files


def _world_seed(seed: int, index: int, salt: int) -> int:
    return int(np.random.SeedSequence([int(seed), salt, int(index)]).generate_state(1)[0])


def generate_dataset(
    out_dir: PathLike,
    num_drives: int = 2,
    frames_per_drive: int = 50,
    width: int = 320,
    height: int = 96,
    seed: int = 0,
    ext: str = "png",
    moving_objects: int = 0,
    brightness_change: float = 0.02,
    speed: float = 1.0,
    date: str = "2000_01_01",
    velodyne: bool = True,
    val_fraction: float = 0.1,
    verbose: bool = False,
    overwrite: bool = False,
) -> dict[str, object]:
    """Render ``num_drives`` drives and write them in the KITTI raw layout (see module docstring).

    A non-empty ``out_dir`` is refused unless ``overwrite`` (see ``_check_out_dir``). The world is rendered into
    a hidden folder beside ``out_dir`` and then replaces it whole, so old and new frames never mix and an
    interrupted run leaves the previous folder as it was.

    Splits: the last ``max(1, round(0.2 * num_drives))`` drives are test drives (all frames,
    side ``l``); the other drives give train/val lines (frames 1..N-2 so that -1/+1 neighbours
    exist, both ``l`` and ``r``; a seeded ``val_fraction`` of frames goes to val). With a single
    drive, test uses that same drive.

    Returns:
        dict with ``root``, ``date``, ``calib_dir``, ``calib`` (paths), ``drives`` (folder names
        relative to root), ``drive_dirs`` (absolute), ``splits`` (name -> path), ``K``,
        ``width``, ``height``, ``frames_per_drive``.
    """
    if ext not in ("png", "jpg"):
        raise ValueError("ext must be 'png' or 'jpg'")
    if frames_per_drive < 3:
        raise ValueError("frames_per_drive must be >= 3 (neighbours -1/+1 are needed)")
    if num_drives < 1:
        raise ValueError("num_drives must be >= 1")
    final_root = os.fspath(out_dir)
    _check_out_dir(final_root, overwrite, _dataset_entries(date))
    with atomic_dir(final_root) as build:
        info = _write_dataset(os.fspath(build), num_drives, frames_per_drive, width, height, seed, ext,
                              moving_objects, brightness_change, speed, date, velodyne, val_fraction, verbose)

    def rebase(path: str) -> str:  # the paths inside the build folder, as they are now under out_dir
        return os.path.join(final_root, os.path.relpath(path, info["root"]))

    info.update(root=final_root, calib_dir=rebase(info["calib_dir"]),
                calib={k: rebase(v) for k, v in info["calib"].items()},
                drive_dirs=[rebase(d) for d in info["drive_dirs"]],
                splits={k: rebase(v) for k, v in info["splits"].items()})
    return info


def _dataset_entries(date: str) -> re.Pattern:
    return re.compile(rf"{re.escape(date)}|\d{{4}}_\d{{2}}_\d{{2}}|splits|synthetic_info\.json")


_VIDEO_ENTRIES = re.compile(r"seq_\d{3,}(\.mp4)?")


def _check_out_dir(root: str, overwrite: bool, generated: re.Pattern) -> None:
    """Refuse a non-empty ``root`` unless ``overwrite``; even then, only a folder this module wrote.

    ``--overwrite`` replaces the whole folder, so a folder holding anything else (a typo'd ``--out_dir`` such as
    the data root, or files a user put there) is refused either way: deleting them is never what was asked.
    """
    if not os.path.isdir(root):
        if os.path.exists(root):
            raise InputError(f"--out_dir {root} is a file, not a folder")
        return
    entries = sorted(os.listdir(root))
    if not entries:
        return
    if not overwrite:
        raise InputError(f"--out_dir {root} is not empty; pass --overwrite to replace what generate_synthetic.py "
                         "wrote there, or choose a new folder")
    foreign = [e for e in entries if not generated.fullmatch(e)]
    if foreign:
        raise InputError(f"--out_dir {root} holds files generate_synthetic.py did not write (e.g. {foreign[0]!r}); "
                         "--overwrite replaces the whole folder, so move them or choose a new folder")


def _write_dataset(root, num_drives, frames_per_drive, width, height, seed, ext, moving_objects,
                   brightness_change, speed, date, velodyne, val_fraction, verbose) -> dict[str, object]:
    calib_dir = layout.calib_dir(root, date)
    calib = write_calibration(calib_dir, width, height)
    drives, drive_dirs = [], []
    for di in range(num_drives):
        name = f"{date}/{date}_drive_{di + 1:04d}_sync"
        ddir = os.path.join(root, name)
        drives.append(name)
        drive_dirs.append(ddir)
        for p in _frame_files(root, name, 0, f".{ext}", velodyne).values():  # the folders, from frame 0's files
            os.makedirs(os.path.dirname(p), exist_ok=True)
        world = World(
            seed=_world_seed(seed, di, 1),
            num_frames=frames_per_drive,
            width=width,
            height=height,
            moving_objects=moving_objects,
            speed=speed,
            brightness_change=brightness_change,
        )
        with open(os.path.join(ddir, "poses.txt"), "w") as f:
            f.writelines(" ".join(f"{v:.12e}" for v in pose[:3, :4].reshape(-1)) + "\n" for pose in world.poses)
        for fi in range(frames_per_drive):
            files = _frame_files(root, name, fi, f".{ext}", velodyne)
            for side in ("l", "r"):
                view = world.render(fi, side)
                _save_image(files["image_" + side], view.image, ext)
                layout.write_depth_png(files["depth_png_" + side], view.depth, beyond_range="zero", compress_level=3)
                np.save(files["depth_npy_" + side], view.depth)
                if side == "l":
                    left = view
            if fi < frames_per_drive - 1:
                flow, valid = world.flow(fi, left)
                write_flow_png(files["flow"], flow, valid)
            if velodyne:
                world.velodyne_scan(fi).tofile(files["velodyne"])
        if verbose:
            print(f"wrote {name} ({frames_per_drive} frames)")
    splits = _write_splits(root, drives, frames_per_drive, seed, val_fraction)
    with open(os.path.join(root, "synthetic_info.json"), "w") as f:
        json.dump(
            {"width": width, "height": height, "K": kitti_intrinsics(width, height).tolist(), "seed": seed,
             "num_drives": num_drives, "frames_per_drive": frames_per_drive, "ext": ext,
             "moving_objects": moving_objects, "baseline": STEREO_BASELINE, "drives": drives},
            f, indent=1, sort_keys=True,
        )
    return {
        "root": root,
        "date": date,
        "calib_dir": calib_dir,
        "calib": calib,
        "drives": drives,
        "drive_dirs": drive_dirs,
        "splits": splits,
        "K": kitti_intrinsics(width, height),
        "width": width,
        "height": height,
        "frames_per_drive": frames_per_drive,
    }


def _write_splits(root: str, drives: list[str], n: int, seed: int, val_fraction: float) -> dict[str, str]:
    n_test = max(1, round(0.2 * len(drives))) if len(drives) > 1 else 0
    train_drives = drives[: len(drives) - n_test]
    test_drives = drives[len(drives) - n_test :] if n_test else drives
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5B11]))
    train, val = [], []
    for d in train_drives:
        frames = np.arange(1, n - 1)
        is_val = np.zeros(len(frames), bool)
        n_val = round(val_fraction * len(frames))
        if val_fraction > 0 and len(frames) >= 2:
            n_val = min(max(n_val, 1), len(frames) - 1)  # never leave val or train empty
        if n_val:
            is_val[rng.choice(len(frames), n_val, replace=False)] = True
        for f, iv in zip(frames, is_val):
            (val if iv else train).extend(layout.format_split_line(d, f, side) for side in ("l", "r"))
    test = [layout.format_split_line(d, f, "l") for d in test_drives for f in range(n)]
    sdir = os.path.join(root, "splits")
    os.makedirs(sdir, exist_ok=True)
    paths = {}
    for name, lines in (("train", train), ("val", val), ("test", test)):
        paths[name] = os.path.join(sdir, f"{name}_files.txt")
        layout.write_split_file(paths[name], lines)
    return paths


def generate_video(
    out_dir: PathLike,
    num_sequences: int = 1,
    frames: int = 100,
    width: int = 320,
    height: int = 96,
    seed: int = 0,
    mp4: bool = False,
    fps: int = 10,
    moving_objects: int = 2,
    brightness_change: float = 0.02,
    overwrite: bool = False,
) -> list[str]:
    """Write "uncalibrated video": ``<out_dir>/seq_XXX/%06d.jpg`` (no calibration, no GT).

    With ``mp4=True`` also ``<out_dir>/seq_XXX.mp4`` (H.264 via PyAV, or MPEG-4 Part 2 if
    libx264 is unavailable; odd sizes are edge-padded to even). Each sequence is a different
    world; different seeds give different worlds. Returns the sequence folders, followed by
    the mp4 paths when written. A non-empty ``out_dir`` is refused unless ``overwrite``; the output is
    built beside it and replaces it whole (as ``generate_dataset``).
    """
    final_root = os.fspath(out_dir)
    _check_out_dir(final_root, overwrite, _VIDEO_ENTRIES)
    with atomic_dir(final_root) as build:
        paths = _write_video(os.fspath(build), num_sequences, frames, width, height, seed, mp4, fps,
                             moving_objects, brightness_change)
    return [os.path.join(final_root, os.path.relpath(p, build)) for p in paths]


def _write_video(root, num_sequences, frames, width, height, seed, mp4, fps, moving_objects,
                 brightness_change) -> list[str]:
    folders, videos = [], []
    for si in range(num_sequences):
        world = World(
            seed=_world_seed(seed, si, 2), num_frames=frames, width=width, height=height,
            moving_objects=moving_objects, brightness_change=brightness_change,
        )
        name = f"seq_{si:03d}"
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        images = []
        for fi in range(frames):
            img = world.render(fi, "l").image
            _save_image(os.path.join(folder, f"{fi:06d}.jpg"), img, "jpg")
            if mp4:
                images.append(img)
        folders.append(folder)
        if mp4:
            path = os.path.join(root, f"{name}.mp4")
            _write_mp4(path, images, fps)
            videos.append(path)
    return folders + videos


def _write_mp4(path: str, images: list[np.ndarray], fps: int) -> None:
    import av  # local import: PyAV is only needed for --mp4

    h, w = images[0].shape[:2]
    ph, pw = h + h % 2, w + w % 2
    with av.open(path, mode="w") as container:
        try:
            stream = container.add_stream("libx264", rate=fps, options={"crf": "18"})
        except ValueError:  # pragma: no cover - UnknownCodecError: FFmpeg built without libx264
            stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        for img in images:
            if (ph, pw) != (h, w):
                img = np.pad(img, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
