"""Depth as geometry: back-projection (geometry.depth_to_points), PLY files, test_simple.py --save_ply/--save_depth.

The synthetic world renders exact z-depth with Monodepth2's normalised KITTI intrinsics and knows the 3-D point
behind every pixel, so the point cloud of its exact depth must be that geometry: every point where the ray caster
hit it, and every road point 1.65 m below the camera (its y axis points down; the camera only yaws).
"""
import numpy as np
import pytest

from monodepth2_geopt.kitti_layout import read_depth_png
from monodepth2_geopt.pointcloud import point_cloud, read_ply, write_ply
from monodepth2_geopt.tools.synthetic import CAMERA_HEIGHT, KITTI_FX, KITTI_FY, World
from tests.test_inference import make_depth_weights, real_or_synthetic_image, run_script

KITTI_K = (KITTI_FX, KITTI_FY, 0.5, 0.5)
GROUND = 1  # surface id of the road in the synthetic world
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def view():
    world = World(seed=3, num_frames=3, width=96, height=40)
    v = world.render(1)
    s2c = np.linalg.inv(world.camera_to_scene(1))
    exact = v.points.reshape(-1, 3) @ s2c[:3, :3].T + s2c[:3, 3]  # hit points in the camera frame
    return v, exact.reshape(v.depth.shape + (3,))


def test_point_cloud_of_exact_depth_is_the_worlds_geometry(view):
    v, exact = view
    points, colours = point_cloud(v.depth, v.image, KITTI_K)
    hit = v.surface > 0  # sky has depth 0 and no point
    assert len(points) == hit.sum() > 0.5 * hit.size
    np.testing.assert_allclose(points, exact[hit], atol=2e-3, rtol=1e-5)  # float32 depth of up to ~100 m
    np.testing.assert_array_equal(colours, v.image[hit])
    road = v.surface[hit] == GROUND
    assert road.sum() > 200
    np.testing.assert_allclose(points[road, 1], CAMERA_HEIGHT, atol=1e-4)  # the road is 1.65 m below the camera
    np.testing.assert_allclose(points[:, 2], v.depth[hit], rtol=1e-6)  # z is the depth


@pytest.mark.parametrize("k", [(KITTI_FX * 1.1, KITTI_FY, 0.5, 0.5),   # fx 10 % off
                               (KITTI_FX, KITTI_FY * 0.8, 0.5, 0.5),   # fy 20 % off
                               (KITTI_FX, KITTI_FY, 0.5, 0.45)])       # principal point 2 px too high
def test_wrong_intrinsics_do_not_give_the_worlds_geometry(view, k):
    v, exact = view
    points, _ = point_cloud(v.depth, v.image, k)
    hit = v.surface > 0
    error = np.linalg.norm(points - exact[hit], axis=1)
    assert np.median(error) > 0.05  # metres
    if k[1] != KITTI_FY or k[3] != 0.5:  # a wrong fy or cy tilts or bends the road plane
        assert np.abs(points[v.surface[hit] == GROUND, 1] - CAMERA_HEIGHT).max() > 0.05


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip(tmp_path, binary):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3)).astype(np.float32) * 10
    colours = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    path = write_ply(tmp_path / "c.ply", points, colours, ["scale: metric", "second line"], binary=binary)
    header = path.read_bytes()[:200]
    assert header.startswith(b"ply\nformat " + (b"binary_little_endian" if binary else b"ascii") + b" 1.0\n")
    got_points, got_colours, comments = read_ply(path)
    np.testing.assert_allclose(got_points, points, rtol=1e-5 if not binary else 0)
    np.testing.assert_array_equal(got_colours, colours)
    assert comments == ["scale: metric", "second line"]


@pytest.mark.parametrize("stereo", [True, False])
def test_test_simple_writes_depth_and_point_cloud_at_input_size(tmp_path, stereo, capsys):
    weights = make_depth_weights(tmp_path / "w" / "weights_0", height=64, width=96, use_stereo=stereo)
    image = tmp_path / "img.png"
    real_or_synthetic_image((120, 45)).save(image)
    out = tmp_path / "out"
    run_script("test_simple.py", "--image_path", image, "--load_weights_folder", weights, "--out_dir", out,
               "--save_depth", "--save_ply", "--intrinsics", 0.6, 1.5, 0.5, 0.5)
    printed = capsys.readouterr().out
    names = ["img_depth.npy", "img_depth.png", "img_disp.jpeg", "img_disp.npy", "img_points.ply"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert all(str(out / n) in printed for n in names)  # every file is named
    disp = np.load(out / "img_disp.npy")
    depth = np.load(out / "img_depth.npy")
    assert disp.shape == depth.shape == (1, 1, 45, 120) and depth.dtype == np.float32
    np.testing.assert_allclose(depth, (5.4 if stereo else 1.0) / disp, rtol=1e-6)  # metric only for stereo
    np.testing.assert_allclose(read_depth_png(out / "img_depth.png"), depth[0, 0], atol=0.5 / 256 + 1e-6)
    points, colours, comments = read_ply(out / "img_points.ply")
    assert len(points) == 45 * 120
    np.testing.assert_allclose(points[:, 2], depth[0, 0].reshape(-1), rtol=1e-6)
    expected, _ = point_cloud(depth[0, 0], np.asarray(real_or_synthetic_image((120, 45))), (0.6, 1.5, 0.5, 0.5))
    np.testing.assert_allclose(points, expected, rtol=1e-6)
    scale = next(c for c in comments if c.startswith("scale:"))
    assert ("metric depth in metres" in scale and "x 5.4" in scale) if stereo else "relative" in scale
    assert any("0.6 1.5 0.5 0.5" in c for c in comments)


def test_bad_intrinsics_are_one_line_before_any_work(tmp_path, capsys):
    from tests.conftest import run_script as run_captured
    image = tmp_path / "img.png"
    real_or_synthetic_image((40, 30)).save(image)
    code, err = run_captured(capsys, "test_simple.py", "--image_path", image, "--load_weights_folder", tmp_path,
                             "--save_ply", "--intrinsics", "0.6", "1.5", "1.5", "0.5", "--out_dir", tmp_path / "o")
    assert code == 2 and err.count("\n") == 1 and "--intrinsics" in err and "inside (0, 1)" in err
    assert not (tmp_path / "o").exists()
