"""Ground truth beyond the rendered depth: exact optical flow between frames and a simulated LiDAR scan.

Both are computed from the scene's geometry (:mod:`.scene`) with the ray caster (:mod:`.raycast`); the module
docstring of the package states the conventions (flow validity, velodyne axes).
"""

from __future__ import annotations

import numpy as np

from .raycast import NEAR, RayCaster
from .scene import VELO_ELEVATION_DEG, VELO_MAX_RANGE, VELO_TO_CAM_R, VELO_TO_CAM_T, Scene, apply_matrix
from .shading import Shader


def optical_flow(scene: Scene, caster: RayCaster, frame: int, surface: np.ndarray,
                 points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact optical flow of the left camera from ``frame`` to ``frame + 1``.

    Args:
        frame: source frame t (0 <= t < num_frames - 1).
        surface, points: the left view of ``frame``'s surface ids (H, W) and scene-frame hit points (H, W, 3).

    Returns:
        flow (H, W, 2) float32 pixels (0 where invalid) and valid (H, W) bool.
    """
    K = caster.K
    h, w = caster.height, caster.width
    surf = surface.reshape(-1)
    p = points.reshape(-1, 3).copy()
    hit = surf > 0
    box = np.where(surf >= 2, surf - 2, 0)
    p[hit] += np.where((surf[hit] >= 2)[:, None], scene.boxes.vel[box[hit]], 0.0)  # move with object
    c2s = scene.camera_to_scene(frame + 1, "l")
    o1, r1 = c2s[:3, 3], c2s[:3, :3]
    pc = apply_matrix(p - o1, r1.T)
    z = pc[:, 2]
    ok = hit & (z > NEAR)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * pc[:, 0] / z + K[0, 2]
        v = K[1, 1] * pc[:, 1] / z + K[1, 2]
    ok &= (u >= -0.5) & (u < w - 0.5) & (v >= -0.5) & (v < h - 0.5)
    # self-occlusion: a point on a box face is visible iff the camera is in front of the face
    t1 = float(frame + 1)
    idx = np.flatnonzero(ok)
    if len(idx):
        sb = surf[idx] >= 2
        if sb.any():
            ib = idx[sb]
            bmin, bmax = scene.boxes_at(t1)
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
        sh = caster.cast_rays(o1, r1, dshadow, t1, t_max=1.0 - 1e-6, exclude=surf[idx], with_ground=False)
        ok[idx[sh.surf > 0]] = False
    flow = np.zeros((h * w, 2), np.float32)
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    flow[ok, 0] = (u[ok] - jj.reshape(-1)[ok]).astype(np.float32)
    flow[ok, 1] = (v[ok] - ii.reshape(-1)[ok]).astype(np.float32)
    return flow.reshape(h, w, 2), ok.reshape(h, w)


def velodyne_scan(
    scene: Scene,
    caster: RayCaster,
    shader: Shader,
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
    K = caster.K
    el = np.deg2rad(np.linspace(VELO_ELEVATION_DEG[0], VELO_ELEVATION_DEG[1], rings))
    step = 2 * np.pi / azimuths
    naz = int(np.floor(np.deg2rad(fov_deg) / step))
    az = np.arange(-naz, naz + 1) * step
    ee, aa = np.meshgrid(el, az, indexing="ij")
    dv = np.stack([np.cos(ee) * np.cos(aa), np.cos(ee) * np.sin(aa), np.sin(ee)], -1).reshape(-1, 3)
    dcam = apply_matrix(dv, VELO_TO_CAM_R)
    if frustum_only:
        u = K[0, 0] * dcam[:, 0] / dcam[:, 2] + K[0, 2]
        v = K[1, 1] * dcam[:, 1] / dcam[:, 2] + K[1, 2]
        mw, mh = 0.05 * caster.width + 1, 0.05 * caster.height + 1
        keep = (u > -mw) & (u < caster.width - 1 + mw) & (v > -mh) & (v < caster.height - 1 + mh)
        dv, dcam = dv[keep], dcam[keep]
    c2s = scene.camera_to_scene(frame, "l")
    rot = c2s[:3, :3]
    origin = rot @ VELO_TO_CAM_T + c2s[:3, 3]
    d = apply_matrix(dcam, rot)  # velodyne -> camera -> scene
    hits = caster.cast_rays(origin, rot, d, float(frame), t_max=VELO_MAX_RANGE)
    m = hits.surf > 0
    t, surf, axis = hits.t[m], hits.surf[m], hits.axis[m]
    pts = dv[m] * t[:, None]
    p_scene = origin + d[m] * t[:, None]
    # a large footprint filters the textures down to their mean colours (cheap)
    refl = shader.albedo(p_scene, surf, axis.astype(np.int64), float(frame), np.full(len(t), 50.0)).mean(1)
    return np.concatenate([pts, np.clip(refl, 0, 1)[:, None]], axis=1).astype(np.float32)

