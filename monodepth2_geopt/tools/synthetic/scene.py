"""Scene generation: the procedural street, its boxes and the camera's drive through it, all in the scene frame.

Everything random about a world is drawn here, from one generator seeded by the world's seed, in a fixed order
(trajectory, then :class:`Style`, then the boxes), so the same seed gives the same world bit for bit. The other
modules only read what this one draws: :mod:`.raycast` the geometry, :mod:`.shading` the appearance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KITTI_FX = 0.58  # normalised focal lengths / principal point of Monodepth2's KITTI K
KITTI_FY = 1.92
STEREO_BASELINE = 0.54  # metres
CAMERA_HEIGHT = 1.65  # metres above the road
VELO_TO_CAM_R = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
VELO_TO_CAM_T = np.array([0.0, -0.08, -0.27])
VELO_ELEVATION_DEG = (-24.8, 2.0)
VELO_MAX_RANGE = 120.0

LANE_X = 1.75  # centre of the camera's lane (m, +x = right)
ROAD_HALF = 3.5  # driving lanes |x| < 3.5
PARK_HALF = 5.5  # parking strips 3.5 < |x| < 5.5
WALK_HALF = 7.5  # sidewalks 5.5 < |x| < 7.5
GROUND_HALF_WIDTH = 100.0

# surface ids of a hit (2 + k is box k) and box kinds
SKY, GROUND = 0, 1
KIND_BUILDING, KIND_CAR = 0, 1


def kitti_intrinsics(width: int, height: int, square_pixels: bool = False) -> np.ndarray:
    """3x3 pinhole K (pixels) of Monodepth2's normalised KITTI intrinsics at ``width x height``.

    KITTI's normalised fy/H = 1.92 gives square pixels only at KITTI's aspect ratio (about 3.3:1); at other sizes
    the pixels are stretched. ``square_pixels``: fy = fx in pixels (fx/W = 0.58 kept), as a real camera's.
    """
    fx = KITTI_FX * width
    fy = fx if square_pixels else KITTI_FY * height
    return np.array([[fx, 0.0, 0.5 * width], [0.0, fy, 0.5 * height], [0.0, 0.0, 1.0]])


def apply_matrix(v: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``v @ m.T`` for (..., 3) vectors and a 3x3 matrix, without BLAS.

    Multithreaded BLAS is very slow for these tall-skinny products on a busy machine.
    """
    return v[..., 0:1] * m[:, 0] + v[..., 1:2] * m[:, 1] + v[..., 2:3] * m[:, 2]


def rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_x(angle: float) -> np.ndarray:
    """Rotation about camera x (right): a positive angle turns the optical axis (+z) towards -y (up)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_z(angle: float) -> np.ndarray:
    """Rotation about the optical axis (roll)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])



@dataclass
class Style:
    """A world's light and ground materials (drawn with the scene, used by :mod:`.shading`)."""

    sun: np.ndarray  # unit vector towards which the light travels (scene frame)
    ambient: float
    sky_horizon: np.ndarray
    sky_zenith: np.ndarray
    asphalt: float
    walk: np.ndarray
    grass: np.ndarray
    tex_seed: int


@dataclass
class Boxes:
    """The world's axis-aligned boxes (buildings, parked and moving cars) and their appearance, one row a box.

    ``min0`` / ``max0``: (B, 3) corners at time 0 (scene frame); ``vel``: (B, 3) velocity in m/frame;
    ``kind``: KIND_BUILDING or KIND_CAR; ``color``, ``seed``, ``win_period``, ``win_frac``, ``win_on``: the
    base colour, texture seed and window pattern of each box.
    """

    min0: np.ndarray
    max0: np.ndarray
    vel: np.ndarray
    kind: np.ndarray
    color: np.ndarray
    seed: np.ndarray
    win_period: np.ndarray
    win_frac: np.ndarray
    win_on: np.ndarray

    def at(self, time: float) -> tuple[np.ndarray, np.ndarray]:
        """(min corners, max corners), each (B, 3), at ``time`` (frames), scene frame."""
        off = self.vel * time
        return self.min0 + off, self.max0 + off


class Scene:
    """A procedurally generated street and a camera trajectory through it (no image size, no intrinsics).

    Args: as :class:`World`'s. Attributes: ``cam_pos`` (N, 3), ``cam_yaw`` (N,), ``cam_pitch`` and
    ``cam_roll`` (N,) (radians; zero unless ``camera_shake``), ``cam_rot`` (N, 3, 3) camera-to-scene rotations
    of the left camera (yaw, then pitch, then roll), ``gains`` (N,) per-frame brightness, ``style``
    (:class:`Style`), ``boxes`` (:class:`Boxes`) and ``z_min`` / ``z_max``, the extent of the ground along z.
    """

    def __init__(
        self,
        seed: int = 0,
        num_frames: int = 100,
        moving_objects: int = 0,
        speed: float = 1.0,
        brightness_change: float = 0.02,
        baseline: float = STEREO_BASELINE,
        camera_shake: float = 0.0,
    ) -> None:
        self.seed = int(seed)
        self.num_frames = int(num_frames)
        self.baseline = float(baseline)
        self.brightness_change = float(brightness_change)
        self.camera_shake = float(camera_shake)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x5EED]))
        self._make_trajectory(rng, float(speed))
        self.style = _make_style(rng)
        self._make_boxes(rng, int(moving_objects))

    def _make_trajectory(self, rng: np.random.Generator, speed: float) -> None:
        n = self.num_frames
        base = speed * rng.uniform(0.85, 1.15)
        f = np.arange(n, dtype=np.float64)
        step = base * (1.0 + 0.1 * np.sin(2 * np.pi * f / rng.uniform(40, 90) + rng.uniform(0, 2 * np.pi)))
        z = np.concatenate([[0.0], np.cumsum(step[:-1])])
        amp, period, phase = rng.uniform(0.1, 0.5), rng.uniform(40.0, 120.0), rng.uniform(0, 2 * np.pi)
        x = LANE_X + amp * np.sin(2 * np.pi * z / period + phase)
        yaw = np.arctan(amp * 2 * np.pi / period * np.cos(2 * np.pi * z / period + phase))
        self.cam_pos = np.stack([x, np.zeros(n), z], axis=1)  # scene frame
        self.cam_yaw = yaw
        self.cam_pitch, self.cam_roll = self._shake(n)
        if self.camera_shake:
            self.cam_rot = np.stack([rot_y(a) @ rot_x(b) @ rot_z(c)
                                     for a, b, c in zip(yaw, self.cam_pitch, self.cam_roll)])  # camera -> scene
        else:
            self.cam_rot = np.stack([rot_y(a) for a in yaw])  # camera -> scene
        self.max_step = float(step.max())
        g = np.arange(n, dtype=np.float64)
        wobble = 0.6 * np.sin(2 * np.pi * g / rng.uniform(20, 50) + rng.uniform(0, 6.3)) + 0.4 * np.sin(
            2 * np.pi * g / rng.uniform(5, 15) + rng.uniform(0, 6.3)
        )
        self.gains = 1.0 + self.brightness_change * wobble
        # world frame = first camera
        t0 = np.eye(4)
        t0[:3, :3], t0[:3, 3] = self.cam_rot[0], self.cam_pos[0]
        self._scene_to_world = np.linalg.inv(t0)

    def _shake(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Pitch and roll (radians) of a camera shaken by ``camera_shake`` degrees (a car on an uneven road, a
        hand-held camera): two sines each, periods 12-30 and 4-9 frames, roll half the amplitude of pitch.

        Drawn from their own generator, so a world without shake is the same world bit for bit as before the
        option existed, and the same seed with shake differs only by these rotations. Rotation about x is what
        makes a focal length fy observable from the flow (yaw does it for fx; translation alone does neither).
        """
        if not self.camera_shake:
            return np.zeros(n), np.zeros(n)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x5EED, 0x5A4E]))
        f = np.arange(n, dtype=np.float64)

        def wave() -> np.ndarray:
            slow, fast = rng.uniform(12.0, 30.0), rng.uniform(4.0, 9.0)
            return 0.6 * np.sin(2 * np.pi * f / slow + rng.uniform(0, 2 * np.pi)) + 0.4 * np.sin(
                2 * np.pi * f / fast + rng.uniform(0, 2 * np.pi))

        amp = np.deg2rad(self.camera_shake)
        return amp * wave(), 0.5 * amp * wave()

    def _make_boxes(self, rng: np.random.Generator, moving_objects: int) -> None:
        z_last = float(self.cam_pos[-1, 2])
        g = CAMERA_HEIGHT
        n_frames = self.num_frames
        # moving cars: one speed per lane, so they never collide with each other or the camera
        moving: list[tuple[list[float], list[float], list[float], int]] = []
        v_on = -rng.uniform(0.6, 1.5)  # oncoming lane
        v_own = self.max_step + rng.uniform(0.2, 0.8)  # camera's lane, ahead and pulling away
        n_on = moving_objects - 1 if moving_objects >= 2 else moving_objects  # one car ahead, rest oncoming
        # oncoming cars meet the camera after about z0 / (1 + |v|) frames: spread that over the drive
        gap_on = max((1.0 + abs(v_on)) * z_last / max(n_on, 1), 14.0)
        z_on = rng.uniform(15.0, 40.0)
        far = z_last + 150.0
        for k in range(moving_objects):
            length, w, h = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9), rng.uniform(1.35, 2.1)
            if k != 1:
                xc, vz, z0 = -LANE_X + rng.uniform(-0.2, 0.2), v_on, z_on
                z_on += max(gap_on * rng.uniform(0.7, 1.3), length + 8.0)
            else:
                xc, vz, z0 = LANE_X + rng.uniform(-0.1, 0.1), v_own, rng.uniform(10.0, 25.0)
            moving.append(([xc - w / 2, g - h, z0], [xc + w / 2, g, z0 + length], [0, 0, vz], KIND_CAR))
            far = max(far, z0 + length + max(vz, 0.0) * n_frames + 10.0)
        # the world (ground, buildings) covers the trajectory, 150 m beyond it and every moving car
        self.z_min, self.z_max = -40.0, far
        boxes: list[tuple[list[float], list[float], list[float], int]] = []  # (min, max, vel, kind)
        for side in (-1.0, 1.0):
            # front row of buildings
            z = self.z_min + rng.uniform(0, 5)
            while z < self.z_max:
                length, depth = rng.uniform(6, 20), rng.uniform(6, 12)
                inner, h = rng.uniform(WALK_HALF, 15.0), rng.uniform(4, 18)
                x0, x1 = sorted((side * inner, side * (inner + depth)))
                boxes.append(([x0, g - h, z], [x1, g, z + length], [0, 0, 0], KIND_BUILDING))
                z += length + (rng.uniform(0.5, 2.0) if rng.random() < 0.6 else rng.uniform(3.0, 12.0))
            # back row of tall buildings
            z = self.z_min - rng.uniform(0, 10)
            while z < self.z_max + 40:
                length, depth = rng.uniform(15, 35), rng.uniform(10, 25)
                inner, h = rng.uniform(30.0, 40.0), rng.uniform(10, 35)
                x0, x1 = sorted((side * inner, side * (inner + depth)))
                boxes.append(([x0, g - h, z], [x1, g, z + length], [0, 0, 0], KIND_BUILDING))
                z += length + rng.uniform(0.5, 10.0)
            # parked cars
            z = self.z_min + rng.uniform(0, 10)
            while z < self.z_max:
                length, w, h = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9), rng.uniform(1.35, 2.1)
                if rng.random() < 0.6:
                    xc = side * (ROAD_HALF + 1.0 + rng.uniform(-0.1, 0.1))
                    boxes.append(([xc - w / 2, g - h, z], [xc + w / 2, g, z + length], [0, 0, 0], KIND_CAR))
                z += length + rng.uniform(1.0, 12.0)
        boxes += moving
        box_min0 = np.array([b[0] for b in boxes], dtype=np.float64).reshape(-1, 3)
        box_max0 = np.array([b[1] for b in boxes], dtype=np.float64).reshape(-1, 3)
        box_vel = np.array([b[2] for b in boxes], dtype=np.float64).reshape(-1, 3)
        box_kind = np.array([b[3] for b in boxes], dtype=np.int64)
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
        box_color = np.clip(np.where((box_kind == KIND_CAR)[:, None], col_c, col_b), 0, 1)
        box_seed = rng.integers(0, 2 ** 31, nb)
        win_period = np.stack([rng.uniform(2.2, 4.0, nb), rng.uniform(2.8, 3.6, nb)], axis=1)
        win_frac = np.stack([rng.uniform(0.35, 0.65, nb), rng.uniform(0.4, 0.6, nb)], axis=1)
        win_on = rng.random(nb) < 0.85
        self.boxes = Boxes(min0=box_min0, max0=box_max0, vel=box_vel, kind=box_kind, color=box_color,
                           seed=box_seed, win_period=win_period, win_frac=win_frac, win_on=win_on)

    # ------------------------------------------------------------------ poses
    def camera_to_scene(self, frame: int, side: str = "l") -> np.ndarray:
        """4x4 transform from camera ``side`` ('l' or 'r') at ``frame`` to the scene frame."""
        t = np.eye(4)
        t[:3, :3] = self.cam_rot[frame]
        t[:3, 3] = self.cam_pos[frame]
        if side == "r":
            t[:3, 3] = t[:3, 3] + self.cam_rot[frame] @ np.array([self.baseline, 0.0, 0.0])
        elif side != "l":
            raise ValueError(f"side must be 'l' or 'r', got {side!r}")
        return t

    def pose(self, frame: int, side: str = "l") -> np.ndarray:
        """4x4 camera-to-world pose (world = first left camera; x right, y down, z forward).

        Computed from the relative yaw (relative rotation with ``camera_shake``) so that ``pose(0, 'l')`` is
        exactly the identity.
        """
        c2s = self.camera_to_scene(frame, side)
        t = np.eye(4)
        if self.camera_shake:
            t[:3, :3] = np.eye(3) if frame == 0 else self.cam_rot[0].T @ self.cam_rot[frame]
        else:
            t[:3, :3] = rot_y(self.cam_yaw[frame] - self.cam_yaw[0])
        t[:3, 3] = self.cam_rot[0].T @ (c2s[:3, 3] - self.cam_pos[0])
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
        return float(self.gains[frame])

    def boxes_at(self, time: float) -> tuple[np.ndarray, np.ndarray]:
        """(min corners, max corners), each (B, 3), of all boxes at ``time`` (frames), scene frame."""
        return self.boxes.at(time)


def _make_style(rng: np.random.Generator) -> Style:
    s = rng.uniform(0.5, 1.0)
    sun = np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.9), -1.0, rng.uniform(-0.6, 0.6)])
    sun /= np.linalg.norm(sun)
    ambient = rng.uniform(0.45, 0.6)
    sky_horizon = np.array([0.78, 0.82, 0.88]) * rng.uniform(0.9, 1.05)
    sky_zenith = np.array([0.25, 0.45, 0.8]) * s + (1 - s) * np.array([0.55, 0.6, 0.7])
    asphalt = rng.uniform(0.25, 0.4)
    walk = np.array([0.62, 0.6, 0.56]) * rng.uniform(0.8, 1.1)
    grass = np.array([0.22, 0.38, 0.14]) * rng.uniform(0.8, 1.2)
    tex_seed = int(rng.integers(0, 2 ** 31))
    return Style(sun=sun, ambient=ambient, sky_horizon=sky_horizon, sky_zenith=sky_zenith, asphalt=asphalt,
                 walk=walk, grass=grass, tex_seed=tex_seed)
