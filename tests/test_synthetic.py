"""Geometry checks of the synthetic KITTI-format generator (monodepth2_geopt.tools.synthetic), through its public
interfaces: the files written, :class:`World` / :class:`View`, and the scene and ray caster a world is made of."""

from __future__ import annotations

import filecmp
import os

import numpy as np
import pytest
from PIL import Image

from monodepth2_geopt.tools import synthetic as syn
from monodepth2_geopt.flow_io import read_flow_png

W, H = 160, 48
N = 6


# ----------------------------------------------------------------------------------------------
# helpers (independent re-implementations of the geometry, no generator code)
# ----------------------------------------------------------------------------------------------
def read_calib(path: str) -> dict:
    out = {}
    with open(path) as f:
        for line in f:
            key, _, val = line.partition(":")
            try:
                out[key] = np.array([float(x) for x in val.split()])
            except ValueError:
                pass
    return out


def read_poses(path: str) -> np.ndarray:
    rows = np.loadtxt(path).reshape(-1, 3, 4)
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    poses[:, :3, :4] = rows
    return poses


def bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sample img (H, W[, C]) at float pixel coords (u = column, v = row); coords must be inside."""
    u0 = np.clip(np.floor(u).astype(int), 0, img.shape[1] - 2)
    v0 = np.clip(np.floor(v).astype(int), 0, img.shape[0] - 2)
    du, dv = u - u0, v - v0
    if img.ndim == 3:
        du, dv = du[..., None], dv[..., None]
    img = img.astype(np.float64)
    top = img[v0, u0] * (1 - du) + img[v0, u0 + 1] * du
    bot = img[v0 + 1, u0] * (1 - du) + img[v0 + 1, u0 + 1] * du
    return top * (1 - dv) + bot * dv


def rigid_projection(depth, pose_t, pose_t1, K):
    """Project every pixel of frame t (with its depth) into frame t+1. Returns u', v', z'."""
    h, w = depth.shape
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    pix = np.stack([jj, ii, np.ones_like(jj)], -1).reshape(-1, 3).T.astype(np.float64)
    cam = np.linalg.inv(K) @ pix * depth.reshape(1, -1)
    cam_h = np.vstack([cam, np.ones((1, cam.shape[1]))])
    cam1 = (np.linalg.inv(pose_t1) @ pose_t @ cam_h)[:3]
    proj = K @ cam1
    z = proj[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = proj[0] / z, proj[1] / z
    return u.reshape(h, w), v.reshape(h, w), z.reshape(h, w)


def project_velodyne(calib_dir: str, bin_path: str, cam: int = 2):
    """Velodyne -> image with the KITTI calibration chain P_rect @ R_rect_00 @ [R|T].
    Returns (u, v, depth) of points in front of the camera, 0-based pixel coordinates."""
    c2c = read_calib(os.path.join(calib_dir, "calib_cam_to_cam.txt"))
    v2c = read_calib(os.path.join(calib_dir, "calib_velo_to_cam.txt"))
    velo2cam = np.eye(4)
    velo2cam[:3, :3] = v2c["R"].reshape(3, 3)
    velo2cam[:3, 3] = v2c["T"]
    rect = np.eye(4)
    rect[:3, :3] = c2c["R_rect_00"].reshape(3, 3)
    p = c2c[f"P_rect_0{cam}"].reshape(3, 4) @ rect @ velo2cam
    pts = np.fromfile(bin_path, dtype=np.float32).reshape(-1, 4).astype(np.float64)
    pts = pts[pts[:, 0] > 0]
    x = np.hstack([pts[:, :3], np.ones((len(pts), 1))]) @ p.T
    return x[:, 0] / x[:, 2], x[:, 1] / x[:, 2], x[:, 2]


@pytest.fixture(scope="module")
def static_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_static")
    info = syn.generate_dataset(
        root, num_drives=2, frames_per_drive=N, width=W, height=H, seed=7, brightness_change=0.0
    )
    return info


@pytest.fixture(scope="module")
def moving_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_moving")
    info = syn.generate_dataset(
        root, num_drives=1, frames_per_drive=N, width=W, height=H, seed=11, moving_objects=6,
        brightness_change=0.0,
    )
    return info


def imread(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im)


def load_frame(drive_dir: str, idx: int, side: str = "2"):
    img = imread(os.path.join(drive_dir, f"image_0{side}", "data", f"{idx:010d}.png"))
    depth = np.load(os.path.join(drive_dir, "depth", f"image_0{side}", f"{idx:010d}.npy"))
    return img, depth


# ----------------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------------
def test_layout_and_calibration(static_data):
    drive = static_data["drive_dirs"][0]
    for sub, ext in [("image_02/data", "png"), ("image_03/data", "png"), ("velodyne_points/data", "bin"),
                     ("proj_depth/groundtruth/image_02", "png"), ("depth/image_02", "npy")]:
        files = sorted(os.listdir(os.path.join(drive, sub)))
        assert files == [f"{i:010d}.{ext}" for i in range(N)], sub
    assert sorted(os.listdir(os.path.join(drive, "flow/image_02"))) == [f"{i:010d}.png" for i in range(N - 1)]
    with Image.open(os.path.join(drive, "image_02/data/0000000000.png")) as img:
        assert img.size == (W, H) and img.mode == "RGB"
    c2c = read_calib(os.path.join(static_data["calib_dir"], "calib_cam_to_cam.txt"))
    K = syn.kitti_intrinsics(W, H)
    assert np.allclose(K, [[0.58 * W, 0, 0.5 * W], [0, 1.92 * H, 0.5 * H], [0, 0, 1]])
    assert np.allclose(c2c["S_rect_02"], [W, H])
    assert np.allclose(c2c["P_rect_02"].reshape(3, 4), np.hstack([K, np.zeros((3, 1))]))
    p3 = c2c["P_rect_03"].reshape(3, 4)
    assert np.allclose(p3[:, :3], K) and np.isclose(p3[0, 3], -K[0, 0] * 0.54) and np.allclose(p3[1:, 3], 0)
    assert np.allclose(c2c["R_rect_00"].reshape(3, 3), np.eye(3))
    # dense GT PNG = depth * 256 (uint16, 0 = no data)
    gt = imread(os.path.join(drive, "proj_depth/groundtruth/image_02/0000000002.png"))
    _, depth = load_frame(drive, 2)
    assert gt.dtype == np.uint16 and gt.shape == (H, W)
    ok = (depth > 0) & (depth < 255)
    assert np.all((gt > 0) == ok | ((depth >= 255) & (depth < 255.99)))
    assert np.abs(gt[ok] / 256.0 - depth[ok]).max() <= 0.5 / 256 + 1e-4
    # poses: first is identity, camera moves forward ~1 m/frame, height constant
    poses = read_poses(os.path.join(drive, "poses.txt"))
    assert poses.shape == (N, 4, 4)
    assert np.allclose(poses[0], np.eye(4), atol=1e-9)
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    assert np.all((steps > 0.6) & (steps < 1.5))
    assert np.abs(poses[:, 1, 3]).max() < 1e-6


def test_reprojection_photometric(static_data):
    """Warping frame t+1 into t with depth_t, poses and K reproduces frame t."""
    drive = static_data["drive_dirs"][0]
    K = syn.kitti_intrinsics(W, H)
    poses = read_poses(os.path.join(drive, "poses.txt"))
    errors = []
    for t in range(N - 1):
        img_t, depth_t = load_frame(drive, t)
        img_t1, depth_t1 = load_frame(drive, t + 1)
        u, v, z = rigid_projection(depth_t, poses[t], poses[t + 1], K)
        ok = (depth_t > 0) & (z > 0) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
        # visibility: the projected depth agrees with the depth rendered at t+1
        ok &= np.abs(bilinear(depth_t1, np.where(ok, u, 0), np.where(ok, v, 0)) - z) < 0.02 * z
        assert ok.mean() > 0.4
        warped = bilinear(img_t1, u[ok], v[ok])
        errors.append(np.abs(warped - img_t[ok]).mean(-1))
    err = np.concatenate(errors)
    assert np.median(err) < 3.0, np.median(err)
    assert np.percentile(err, 75) < 8.0


@pytest.mark.parametrize("which", ["static", "moving"])
def test_flow_matches_geometry(which, static_data, moving_data):
    data = static_data if which == "static" else moving_data
    drive = data["drive_dirs"][0]
    K = syn.kitti_intrinsics(W, H)
    poses = read_poses(os.path.join(drive, "poses.txt"))
    world = None
    if which == "moving":
        world = syn.World(seed=syn.drive_seed(11, 0), num_frames=N, width=W, height=H, moving_objects=6,
                          brightness_change=0.0)
    moving_checked = 0
    for t in range(N - 1):
        _, depth_t = load_frame(drive, t)
        flow, valid = read_flow_png(os.path.join(drive, "flow/image_02", f"{t:010d}.png"))
        u, v, z = rigid_projection(depth_t, poses[t], poses[t + 1], K)
        jj, ii = np.meshgrid(np.arange(W), np.arange(H))
        rigid = np.stack([u - jj, v - ii], -1)
        assert valid.mean() > 0.4
        assert not np.any(valid & (depth_t == 0)), "sky must be invalid"
        # flow endpoints stay inside the image
        end_u, end_v = jj + flow[..., 0], ii + flow[..., 1]
        assert np.all((end_u[valid] >= -0.5) & (end_u[valid] < W - 0.5))
        assert np.all((end_v[valid] >= -0.5) & (end_v[valid] < H - 0.5))
        if which == "static":
            epe = np.linalg.norm(flow - rigid, axis=-1)[valid]
            assert epe.max() < 0.02, epe.max()  # 1/64 px quantisation
            # everything in view and not occluded at t+1 is valid
            inside = (depth_t > 0) & (z > 0) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
            assert valid[inside].mean() > 0.9
        else:
            view = world.render(t)
            movers = np.flatnonzero(np.any(world.scene.boxes.vel != 0, axis=1)) + 2
            on_mover = np.isin(view.surface, movers) & valid
            static = valid & ~np.isin(view.surface, movers)
            assert np.linalg.norm(flow - rigid, axis=-1)[static].max() < 0.02
            if on_mover.any():
                # moving points: projection of (X + velocity) into frame t+1
                vel = world.scene.boxes.vel[view.surface[on_mover] - 2]
                pts = view.points[on_mover] + vel
                c2w1 = world.camera_to_scene(t + 1)
                pc = (pts - c2w1[:3, 3]) @ c2w1[:3, :3]
                uu = K[0, 0] * pc[:, 0] / pc[:, 2] + K[0, 2]
                vv = K[1, 1] * pc[:, 1] / pc[:, 2] + K[1, 2]
                expect = np.stack([uu - jj[on_mover], vv - ii[on_mover]], -1)
                assert np.abs(flow[on_mover] - expect).max() < 0.02
                assert np.linalg.norm(flow[on_mover] - rigid[on_mover], axis=-1).max() > 0.1
                moving_checked += on_mover.sum()
    if which == "moving":
        assert moving_checked > 20


def test_velodyne_projection_matches_depth(static_data):
    calib_dir, drive = static_data["calib_dir"], static_data["drive_dirs"][0]
    for t in (0, N - 1):
        _, depth = load_frame(drive, t)
        u, v, z = project_velodyne(calib_dir, os.path.join(drive, f"velodyne_points/data/{t:010d}.bin"))
        ui, vi = np.round(u).astype(int), np.round(v).astype(int)
        inb = (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H) & (z > 0)
        assert inb.sum() > 1000
        # nearest pixel: a valid depth wherever a LiDAR point lands, close to the point's depth
        d = depth[vi[inb], ui[inb]]
        assert (d == 0).mean() < 0.01
        assert np.median(np.abs(d - z[inb]) / z[inb]) < 0.03
        # sub-pixel: inverse depth is affine in (u, v) on planes -> bilinear 1/depth is ~exact
        inside = (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1) & (z > 0)
        inv = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-9), 0.0)
        zi = 1.0 / np.maximum(bilinear(inv, u[inside], v[inside]), 1e-9)
        rel = np.abs(zi - z[inside]) / z[inside]
        assert np.median(rel) < 1e-3, np.median(rel)
        assert (rel < 0.01).mean() > 0.9


def test_velodyne_with_kitti_utils(static_data):
    """Cross-check with the project's Monodepth2-style generate_depth_map, when it exists."""
    from monodepth2_geopt import kitti_utils as ku
    if not hasattr(ku, "generate_depth_map"):
        pytest.skip("kitti_utils.generate_depth_map not available yet")
    calib_dir, drive = static_data["calib_dir"], static_data["drive_dirs"][0]
    _, depth = load_frame(drive, 1)
    gt = ku.generate_depth_map(calib_dir, os.path.join(drive, "velodyne_points/data/0000000001.bin"), 2, False)
    assert gt.shape == (H, W)
    # Monodepth2 subtracts 1 after rounding (MATLAB convention): compare both alignments
    best = np.inf
    for shift in (0, 1):
        ref = depth[shift:, shift:]
        g = gt[: H - shift, : W - shift]
        m = (g > 0) & (ref > 0)
        best = min(best, np.median(np.abs(g[m] - ref[m]) / ref[m]))
    assert best < 0.02, best


def test_stereo_disparity(static_data):
    """Right image sampled at u - fx * B / depth reproduces the left image."""
    drive = static_data["drive_dirs"][0]
    K = syn.kitti_intrinsics(W, H)
    errs = []
    for t in range(0, N, 2):
        left, depth = load_frame(drive, t, "2")
        right, depth_r = load_frame(drive, t, "3")
        jj, ii = np.meshgrid(np.arange(W), np.arange(H))
        disp = np.where(depth > 0, K[0, 0] * 0.54 / np.maximum(depth, 1e-6), 0)
        ur = jj - disp
        ok = (depth > 0) & (ur >= 0) & (ur <= W - 1)
        ok &= np.abs(bilinear(depth_r, np.where(ok, ur, 0), ii) - depth) < 0.02 * depth
        assert ok.mean() > 0.5
        errs.append(np.abs(bilinear(right, ur[ok], ii[ok]) - left[ok]).mean(-1))
        # the right depth map also satisfies the same relation
    err = np.concatenate(errs)
    assert np.median(err) < 3.0 and np.percentile(err, 75) < 8.0


def test_in_memory_world_matches_disk(static_data):
    drive = static_data["drive_dirs"][0]
    world = syn.World(seed=syn.drive_seed(7, 0), num_frames=N, width=W, height=H, brightness_change=0.0)
    view = world.render(3)
    img, depth = load_frame(drive, 3)
    assert np.array_equal(view.image, img) and np.array_equal(view.depth, depth)
    assert np.allclose(view.pose, read_poses(os.path.join(drive, "poses.txt"))[3], atol=1e-8)
    assert np.allclose(view.K, syn.kitti_intrinsics(W, H))
    # depth is the z coordinate of the hit point in the camera frame
    c2s = world.camera_to_scene(3)
    m = view.depth > 0
    pc = (view.points[m] - c2s[:3, 3]) @ c2s[:3, :3]
    assert np.allclose(pc[:, 2], view.depth[m], rtol=1e-5)
    v2 = syn.render_frame(seed=5, frame=2, width=64, height=24)
    assert v2.image.shape == (24, 64, 3) and v2.image.dtype == np.uint8 and v2.depth.dtype == np.float32


def test_determinism_and_seeds(tmp_path):
    kw = {"num_drives": 1, "frames_per_drive": 3, "width": 64, "height": 24, "seed": 3, "moving_objects": 2,
          "ext": "jpg"}
    a = syn.generate_dataset(tmp_path / "a", **kw)
    b = syn.generate_dataset(tmp_path / "b", **kw)
    files = []
    for dirpath, _, names in os.walk(a["root"]):
        files += [os.path.relpath(os.path.join(dirpath, n), a["root"]) for n in names]
    assert len(files) > 20 and any(f.endswith(".jpg") for f in files)
    _, mismatch, errors = filecmp.cmpfiles(a["root"], b["root"], files, shallow=False)
    assert not mismatch and not errors
    other = syn.World(seed=4, num_frames=3, width=64, height=24).render(0).image
    same = syn.World(seed=3, num_frames=3, width=64, height=24).render(0).image
    assert np.array_equal(same, syn.World(seed=3, num_frames=3, width=64, height=24).render(0).image)
    assert np.abs(other.astype(int) - same.astype(int)).mean() > 5


def test_split_files(static_data):
    root = static_data["root"]
    splits = {}
    for name in ("train", "val", "test"):
        with open(os.path.join(root, "splits", f"{name}_files.txt")) as f:
            splits[name] = [line.split() for line in f.read().splitlines()]
        assert splits[name], name
    for name, lines in splits.items():
        for folder, idx, side in lines:
            assert side in ("l", "r")
            date = folder.split("/")[0]
            assert folder.startswith(f"{date}/{date}_drive_") and folder.endswith("_sync")
            cam = "2" if side == "l" else "3"
            assert os.path.isfile(os.path.join(root, folder, f"image_0{cam}/data/{int(idx):010d}.png"))
            assert os.path.isfile(os.path.join(root, date, "calib_cam_to_cam.txt"))
            if name != "test":
                assert 1 <= int(idx) <= N - 2
    train_drives = {l[0] for l in splits["train"] + splits["val"]}
    test_drives = {l[0] for l in splits["test"]}
    assert train_drives.isdisjoint(test_drives)
    assert {l[2] for l in splits["train"]} == {"l", "r"}
    train_keys = {(l[0], l[1]) for l in splits["train"]}
    assert train_keys.isdisjoint({(l[0], l[1]) for l in splits["val"]})


def test_video_mode(tmp_path):
    av = pytest.importorskip("av")
    paths = syn.generate_video(tmp_path, num_sequences=2, frames=5, width=64, height=24, seed=1, mp4=True)
    folders = [p for p in paths if os.path.isdir(p)]
    videos = [p for p in paths if p.endswith(".mp4")]
    assert len(folders) == 2 and len(videos) == 2
    for folder in folders:
        assert sorted(os.listdir(folder)) == [f"{i:06d}.jpg" for i in range(5)]
        assert not any(n.startswith("calib") for n in os.listdir(os.path.dirname(folder)))
    a = imread(os.path.join(folders[0], "000000.jpg")).astype(int)
    b = imread(os.path.join(folders[1], "000000.jpg")).astype(int)
    assert a.shape == (24, 64, 3) and np.abs(a - b).mean() > 5
    with av.open(videos[0]) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (24, 64, 3)
    assert np.abs(frames[0].astype(int) - a).mean() < 12
    # uncalibrated video with square pixels (--video --square_pixels) is another camera: fy 37 px, not 46
    square = syn.generate_video(tmp_path / "sq", num_sequences=1, frames=2, width=64, height=24, seed=1,
                                square_pixels=True, camera_shake=1.0)
    c = imread(os.path.join(square[0], "000000.jpg")).astype(int)
    assert np.abs(c - a).mean() > 5
    kw = dict(seed=syn.sequence_seed(1, 0), num_frames=2, width=64, height=24, moving_objects=2)
    same = syn.World(square_pixels=True, camera_shake=1.0, **kw).render(0).image.astype(int)
    other = syn.World(**kw).render(0).image.astype(int)
    assert np.abs(same - c).mean() < 0.5 * np.abs(other - c).mean()  # the frames are that world's (JPEG aside)


def test_culled_ray_casting_is_exact():
    """The screen-space box culling and occlusion skipping never change the nearest hit."""
    world = syn.World(seed=2, num_frames=40, width=96, height=32, moving_objects=5)
    for frame in (0, 17, 39):
        for side in ("l", "r"):
            c2s = world.camera_to_scene(frame, side)
            o, rot = c2s[:3, 3], c2s[:3, :3]
            fast = world.caster.cast_grid(o, rot, float(frame))
            d = world.caster.grid_directions @ rot.T
            # brute force: every box against every ray
            t = np.full(len(d), np.inf)
            surf = np.zeros(len(d), int)
            g = d[:, 1] > 1e-12
            tg = np.where(g, (syn.CAMERA_HEIGHT - o[1]) / np.where(g, d[:, 1], 1), np.inf)
            pg = o + np.where(g, tg, 0)[:, None] * d
            okg = g & (np.abs(pg[:, 0]) <= 100) & (pg[:, 2] >= world.scene.z_min) & (pg[:, 2] <= world.scene.z_max)
            t[okg], surf[okg] = tg[okg], 1
            bmin, bmax = world.boxes_at(float(frame))
            with np.errstate(divide="ignore", invalid="ignore"):
                for k in range(len(bmin)):
                    t1, t2 = (bmin[k] - o) / d, (bmax[k] - o) / d
                    tn = np.nanmax(np.minimum(t1, t2), 1)
                    tf = np.nanmin(np.maximum(t1, t2), 1)
                    hit = (tn <= tf) & (tn > 1e-3) & (tn < t)
                    t[hit], surf[hit] = tn[hit], 2 + k
            assert np.array_equal(fast.surf.reshape(-1), surf)
            m = surf > 0
            assert np.allclose(fast.t.reshape(-1)[m], t[m], rtol=1e-9)
        # arbitrary-ray caster (used for LiDAR and occlusion tests) agrees with the grid caster
        c2s = world.camera_to_scene(frame)
        o, rot = c2s[:3, 3], c2s[:3, :3]
        d = world.caster.grid_directions @ rot.T
        flat = world.caster.cast_rays(o, rot, d, float(frame))
        grid = world.caster.cast_grid(o, rot, float(frame))
        assert np.array_equal(flat.surf, grid.surf.reshape(-1))


def test_scene_is_independent_of_the_camera():
    """The scene (drive, boxes, light) depends on the seed only: a world at 3x the image size sees the same street,
    and pixel (i, j) of the small image is the ray of pixel (3i, 3j) of the large one (KITTI K scales with size)."""
    small = syn.World(seed=9, num_frames=4, width=32, height=12, moving_objects=3)
    large = syn.World(seed=9, num_frames=4, width=96, height=36, moving_objects=3)
    assert np.array_equal(small.poses, large.poses)
    for name in ("min0", "max0", "vel", "color"):
        assert np.array_equal(getattr(small.scene.boxes, name), getattr(large.scene.boxes, name)), name
    assert np.array_equal(small.scene.style.sun, large.scene.style.sun)
    lo, hi = small.boxes_at(2.5)
    assert np.array_equal(hi, large.scene.boxes.max0 + 2.5 * large.scene.boxes.vel) and np.all(lo < hi)
    a, b = small.render(2), large.render(2)
    same = a.surface == b.surface[::3, ::3]
    assert same.mean() > 0.99  # (exactly 1 here; a grazing ray may round the other way elsewhere)
    assert np.allclose(a.depth[same], b.depth[::3, ::3][same], rtol=1e-6)


def _pitch_roll_deg(pose: np.ndarray) -> tuple[float, float]:
    """Pitch (about x) and roll (about z) of a yaw-pitch-roll rotation R = Ry Rx Rz, in degrees."""
    r = pose[:3, :3]
    pitch = np.arcsin(np.clip(-r[1, 2], -1, 1))
    roll = np.arctan2(r[1, 0], r[1, 1])
    return float(np.degrees(pitch)), float(np.degrees(roll))


def test_camera_shake_pitches_and_rolls_and_the_ground_truth_follows():
    """camera_shake rotates the camera about x and z: poses say so, the images agree with the poses (warp of t+1
    into t), and the flow ground truth is the rigid projection through them; without the pitch in the pose, the
    same projection misses by pixels (the control)."""
    n, shake = 5, 3.0
    world = syn.World(seed=5, num_frames=n, width=W, height=H, brightness_change=0.0, camera_shake=shake)
    plain = syn.World(seed=5, num_frames=n, width=W, height=H, brightness_change=0.0)
    assert np.allclose(world.scene.cam_pos, plain.scene.cam_pos)  # shake only rotates
    assert np.array_equal(world.pose(0), np.eye(4))
    rel = [_pitch_roll_deg(world.pose(t)) for t in range(n)]
    assert max(abs(p) for p, _ in rel) > 0.5 and max(abs(r) for _, r in rel) > 0.2
    assert all(abs(p) < 2.2 * shake and abs(r) < 1.1 * shake for p, r in rel)
    assert all(_pitch_roll_deg(plain.pose(t)) == (0.0, 0.0) for t in range(n))
    K = world.K
    jj, ii = np.meshgrid(np.arange(W), np.arange(H))
    errors, control = [], []
    for t in range(n - 1):
        view, nxt = world.render(t), world.render(t + 1)
        flow, valid = world.flow(t, view)
        u, v, z = rigid_projection(view.depth, world.pose(t), world.pose(t + 1), K)
        assert np.linalg.norm(flow - np.stack([u - jj, v - ii], -1), axis=-1)[valid].max() < 0.02
        ok = (view.depth > 0) & (z > 0) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
        ok &= np.abs(bilinear(nxt.depth, np.where(ok, u, 0), np.where(ok, v, 0)) - z) < 0.02 * z
        assert ok.mean() > 0.4
        errors.append(np.abs(bilinear(nxt.image.astype(np.float64), u[ok], v[ok]) - view.image[ok]).mean(-1))
        yaw_only = [p.copy() for p in (world.pose(t), world.pose(t + 1))]
        for p, q in zip(yaw_only, (plain.pose(t), plain.pose(t + 1))):
            p[:3, :3] = q[:3, :3]
        u0, v0, _ = rigid_projection(view.depth, *yaw_only, K)
        control.append(np.linalg.norm(np.stack([u0 - u, v0 - v], -1), axis=-1)[valid].mean())
    assert np.median(np.concatenate(errors)) < 3.0
    assert np.mean(control) > 0.5, control


@pytest.mark.parametrize("square", [False, True])
def test_square_pixels_world_renders_with_fy_equal_to_fx(square, tmp_path):
    """--square_pixels: K has fy = fx in pixels (fx/W stays KITTI's 0.58), the calibration files say so, and the
    road's depth is the pinhole's h fy / (v - cy) with that fy (pixel centres at integer coordinates); without it,
    KITTI's normalised fy/H = 1.92."""
    info = syn.generate_dataset(tmp_path / "w", num_drives=1, frames_per_drive=3, width=96, height=32, seed=5,
                                velodyne=False, square_pixels=square)
    K = info["K"]
    assert K[0, 0] == pytest.approx(0.58 * 96)
    assert K[1, 1] == pytest.approx(0.58 * 96 if square else 1.92 * 32)
    p_rect = read_calib(info["calib"]["cam_to_cam"])["P_rect_02"].reshape(3, 4)
    assert p_rect[1, 1] == pytest.approx(K[1, 1])
    _, depth = load_frame(info["drive_dirs"][0], 0)
    for row in (31, 28):  # the road in front of the camera (1.65 m below it)
        assert depth[row, 48] == pytest.approx(syn.CAMERA_HEIGHT * K[1, 1] / (row - K[1, 2]), rel=2e-3)


def test_prepare_synthetic_refuses_a_folder_holding_another_world(tmp_path):
    """A benchmark's --world folder is reused only for the world it was made for: another shake or pixel shape
    there would train on one world and compare with another's truth."""
    from monodepth2_geopt.errors import InputError
    from monodepth2_geopt.tools.experiments import prepare_synthetic
    data, split = prepare_synthetic(tmp_path / "w", 64, 32, drives=1, frames=3, seed=2)
    assert prepare_synthetic(tmp_path / "w", 64, 32, drives=1, frames=3, seed=2) == (data, split)  # reused
    with pytest.raises(InputError, match=r"square_pixels False \(asked True\)"):
        prepare_synthetic(tmp_path / "w", 64, 32, drives=1, frames=3, seed=2, square_pixels=True)
    with pytest.raises(InputError, match=r"camera_shake 0.0 \(asked 2.0\)"):
        prepare_synthetic(tmp_path / "w", 64, 32, drives=1, frames=3, seed=2, camera_shake=2.0)
