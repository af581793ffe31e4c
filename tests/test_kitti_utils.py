from pathlib import Path

import numpy as np
import pytest

from monodepth2_geopt.kitti_layout import read_depth_png, write_depth_png
from monodepth2_geopt.kitti_utils import generate_depth_map, load_velodyne_points, read_calib_file
from tests.conftest import SHARED_DATA

RAW_DATE = SHARED_DATA / "kitti_raw_mini" / "2011_09_26"
VELO_DIR = RAW_DATE / "2011_09_26_drive_SFND_sync" / "velodyne_points" / "data"


def needs_raw_mini():
    if not VELO_DIR.is_dir():
        pytest.skip(f"shared kitti_raw_mini not found at {RAW_DATE}")


# Velodyne (x forward, y left, z up) -> camera (x right, y down, z forward).
VELO_TO_CAM_R = np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], dtype=float)


def write_synthetic_calib(calib_dir: Path, t_velo_to_cam=(0.0, 0.0, 0.0), size=(20, 10)):
    """Pinhole camera f=10, centre (10, 5), image 20x10, no rectification rotation."""
    calib_dir.mkdir(parents=True, exist_ok=True)
    p_rect = np.array([[10, 0, 10, 0], [0, 10, 5, 0], [0, 0, 1, 0]], dtype=float)
    fmt = lambda a: " ".join(f"{v:e}" for v in np.ravel(a))  # noqa: E731
    (calib_dir / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\n"
        f"S_rect_02: {size[0]} {size[1]}\nR_rect_00: {fmt(np.eye(3))}\n"
        f"P_rect_02: {fmt(p_rect)}\nP_rect_03: {fmt(p_rect)}\n")
    (calib_dir / "calib_velo_to_cam.txt").write_text(
        f"calib_time: 15-Mar-2012 11:37:16\nR: {fmt(VELO_TO_CAM_R)}\nT: {fmt(t_velo_to_cam)}\n"
        "delta_f: 0.000000e+00 0.000000e+00\n")


def write_bin(path: Path, points_xyz) -> Path:
    points = np.asarray(points_xyz, dtype=np.float32)
    reflectance = np.full((len(points), 1), 0.5, dtype=np.float32)
    np.hstack([points, reflectance]).tofile(path)
    return path


def test_read_calib_file_real():
    needs_raw_mini()
    calib = read_calib_file(RAW_DATE / "calib_cam_to_cam.txt")
    assert "calib_time" not in calib
    assert calib["P_rect_02"].shape == (12,) and calib["P_rect_02"][0] == pytest.approx(721.5377)
    np.testing.assert_array_equal(calib["S_rect_02"], [1242, 375])
    velo = read_calib_file(RAW_DATE / "calib_velo_to_cam.txt")
    assert velo["R"].shape == (9,) and velo["T"].shape == (3,)


def test_read_calib_file_errors(tmp_path):
    missing = tmp_path / "calib_cam_to_cam.txt"
    with pytest.raises(FileNotFoundError, match="calib_cam_to_cam.txt"):
        read_calib_file(missing)
    bad = tmp_path / "bad.txt"
    bad.write_text("R: 1 0 0\nthis line has no colon\n")
    with pytest.raises(ValueError, match=r"bad.txt:2"):
        read_calib_file(bad)


def test_missing_calibration_key_names_file(tmp_path):
    write_synthetic_calib(tmp_path)
    (tmp_path / "calib_velo_to_cam.txt").write_text("R: 1 0 0 0 1 0 0 0 1\n")
    velo = write_bin(tmp_path / "0.bin", [[10, 0, 0]])
    with pytest.raises(ValueError, match=r"calib_velo_to_cam.txt has no numeric entry 'T'"):
        generate_depth_map(tmp_path, velo)


def test_load_velodyne_points(tmp_path):
    points = load_velodyne_points(write_bin(tmp_path / "a.bin", [[1, 2, 3], [4, 5, 6]]))
    np.testing.assert_array_equal(points, [[1, 2, 3, 1], [4, 5, 6, 1]])
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        load_velodyne_points(tmp_path / "missing.bin")
    (tmp_path / "bad.bin").write_bytes(b"\0" * 20)
    with pytest.raises(ValueError, match="bad.bin"):
        load_velodyne_points(tmp_path / "bad.bin")


def test_duplicate_pixels_keep_closest_and_behind_is_dropped(tmp_path):
    write_synthetic_calib(tmp_path)
    # Three points on the optical axis -> u = 10, v = 5 -> pixel (row 4, col 9) after the -1 shift.
    # One point behind the sensor (x < 0) whose camera projection would land on the same pixel.
    velo = write_bin(tmp_path / "0.bin", [[20, 0, 0], [7, 0, 0], [30, 0, 0], [-5, 0, 0],
                                          [10, -1, 0]])  # x_cam = 1 -> u = 10 + 10/10 = 11
    depth = generate_depth_map(tmp_path, velo)
    assert depth.shape == (10, 20) and depth.dtype == np.float32
    assert depth[4, 9] == 7.0
    assert depth[4, 10] == 10.0
    assert np.count_nonzero(depth) == 2


def test_vel_depth_uses_velodyne_forward_axis(tmp_path):
    write_synthetic_calib(tmp_path, t_velo_to_cam=(0.0, 0.0, 0.5))  # camera z = velodyne x + 0.5
    velo = write_bin(tmp_path / "0.bin", [[10, 0, 0]])
    assert generate_depth_map(tmp_path, velo)[4, 9] == 10.5
    assert generate_depth_map(tmp_path, velo, vel_depth=True)[4, 9] == 10.0


def reference_projection(calib_dir: Path, velo_path: Path, vel_depth: bool) -> np.ndarray:
    """Independent projection: parse with numpy, compose in homogeneous coordinates, resolve
    duplicates by sorting on (pixel, depth) and taking each pixel's first entry."""
    def load(name):
        out = {}
        for line in (calib_dir / name).read_text().splitlines():
            key, values = line.split(":", 1)
            if key != "calib_time":
                out[key] = np.asarray(values.split(), dtype=np.float64)
        return out

    cam, velo_cal = load("calib_cam_to_cam.txt"), load("calib_velo_to_cam.txt")
    width, height = cam["S_rect_02"].astype(int)
    rt = np.vstack([np.hstack([velo_cal["R"].reshape(3, 3), velo_cal["T"][:, None]]), [0, 0, 0, 1]])
    rect = np.eye(4)
    rect[:3, :3] = cam["R_rect_00"].reshape(3, 3)
    proj = cam["P_rect_02"].reshape(3, 4) @ (rect @ rt)

    pts = np.fromfile(velo_path, dtype=np.float32).reshape(-1, 4)[:, :3].astype(np.float64)
    pts = pts[pts[:, 0] >= 0]
    hom = np.einsum("ij,nj->ni", proj, np.c_[pts, np.ones(len(pts))])
    u = np.rint(hom[:, 0] / hom[:, 2]).astype(np.int64) - 1
    v = np.rint(hom[:, 1] / hom[:, 2]).astype(np.int64) - 1
    z = pts[:, 0] if vel_depth else hom[:, 2]
    keep = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, z = u[keep], v[keep], z[keep]
    order = np.lexsort((z, v, u))  # by pixel, then nearest first
    u, v, z = u[order], v[order], z[order]
    first = np.r_[True, (u[1:] != u[:-1]) | (v[1:] != v[:-1])]
    out = np.zeros((height, width))
    out[v[first], u[first]] = np.maximum(z[first], 0)
    return out


@pytest.mark.parametrize("vel_depth", [False, True])
def test_generate_depth_map_real_scan(vel_depth):
    needs_raw_mini()
    velo = VELO_DIR / "0000000000.bin"
    depth = generate_depth_map(RAW_DATE, velo, cam=2, vel_depth=vel_depth)
    assert depth.shape == (375, 1242)  # S_rect_02 = 1242 x 375
    valid = depth[depth > 0]
    assert valid.size > 10_000
    assert valid.min() >= 1.0 and valid.max() <= 80.0
    expected = reference_projection(RAW_DATE, velo, vel_depth)
    np.testing.assert_allclose(depth, expected, rtol=1e-6, atol=0)


def test_generate_depth_map_missing_files_name_them(tmp_path):
    needs_raw_mini()
    with pytest.raises(FileNotFoundError, match="does_not_exist.bin"):
        generate_depth_map(RAW_DATE, tmp_path / "does_not_exist.bin")
    with pytest.raises(FileNotFoundError, match="calib_cam_to_cam.txt"):
        generate_depth_map(tmp_path, VELO_DIR / "0000000000.bin")


def test_depth_png_round_trip(tmp_path):
    depth = np.array([[0.0, 1.0, 12.34], [80.0, np.nan, -3.0]])
    write_depth_png(tmp_path / "d.png", depth)
    back = read_depth_png(tmp_path / "d.png")
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, [[0, 1, round(12.34 * 256) / 256], [80, 0, 0]])
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_depth_png(tmp_path / "nope.png")


def test_read_real_depth_png():
    png = SHARED_DATA / "kitti_depth_gt" / "depth" / "0000000005.png"
    if not png.is_file():
        pytest.skip(f"shared KITTI depth GT not found at {png}")
    depth = read_depth_png(png)
    assert depth.shape == (375, 1242) and depth.dtype == np.float32
    valid = depth[depth > 0]
    assert 0.1 * depth.size < valid.size < 0.3 * depth.size
    assert valid.min() > 0 and valid.max() < 90
