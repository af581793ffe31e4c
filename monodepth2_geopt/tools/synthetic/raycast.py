"""Ray casting: exact nearest hits of rays against the ground rectangle and the scene's axis-aligned boxes.

One slab test per box, with per-box screen-space culling (a conservative bounding rectangle of the box in the
camera's image plane) and front-to-back occlusion skipping; neither ever changes the nearest hit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import CAMERA_HEIGHT, GROUND, GROUND_HALF_WIDTH, Scene, apply_matrix

NEAR = 1e-3  # near plane (m) for hits and culling
BIG = 1e30  # ray parameter of "no hit"

# corner / edge tables of an axis-aligned box
_CORNER_SEL = np.array([[(c >> 0) & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)], dtype=bool)
_EDGES = np.array(
    [(a, b) for a in range(8) for b in range(a + 1, 8) if (a ^ b).bit_count() == 1], dtype=np.int64
)


@dataclass
class Hits:
    """Nearest hits of a set of rays (any shape)."""

    t: np.ndarray  # ray parameter of the nearest hit (BIG if none); depth for the pixel-grid rays
    surf: np.ndarray  # surface id: 0 none / sky, 1 ground, 2 + k box k
    axis: np.ndarray  # axis of the hit face normal (0, 1, 2)


class RayCaster:
    """Casts rays into ``scene`` for a pinhole camera with intrinsics ``K`` and a ``width x height`` image.

    Attributes:
        grid_directions: (H * W, 3) the pixel-grid rays in the camera frame, z component 1 (so a hit's ray
            parameter is its depth).
    """

    def __init__(self, scene: Scene, K: np.ndarray, width: int, height: int) -> None:
        self.scene = scene
        self.K = K
        self.width = width
        self.height = height
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        grid_a = (np.arange(width) - cx) / fx
        grid_b = (np.arange(height) - cy) / fy
        d = np.ones((height, width, 3))
        d[..., 0] = grid_a[None, :]
        d[..., 1] = grid_b[:, None]
        self.grid_directions = d.reshape(-1, 3)

    def _box_rects(self, origin: np.ndarray, rot: np.ndarray, bmin: np.ndarray, bmax: np.ndarray):
        """Conservative bounding rectangles of every box in the normalised image plane
        (a = x/z, b = y/z) of a camera at ``origin`` with camera-to-scene rotation ``rot``.

        The box is clipped against the plane z = NEAR first. Returns (keep, a0, a1, b0, b1,
        zmin) where zmin is a lower bound of the camera-frame depth of any visible box point.
        """
        corners = np.where(_CORNER_SEL[None], bmax[:, None, :], bmin[:, None, :])  # (B, 8, 3)
        c = apply_matrix(corners - origin, rot.T)  # camera coordinates
        z = c[..., 2]
        front = z > NEAR
        z0, z1 = z[:, _EDGES[:, 0]], z[:, _EDGES[:, 1]]
        cross = (z0 - NEAR) * (z1 - NEAR) < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(cross, (NEAR - z0) / (z1 - z0), 0.0)
            pe = c[:, _EDGES[:, 0]] + s[..., None] * (c[:, _EDGES[:, 1]] - c[:, _EDGES[:, 0]])
            a = np.concatenate([c[..., 0] / np.where(front, z, 1.0), pe[..., 0] / NEAR], axis=1)
            b = np.concatenate([c[..., 1] / np.where(front, z, 1.0), pe[..., 1] / NEAR], axis=1)
        ok = np.concatenate([front, cross], axis=1)
        a0 = np.where(ok, a, np.inf).min(1)
        a1 = np.where(ok, a, -np.inf).max(1)
        b0 = np.where(ok, b, np.inf).min(1)
        b1 = np.where(ok, b, -np.inf).max(1)
        zmin = np.maximum(z.min(1), NEAR)
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

    def cast_grid(self, origin: np.ndarray, rot: np.ndarray, time: float, with_ground: bool = True) -> Hits:
        """Cast the pixel-grid rays of a camera (origin, camera-to-scene rot). t = depth."""
        h, w = self.height, self.width
        d = apply_matrix(self.grid_directions, rot).reshape(h, w, 3)
        inv_d = self._inv(d)
        t = np.full((h, w), BIG)
        surf = np.zeros((h, w), np.int32)
        axis = np.ones((h, w), np.int8)
        if with_ground:
            self._ground(origin, d, t, surf)
        bmin, bmax = self.scene.boxes_at(time)
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
            hit = (tn <= tf) & (tn > NEAR) & (tn < tcur)
            if hit.any():
                tcur[hit] = tn[hit]
                surf[sl][hit] = 2 + k
                axis[sl][hit] = ax[hit]
        return Hits(t, surf, axis)

    def _ground(self, origin, d, t, surf) -> None:
        """Intersect rays with the finite ground rectangle (y = CAMERA_HEIGHT); updates t, surf."""
        with np.errstate(divide="ignore", invalid="ignore"):
            tg = np.where(d[..., 1] > 1e-12, (CAMERA_HEIGHT - origin[1]) / d[..., 1], BIG)
        px = origin[0] + tg * d[..., 0]
        pz = origin[2] + tg * d[..., 2]
        ok = (tg < t) & (np.abs(px) <= GROUND_HALF_WIDTH) & (pz >= self.scene.z_min) & (pz <= self.scene.z_max)
        t[ok] = tg[ok]
        surf[ok] = GROUND

    def cast_rays(
        self,
        origin: np.ndarray,
        rot: np.ndarray,
        d: np.ndarray,
        time: float,
        t_max: float | np.ndarray = BIG,
        exclude: np.ndarray | None = None,
        with_ground: bool = True,
    ) -> Hits:
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
        dc = apply_matrix(d, rot.T)
        front = dc[:, 2] > 1e-9
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(front, dc[:, 0] / dc[:, 2], 0.0)
            b = np.where(front, dc[:, 1] / dc[:, 2], 0.0)
        order = np.argsort(a[front], kind="stable")
        front_idx = np.flatnonzero(front)[order]
        a_sorted = a[front_idx]
        b_sorted = b[front_idx]
        behind_idx = np.flatnonzero(~front)
        bmin, bmax = self.scene.boxes_at(time)
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
            hit = (tn <= tf) & (tn > NEAR * 1e-3) & (tn < t[idx])
            if hit.any():
                sel = idx[hit]
                t[sel] = tn[hit]
                surf[sel] = 2 + k
                axis[sel] = ax[hit]
        return Hits(t, surf, axis)

