"""Shading: procedural textures (road, sidewalk, grass, buildings, cars, sky) and diffuse sun lighting.

Textures are band-limited by each pixel's footprint on the surface (octaves finer than a pixel fade to their
mean, edges are box filtered), so images stay free of aliasing at any resolution.
"""

from __future__ import annotations

import numpy as np

from .raycast import Hits
from .scene import GROUND, KIND_CAR, PARK_HALF, ROAD_HALF, WALK_HALF, Scene, apply_matrix

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
# Surfaces and light
# ----------------------------------------------------------------------------------------------
class Shader:
    """Colours of ``scene``'s surfaces as seen by a camera with intrinsics ``K`` (for the sky's pixel size)."""

    def __init__(self, scene: Scene, K: np.ndarray) -> None:
        self.scene = scene
        self.style = scene.style
        self.boxes = scene.boxes
        self.pix_angle = 1.0 / min(K[0, 0], K[1, 1])  # angular size of a pixel (rad)

    def albedo(self, p: np.ndarray, surf: np.ndarray, axis: np.ndarray, time: float, fp: np.ndarray) -> np.ndarray:
        """Diffuse colour (N, 3) in [0, 1] of hit points ``p`` (scene frame), footprint ``fp`` (m)."""
        n = len(p)
        out = np.zeros((n, 3))
        g = surf == GROUND
        if g.any():
            out[g] = self._ground_albedo(p[g], fp[g])
        bx = surf >= 2
        if bx.any():
            out[bx] = self._box_albedo(p[bx], surf[bx] - 2, axis[bx], time, fp[bx])
        return out

    def _ground_albedo(self, p, fp):
        x, z = p[:, 0], p[:, 2]
        ax = np.abs(x)
        seed = self.style.tex_seed
        w_walk = _step(ax, PARK_HALF, fp)
        w_grass = _step(ax, WALK_HALF, fp)
        col = np.zeros((len(p), 3))
        m = w_walk < 1  # road (lanes + parking strips)
        if m.any():
            xm, zm, fm, am = x[m], z[m], fp[m], ax[m]
            tex = 0.5 * _fbm(xm, zm, seed, fm, 4.0, 3) + 0.5 * _fbm(xm, zm, seed + 7, fm, 0.6, 3)
            asphalt = self.style.asphalt * (1.0 + 1.1 * tex)[:, None] * np.array([1.0, 1.0, 1.03])
            # lane markings: dashed centre line, solid lines at the lane edges
            centre = _pulse(xm + 0.075, 1e4, 0.15, fm) * _pulse(zm, 9.0, 3.0, fm)
            edge = _pulse(am - ROAD_HALF + 0.075, 1e4, 0.15, fm)
            paint = np.clip(centre + edge, 0, 1)[:, None]
            col[m] += (asphalt * (1 - paint) + 0.85 * paint) * (1 - w_walk[m])[:, None]
        m = (w_walk > 0) & (w_grass < 1)  # sidewalk with tiles and a dark kerb
        if m.any():
            xm, zm, fm, am = x[m], z[m], fp[m], ax[m]
            tiles = 1.0 - 0.35 * np.maximum(_pulse(xm, 0.8, 0.06, fm), _pulse(zm, 0.8, 0.06, fm))
            kerb = 1.0 - 0.5 * _pulse(am - PARK_HALF, 1e4, 0.15, fm)
            walk = self.style.walk[None, :] * ((tiles + 0.4 * _fbm(xm, zm, seed + 3, fm, 3.0, 2)) * kerb)[:, None]
            col[m] += walk * (w_walk[m] * (1 - w_grass[m]))[:, None]
        m = w_grass > 0  # grass / dirt
        if m.any():
            xm, zm, fm = x[m], z[m], fp[m]
            grass = self.style.grass[None, :] * (1.0 + 1.2 * _fbm(xm, zm, seed + 5, fm, 2.0, 3))[:, None]
            col[m] += grass * w_grass[m][:, None]
        return col

    def _box_albedo(self, p, k, axis, time, fp):
        bmin = self.boxes.min0[k] + self.boxes.vel[k] * time
        loc = p - bmin  # texture coordinates in the box's own frame
        up = self.boxes.max0[k, 1] - self.boxes.min0[k, 1] - loc[:, 1]  # height above the box's bottom
        u = np.where(axis == 0, loc[:, 2], loc[:, 0])
        v = np.where(axis == 1, loc[:, 2], up)
        seed = self.boxes.seed[k] + 1000 * axis
        car = self.boxes.kind[k] == KIND_CAR
        noise = 0.25 * _fbm(u, v, seed, fp, 0.8, 2) + 0.2 * _fbm(u, v, seed + 11, fp, 5.0, 2)
        col = self.boxes.color[k] * (1.0 + np.where(car, 0.3, 1.0) * noise)[:, None]
        side = axis != 1
        # buildings: windows on vertical faces above a darker ground-floor band; darker roofs
        m = side & ~car
        if m.any():
            km, um, vm, fm = k[m], u[m], v[m], fp[m]
            per, frac = self.boxes.win_period[km], self.boxes.win_frac[km]
            wx, wy = per[:, 0] * frac[:, 0], per[:, 1] * frac[:, 1]
            win = _pulse(um - 0.5 * (per[:, 0] - wx), per[:, 0], wx, fm) * _pulse(
                vm - 0.5 * (per[:, 1] - wy), per[:, 1], wy, fm
            )
            win *= self.boxes.win_on[km] * _step(vm, 2.5, fm)
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
            hgt = self.boxes.max0[km, 1] - self.boxes.min0[km, 1]
            band = _step(vm, 0.55 * hgt, fm) * (1 - _step(vm, 0.92 * hgt, fm))
            bump = 1 - _step(vm, 0.35, fm)
            cm = col[m] * (1 - band[:, None]) + 0.12 * band[:, None]
            col[m] = cm * (1 - 0.6 * bump[:, None])
        return col

    def sky(self, d: np.ndarray) -> np.ndarray:
        """Sky colour (N, 3) as a function of the scene-frame ray direction only (at infinity)."""
        dn = d / np.linalg.norm(d, axis=1, keepdims=True)
        elev = -dn[:, 1]
        az = np.arctan2(dn[:, 0], dn[:, 2])
        t = np.clip(elev * 4.0, 0.0, 1.0) ** 0.7
        col = self.style.sky_horizon * (1 - t[:, None]) + self.style.sky_zenith * t[:, None]
        cloud = _fbm(az * 3.0, elev * 8.0, self.style.tex_seed + 99, self.pix_angle * 8.0, 1.0, 4)
        cloud = np.clip((cloud + 0.05) * 4.0, 0.0, 1.0) * np.clip(elev * 10 + 0.3, 0, 1)
        return col * (1 - cloud[:, None]) + 0.95 * cloud[:, None]

    def shade(self, origin, d, hits: Hits, time: float, gain: float) -> tuple[np.ndarray, np.ndarray]:
        """RGB in [0, 1] for flat rays (N, 3) and the hit points (NaN for sky)."""
        t, surf, axis = hits.t, hits.surf, hits.axis
        hit = surf > 0
        p = np.full(d.shape, np.nan)
        p[hit] = origin + t[hit, None] * d[hit]
        rgb = np.empty(d.shape)
        if (~hit).any():
            rgb[~hit] = self.sky(d[~hit])
        if hit.any():
            dh = d[hit]
            ax = axis[hit].astype(np.int64)
            comp = dh[np.arange(len(dh)), ax]
            dnorm = np.sqrt(np.einsum("ij,ij->i", dh, dh))
            dist = t[hit] * dnorm
            cosang = np.abs(comp) / dnorm
            # pixel footprint on the surface (m): geometric mean of the two axes of the ellipse
            fp = dist * self.pix_angle / np.sqrt(np.maximum(cosang, 0.05))
            alb = self.albedo(p[hit], surf[hit], ax, time, fp)
            normal = np.zeros_like(dh)
            normal[np.arange(len(dh)), ax] = -np.sign(comp)
            lam = np.maximum(apply_matrix(normal, self.style.sun[None, :])[:, 0], 0.0)
            rgb[hit] = alb * (self.style.ambient + (1 - self.style.ambient) * lam)[:, None]
        return rgb * gain, p

