"""Camera geometry against analytic answers: depth range, rotations, inverses, projection, rigid flow, warping."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from monodepth2_geopt import geometry
from monodepth2_geopt.layers import BackprojectDepth, Project3D
from tests.conftest import BASELINE, KITTI_K_NORM, PLANE_DEPTH, T_X

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def intrinsics(b, h, w, dtype=torch.float32, k_norm=KITTI_K_NORM):
    fx, fy, cx, cy = k_norm
    K = torch.tensor([[fx, 0, cx, 0], [0, fy, cy, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=dtype)
    K = geometry.scale_intrinsics(K[None].repeat(b, 1, 1), h, w)
    return K, torch.linalg.inv(K)


def translation(b, tx=0.0, ty=0.0, tz=0.0, dtype=torch.float32):
    T = torch.eye(4, dtype=dtype).repeat(b, 1, 1)
    T[:, 0, 3], T[:, 1, 3], T[:, 2, 3] = tx, ty, tz
    return T


# --- disp_to_depth -------------------------------------------------------------------------------

def test_disp_to_depth_endpoints_and_monotonic():
    disp = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    scaled, depth = geometry.disp_to_depth(disp, 0.1, 100.0)
    assert depth[0].item() == pytest.approx(100.0)   # sigmoid 0 -> max depth
    assert depth[2].item() == pytest.approx(0.1)     # sigmoid 1 -> min depth
    # midpoint: 1 / (0.01 + 0.5 * (10 - 0.01)) = 1 / 5.005
    assert depth[1].item() == pytest.approx(1 / 5.005)
    torch.testing.assert_close(scaled * depth, torch.ones_like(depth))


# --- rotations and transforms --------------------------------------------------------------------

@pytest.mark.parametrize("b", [1, 3])
def test_rot_from_axisangle_matches_scipy(b):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(b, 3)) * rng.uniform(0.01, 3.0, size=(b, 1))
    R = geometry.rot_from_axisangle(torch.from_numpy(vecs)[:, None])
    assert R.shape == (b, 4, 4) and R.dtype == torch.float64
    expected = Rotation.from_rotvec(vecs).as_matrix()
    np.testing.assert_allclose(R[:, :3, :3].numpy(), expected, atol=1e-6)  # eps 1e-7 in the axis norm
    np.testing.assert_array_equal(R[:, 3].numpy(), np.tile([0, 0, 0, 1.0], (b, 1)))
    np.testing.assert_array_equal(R[:, :3, 3].numpy(), 0)


def test_rot_from_axisangle_zero_vector_is_identity():
    R = geometry.rot_from_axisangle(torch.zeros(2, 1, 3))
    torch.testing.assert_close(R, torch.eye(4).repeat(2, 1, 1))


@pytest.mark.parametrize("b", [1, 3])
def test_transformation_from_parameters_invert_inverts(b):
    torch.manual_seed(0)
    aa = torch.randn(b, 1, 3, dtype=torch.float64) * 0.5
    t = torch.randn(b, 1, 3, dtype=torch.float64)
    M = geometry.transformation_from_parameters(aa, t)
    M_inv = geometry.transformation_from_parameters(aa, t, invert=True)
    eye = torch.eye(4, dtype=torch.float64).repeat(b, 1, 1)
    # Rodrigues normalises the axis by (|v| + 1e-7), as Monodepth2 does, so R is orthonormal to ~1e-7 only.
    torch.testing.assert_close(M @ M_inv, eye, rtol=0, atol=1e-6)
    torch.testing.assert_close(M_inv @ M, eye, rtol=0, atol=1e-6)
    # M = T @ R: rotation block is R, translation column is t (rotation first, then translation)
    torch.testing.assert_close(M[:, :3, :3], geometry.rot_from_axisangle(aa)[:, :3, :3])
    torch.testing.assert_close(M[:, :3, 3], t[:, 0])


# --- projection ----------------------------------------------------------------------------------

@pytest.mark.parametrize("b", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backproject_project_identity_returns_pixel_grid(b, dtype):
    h, w = 8, 12
    K, inv_K = intrinsics(b, h, w, dtype)
    depth = torch.rand(b, 1, h, w, dtype=dtype) * 10 + 0.5
    pts = geometry.backproject(depth, inv_K)
    assert pts.shape == (b, 4, h * w)
    torch.testing.assert_close(pts[:, 2], depth.reshape(b, -1), **TOL[dtype])  # z equals depth
    pix = geometry.project(pts, K, translation(b, dtype=dtype), h, w)
    assert pix.shape == (b, h, w, 2)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")
    grid = torch.stack([xs, ys], -1).expand(b, h, w, 2)
    # project divides by (z + 1e-7) as Monodepth2 does: a relative error of 1e-7 / z even in float64
    torch.testing.assert_close(pix, grid, rtol=0, atol=1e-4 if dtype == torch.float32 else 1e-5)


@pytest.mark.parametrize("b", [1, 3])
def test_rigid_flow_of_fronto_parallel_plane_is_analytic(b):
    """Plane at depth d, T maps target points to source: P_s = P_t + (tx, ty, 0) -> flow (fx tx / d, fy ty / d)."""
    h, w, d, tx, ty = 16, 24, 4.0, -0.3, 0.1
    K, inv_K = intrinsics(b, h, w, torch.float64)
    depth = torch.full((b, 1, h, w), d, dtype=torch.float64)
    flow = geometry.rigid_flow(depth, K, inv_K, translation(b, tx, ty, dtype=torch.float64))
    assert flow.shape == (b, 2, h, w)
    fx, fy = KITTI_K_NORM[0] * w, KITTI_K_NORM[1] * h
    tol = dict(rtol=0, atol=1e-5)  # the (z + 1e-7) divide in project
    torch.testing.assert_close(flow[:, 0], torch.full((b, h, w), fx * tx / d, dtype=torch.float64), **tol)
    torch.testing.assert_close(flow[:, 1], torch.full((b, h, w), fy * ty / d, dtype=torch.float64), **tol)
    # A camera that moved +x by c sees the plane shifted left: T[0,3] = -c, flow = -fx c / d < 0.
    c = 0.5
    flow = geometry.rigid_flow(depth, K, inv_K, translation(b, -c, dtype=torch.float64))
    torch.testing.assert_close(flow[:, 0], torch.full((b, h, w), -fx * c / d, dtype=torch.float64), **tol)
    assert (flow[:, 0] < 0).all()


def test_identity_pose_constant_depth_gives_zero_flow():
    K, inv_K = intrinsics(2, 8, 8)
    flow = geometry.rigid_flow(torch.full((2, 1, 8, 8), 3.0), K, inv_K, translation(2))
    assert flow.abs().max() < 1e-4


def test_rigid_flow_forward_translation_expands_from_principal_point():
    """Moving forward by tz (T[2,3] = -tz): pixel p maps to c + (p - c) * d / (d - tz)."""
    h, w, d, tz = 8, 16, 5.0, 1.0
    K, inv_K = intrinsics(1, h, w, torch.float64)
    pix = geometry.rigid_pixels(torch.full((1, 1, h, w), d, dtype=torch.float64), K, inv_K,
                                translation(1, tz=-tz, dtype=torch.float64))
    cx, cy = KITTI_K_NORM[2] * w, KITTI_K_NORM[3] * h
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    tol = dict(rtol=0, atol=1e-5)  # the (z + 1e-7) divide in project
    torch.testing.assert_close(pix[0, ..., 0], cx + (xs - cx) * d / (d - tz), **tol)
    torch.testing.assert_close(pix[0, ..., 1], cy + (ys - cy) * d / (d - tz), **tol)


# --- sampling conventions ------------------------------------------------------------------------

def test_pixels_to_grid_align_corners_endpoints():
    h, w = 5, 7
    pix = torch.tensor([[[[0.0, 0.0], [w - 1.0, h - 1.0], [(w - 1) / 2, (h - 1) / 2]]]])
    g = geometry.pixels_to_grid(pix, h, w)
    torch.testing.assert_close(g, torch.tensor([[[[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]]]))


@pytest.mark.parametrize("b", [1, 3])
def test_sampling_at_own_pixel_grid_is_exact(b):
    img = torch.rand(b, 3, 9, 13, dtype=torch.float64)
    pix = geometry.pixel_grid(9, 13, dtype=torch.float64)[:, :2].reshape(1, 2, 9, 13).permute(0, 2, 3, 1)
    out = geometry.sample(img, pix.expand(b, -1, -1, -1))
    torch.testing.assert_close(out, img, rtol=0, atol=1e-12)
    torch.testing.assert_close(geometry.flow_warp(img, torch.zeros(b, 2, 9, 13, dtype=torch.float64)), img,
                               rtol=0, atol=1e-12)


def test_sampling_half_pixel_is_mean_of_neighbours():
    img = torch.arange(12, dtype=torch.float64).reshape(1, 1, 3, 4)
    pix = torch.tensor([[[[0.5, 0.0], [2.0, 1.5]]]], dtype=torch.float64)
    out = geometry.sample(img, pix)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([0.5, (6 + 10) / 2], dtype=torch.float64))


def test_flow_warp_integer_shift():
    img = torch.rand(2, 3, 6, 10)
    flow = torch.zeros(2, 2, 6, 10)
    flow[:, 0] = 2.0  # out(x) = img(x + 2)
    out = geometry.flow_warp(img, flow)
    torch.testing.assert_close(out[..., :-2], img[..., 2:])
    torch.testing.assert_close(out[..., -2:], img[..., -1:].expand(-1, -1, -1, 2))  # border padding


# --- warping reproduces the target ---------------------------------------------------------------

@pytest.mark.parametrize("b", [1, 3])
@pytest.mark.parametrize("source", ["next", "previous", "stereo"])
def test_warp_with_true_depth_and_pose_reproduces_target(plane_renderer, source, b):
    """Render two views of the textured plane analytically and warp the source into the target."""
    h, w = 64, 96
    cam_offset = {"next": T_X, "previous": -T_X, "stereo": BASELINE}[source]
    target = torch.from_numpy(plane_renderer(h, w, cam_x=0.0))[None].expand(b, -1, -1, -1)
    src = torch.from_numpy(plane_renderer(h, w, cam_x=cam_offset))[None].expand(b, -1, -1, -1)
    K, inv_K = intrinsics(b, h, w, torch.float64)
    T = translation(b, tx=-cam_offset, dtype=torch.float64)  # target -> source camera
    depth = torch.full((b, 1, h, w), PLANE_DEPTH, dtype=torch.float64)
    pix = geometry.rigid_pixels(depth, K, inv_K, T)
    warped = geometry.sample(src, pix)
    shift = int(np.ceil(abs(KITTI_K_NORM[0] * w * cam_offset / PLANE_DEPTH))) + 1
    inner = (slice(None), slice(None), slice(None), slice(shift, w - shift))
    err = (warped - target)[inner].abs()
    assert err.max() < 0.01, err.max()          # bilinear interpolation error of a smooth texture
    naive = (src - target)[inner].abs().mean()  # the unwarped source is far off
    assert naive > 10 * err.mean()
    # The wrong sign of T does not reproduce the target.
    wrong = geometry.sample(src, geometry.rigid_pixels(depth, K, inv_K, translation(b, tx=cam_offset,
                                                                                     dtype=torch.float64)))
    assert (wrong - target)[inner].abs().mean() > 10 * err.mean()


def test_monodepth2_wrappers_match_functions_and_any_batch_size():
    h, w = 6, 10
    backproject, project = BackprojectDepth(4, h, w), Project3D(4, h, w)
    assert not list(backproject.parameters()) and "grid" not in backproject.state_dict()
    for b in (1, 3):  # built "for" batch 4, used with others
        K, inv_K = intrinsics(b, h, w)
        depth = torch.rand(b, 1, h, w) + 1
        T = geometry.transformation_from_parameters(torch.randn(b, 1, 3) * 0.1, torch.randn(b, 1, 3))
        pts = backproject(depth, inv_K)
        torch.testing.assert_close(pts, geometry.backproject(depth, inv_K))
        grid = project(pts, K, T)
        torch.testing.assert_close(grid, geometry.pixels_to_grid(geometry.project(pts, K, T, h, w), h, w))


# --- gradients -----------------------------------------------------------------------------------

def test_gradcheck_backproject_and_project():
    torch.manual_seed(0)
    h, w = 3, 4
    K, inv_K = intrinsics(2, h, w, torch.float64)
    depth = (torch.rand(2, 1, h, w, dtype=torch.float64) + 1).requires_grad_()
    inv_K = inv_K.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda d, ik: geometry.backproject(d, ik), (depth, inv_K))
    pts = geometry.backproject(depth.detach(), inv_K.detach()).requires_grad_()
    T = geometry.transformation_from_parameters(torch.randn(2, 1, 3, dtype=torch.float64) * 0.1,
                                                torch.randn(2, 1, 3, dtype=torch.float64) * 0.1)
    K = K.clone().requires_grad_()
    T = T.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda p, k, t: geometry.project(p, k, t, h, w), (pts, K, T))


def test_gradcheck_transformation_and_sampling():
    torch.manual_seed(0)
    aa = (torch.randn(2, 1, 3, dtype=torch.float64) * 0.3).requires_grad_()
    t = torch.randn(2, 1, 3, dtype=torch.float64).requires_grad_()
    for invert in (False, True):
        assert torch.autograd.gradcheck(
            lambda a, b, inv=invert: geometry.transformation_from_parameters(a, b, invert=inv), (aa, t))
    img = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    # keep sample points away from integer coordinates, where bilinear interpolation has kinks
    pix = (torch.rand(1, 3, 3, 2, dtype=torch.float64) * 0.6 + 0.2
           + torch.tensor([1.0, 1.0], dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(geometry.sample, (img, pix))
