"""Pure, batch-size-agnostic camera geometry (Monodepth2's conventions).

Convention: pixel coordinates are (x, y) = (column, row) with pixel centres at integer values; intrinsics K
are 4x4 in pixels for the resolution of the image they are applied to; ``T_tgt_src``-style matrices map
homogeneous points from the source camera frame into the target camera frame (x right, y down, z forward).
Normalisation for ``grid_sample`` uses ``align_corners=True`` (x=0 -> -1, x=W-1 -> +1), the convention the
original Project3D was written for; every sampler here passes it explicitly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

ALIGN_CORNERS = True


def disp_to_depth(disp: torch.Tensor, min_depth: float, max_depth: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Map a sigmoid output in [0, 1] to (scaled disparity, depth) in [min_depth, max_depth]."""
    min_disp = 1.0 / max_depth
    max_disp = 1.0 / min_depth
    scaled_disp = min_disp + (max_disp - min_disp) * disp
    return scaled_disp, 1.0 / scaled_disp


def depth_to_sigmoid(depth: float, min_depth: float, max_depth: float) -> float:
    """Inverse of :func:`disp_to_depth`: the sigmoid output in (0, 1) whose depth is ``depth``."""
    return (1.0 / depth - 1.0 / max_depth) / (1.0 / min_depth - 1.0 / max_depth)


def rot_from_axisangle(vec: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. Args: vec [B, 1, 3] axis * angle. Returns: [B, 4, 4] homogeneous rotation."""
    angle = torch.linalg.norm(vec, dim=2, keepdim=True)  # [B, 1, 1]
    axis = vec / (angle + 1e-7)
    ca, sa = torch.cos(angle), torch.sin(angle)
    c1 = 1 - ca
    x, y, z = axis[..., 0:1], axis[..., 1:2], axis[..., 2:3]  # [B, 1, 1]
    rows = [
        [ca + x * x * c1, x * y * c1 - z * sa, x * z * c1 + y * sa],
        [y * x * c1 + z * sa, ca + y * y * c1, y * z * c1 - x * sa],
        [z * x * c1 - y * sa, z * y * c1 + x * sa, ca + z * z * c1],
    ]
    R = torch.cat([torch.cat(r, dim=2) for r in rows], dim=1)  # [B, 3, 3]
    out = torch.zeros(vec.shape[0], 4, 4, dtype=vec.dtype, device=vec.device)
    out[:, :3, :3] = R
    out[:, 3, 3] = 1
    return out


def get_translation_matrix(translation: torch.Tensor) -> torch.Tensor:
    """Args: translation [B, 1, 3] (or [B, 3]). Returns: [B, 4, 4] homogeneous translation."""
    t = translation.reshape(-1, 3)
    T = torch.eye(4, dtype=t.dtype, device=t.device).repeat(t.shape[0], 1, 1)
    T[:, :3, 3] = t
    return T


def transformation_from_parameters(axisangle: torch.Tensor, translation: torch.Tensor,
                                   invert: bool = False) -> torch.Tensor:
    """Pose-network output (axis-angle [B,1,3], translation [B,1,3]) to a 4x4 matrix.

    Convention: M = T @ R, or with ``invert`` the inverse transform R^T @ (-t), as Monodepth2 does.
    """
    R = rot_from_axisangle(axisangle)
    t = translation.clone()
    if invert:
        R = R.transpose(1, 2)
        t = -t
    T = get_translation_matrix(t)
    return R @ T if invert else T @ R


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Homogeneous pixel centres. Returns: [1, 3, H*W] rows (x, y, 1), row-major over the image."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                            torch.arange(width, device=device, dtype=dtype), indexing="ij")
    ones = torch.ones_like(xs)
    return torch.stack([xs, ys, ones], 0).reshape(1, 3, -1)


def backproject(depth: torch.Tensor, inv_K: torch.Tensor, grid: torch.Tensor | None = None) -> torch.Tensor:
    """Lift every pixel to a 3-D camera point.

    Args: depth [B, 1, H, W]; inv_K [B, 4, 4]; grid optional cached ``pixel_grid`` [1, 3, H*W].
    Returns: [B, 4, H*W] homogeneous points in the camera frame.
    """
    b, _, h, w = depth.shape
    if grid is None:
        grid = pixel_grid(h, w, depth.device, depth.dtype)
    rays = inv_K[:, :3, :3].to(depth.dtype) @ grid.to(depth.dtype)  # [B, 3, HW]
    points = rays * depth.reshape(b, 1, -1)
    return torch.cat([points, torch.ones_like(points[:, :1])], 1)


def depth_to_points(depth: torch.Tensor, inv_K: torch.Tensor) -> torch.Tensor:
    """Camera-frame 3-D point of every pixel (a point cloud, :func:`backproject` without the homogeneous row).

    Args: depth [B, 1, H, W] (z-depth, any unit; the points come out in that unit); inv_K [B, 4, 4] inverse
    intrinsics in pixels of this H x W (``intrinsics.matrices``).
    Returns: [B, H, W, 3] points (X, Y, Z), Z = depth.
    Convention: pixel (row v, column u) looks along inv_K @ (u, v, 1), pixel centres at integers; x right,
    y down, z forward.
    """
    b, _, h, w = depth.shape
    return backproject(depth, inv_K)[:, :3].reshape(b, 3, h, w).permute(0, 2, 3, 1)


def project(points: torch.Tensor, K: torch.Tensor, T: torch.Tensor, height: int, width: int,
            eps: float = 1e-7) -> torch.Tensor:
    """Project homogeneous points [B, 4, N] through T then K; returns pixel coords [B, H, W, 2] (x, y)."""
    P = (K @ T)[:, :3, :]
    cam = P.to(points.dtype) @ points  # [B, 3, N]
    pix = cam[:, :2] / (cam[:, 2:3] + eps)
    return pix.reshape(points.shape[0], 2, height, width).permute(0, 2, 3, 1)


def pixels_to_grid(pix: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates [B, H, W, 2] to grid_sample coordinates in [-1, 1] (align_corners=True)."""
    scale = pix.new_tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)])
    return pix * scale - 1.0


def sample(image: torch.Tensor, pix: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Bilinearly sample ``image`` [B, C, h, w] at pixel coords ``pix`` [B, H, W, 2] of that image.

    Non-finite coordinates (from a non-finite depth or pose) are moved outside the image first: PyTorch's CPU
    ``grid_sample`` backward crashes the process on NaN with border padding. Such pixels then read the padding,
    and the training step that produced them is skipped by the trainer's non-finite guard.
    """
    grid = pixels_to_grid(pix, image.shape[2], image.shape[3]).to(image.dtype)
    grid = torch.nan_to_num(grid, nan=2.0, posinf=2.0, neginf=-2.0)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode=padding_mode, align_corners=ALIGN_CORNERS)


def rigid_pixels(depth: torch.Tensor, K: torch.Tensor, inv_K: torch.Tensor, T: torch.Tensor,
                 grid: torch.Tensor | None = None) -> torch.Tensor:
    """Where each target pixel lands in the source image, given target depth and ``T`` (target -> source)."""
    h, w = depth.shape[2:]
    return project(backproject(depth, inv_K, grid), K, T, h, w)


def rigid_flow(depth: torch.Tensor, K: torch.Tensor, inv_K: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """Optical flow [B, 2, H, W] (pixels) induced by depth and camera motion T (target -> source)."""
    h, w = depth.shape[2:]
    pix = rigid_pixels(depth, K, inv_K, T)
    base = pixel_grid(h, w, depth.device, pix.dtype)[:, :2].reshape(1, 2, h, w)
    return pix.permute(0, 3, 1, 2) - base


def flow_warp(image: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Backward-warp ``image`` [B, C, H, W] with ``flow`` [B, 2, H, W] in pixels: out(p) = image(p + flow(p))."""
    b, _, h, w = flow.shape
    base = pixel_grid(h, w, flow.device, flow.dtype)[:, :2].reshape(1, 2, h, w)
    pix = (base + flow).permute(0, 2, 3, 1)
    return sample(image, pix, padding_mode)


def scale_intrinsics(K_norm: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Normalised intrinsics [B, 4, 4] (fx/W, fy/H, cx/W, cy/H) to pixels at ``height`` x ``width``."""
    K = K_norm.clone()
    K[:, 0, :] *= width
    K[:, 1, :] *= height
    return K
