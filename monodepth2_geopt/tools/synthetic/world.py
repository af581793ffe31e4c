"""The synthetic world: a :class:`.scene.Scene` seen through a camera, composed of the ray caster, the shader and
the ground truth, and rendered into :class:`View`s."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ground_truth
from .raycast import Hits, RayCaster
from .scene import STEREO_BASELINE, Scene, apply_matrix, kitti_intrinsics
from .shading import Shader


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
        K: optional 3x3 intrinsics; default :func:`kitti_intrinsics` (``square_pixels``: fy = fx in pixels).
        camera_shake: amplitude in degrees of the camera's pitch (roll: half of it), two sines of periods
            12-30 and 4-9 frames; 0 (default) = a camera that only yaws with the road, as before the option.

    Attributes: ``scene`` (:class:`.scene.Scene`: trajectory, boxes, style), ``caster``
    (:class:`.raycast.RayCaster` for this camera) and ``shader`` (:class:`.shading.Shader`).
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
        camera_shake: float = 0.0,
        square_pixels: bool = False,
    ) -> None:
        if num_frames < 1 or width < 2 or height < 2:
            raise ValueError("need num_frames >= 1 and an image of at least 2x2 pixels")
        self.width = int(width)
        self.height = int(height)
        self.K = kitti_intrinsics(width, height, square_pixels) if K is None else np.asarray(K, dtype=np.float64)
        self.scene = Scene(seed, num_frames, moving_objects, speed, brightness_change, baseline, camera_shake)
        self.seed = self.scene.seed
        self.num_frames = self.scene.num_frames
        self.baseline = self.scene.baseline
        self.brightness_change = self.scene.brightness_change
        self.caster = RayCaster(self.scene, self.K, self.width, self.height)
        self.shader = Shader(self.scene, self.K)

    # ------------------------------------------------------------------ poses (the scene's)
    def camera_to_scene(self, frame: int, side: str = "l") -> np.ndarray:
        """4x4 transform from camera ``side`` ('l' or 'r') at ``frame`` to the scene frame."""
        return self.scene.camera_to_scene(frame, side)

    def pose(self, frame: int, side: str = "l") -> np.ndarray:
        """4x4 camera-to-world pose (world = first left camera); ``pose(0, 'l')`` is exactly the identity."""
        return self.scene.pose(frame, side)

    @property
    def scene_to_world(self) -> np.ndarray:
        """4x4 transform from the internal scene frame (:attr:`View.points`) to the world frame."""
        return self.scene.scene_to_world

    @property
    def poses(self) -> np.ndarray:
        """(N, 4, 4) left camera-to-world poses for all frames."""
        return self.scene.poses

    def gain(self, frame: int) -> float:
        """Global brightness gain applied to both images of ``frame``."""
        return self.scene.gain(frame)

    def boxes_at(self, time: float) -> tuple[np.ndarray, np.ndarray]:
        """(min corners, max corners), each (B, 3), of all boxes at ``time`` (frames), scene frame."""
        return self.scene.boxes_at(time)

    # ------------------------------------------------------------------ rendering and ground truth
    def render(self, frame: int, side: str = "l") -> View:
        """Render camera ``side`` ('l' = image_02, 'r' = image_03) at ``frame``."""
        if not 0 <= frame < self.num_frames:
            raise IndexError(f"frame {frame} outside [0, {self.num_frames})")
        c2s = self.camera_to_scene(frame, side)
        origin, rot = c2s[:3, 3], c2s[:3, :3]
        hits = self.caster.cast_grid(origin, rot, float(frame))
        d = apply_matrix(self.caster.grid_directions, rot)
        flat = Hits(hits.t.reshape(-1), hits.surf.reshape(-1), hits.axis.reshape(-1))
        rgb, p = self.shader.shade(origin, d, flat, float(frame), self.gain(frame))
        h, w = self.height, self.width
        image = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8).reshape(h, w, 3)
        depth = np.where(hits.surf > 0, hits.t, 0.0).astype(np.float32)
        return View(image, depth, hits.surf, p.reshape(h, w, 3), self.pose(frame, side), self.K.copy())

    def flow(self, frame: int, view: View | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact optical flow of the left camera from ``frame`` to ``frame + 1`` (:func:`.ground_truth.optical_flow`).

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
        return ground_truth.optical_flow(self.scene, self.caster, frame, view.surface, view.points)

    def velodyne_scan(self, frame: int, rings: int = 64, azimuths: int = 2000, fov_deg: float = 50.0,
                      frustum_only: bool = True) -> np.ndarray:
        """Simulated 64-beam LiDAR scan in velodyne coordinates (:func:`.ground_truth.velodyne_scan`)."""
        return ground_truth.velodyne_scan(self.scene, self.caster, self.shader, frame, rings, azimuths, fov_deg,
                                          frustum_only)


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

