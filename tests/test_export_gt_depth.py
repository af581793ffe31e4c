import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monodepth2_geopt.gt_depth import (export_gt_depths, load_gt_depths, save_gt_depths,
                                       to_object_array)
from monodepth2_geopt.kitti_utils import generate_depth_map, read_depth_png, write_depth_png
from tests.conftest import SHARED_DATA

REPO_ROOT = Path(__file__).resolve().parents[1]
RAW_MINI = SHARED_DATA / "kitti_raw_mini"
FOLDER = "2011_09_26/2011_09_26_drive_SFND_sync"


@pytest.fixture
def raw_mini():
    if not (RAW_MINI / FOLDER / "velodyne_points").is_dir():
        pytest.skip(f"shared kitti_raw_mini not found at {RAW_MINI}")
    return RAW_MINI


@pytest.fixture
def split_dir(tmp_path):
    split = tmp_path / "mini_split"
    split.mkdir()
    (split / "test_files.txt").write_text("".join(f"{FOLDER} {i} l\n" for i in range(5)))
    return split


def test_script_exports_loadable_ragged_npz(raw_mini, split_dir):
    result = subprocess.run([sys.executable, "export_gt_depth.py", "--data_path", str(raw_mini),
                             "--split", str(split_dir)], cwd=REPO_ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    path = split_dir / "gt_depths.npz"
    assert "velodyne" in result.stdout and str(path) in result.stdout

    with np.load(path, allow_pickle=True) as archive:  # plain NumPy 2 load works
        data = archive["data"]
    assert data.dtype == object and data.shape == (5,)

    depths = load_gt_depths(path)
    assert len(depths) == 5
    velo_dir = raw_mini / FOLDER / "velodyne_points" / "data"
    for i, depth in enumerate(depths):
        assert depth.shape == (375, 1242) and depth.dtype == np.float32
        expected = generate_depth_map(raw_mini / "2011_09_26", velo_dir / f"{i:010d}.bin",
                                      cam=2, vel_depth=True)
        np.testing.assert_array_equal(depth, expected)


def test_ragged_maps_round_trip(tmp_path):
    maps = [np.ones((375, 1242), np.float32), np.full((370, 1224), 2.0, np.float32)]
    same = [np.ones((2, 3), np.float32)] * 3
    assert to_object_array(same).shape == (3,)  # not [3, 2, 3] of Python floats
    loaded = load_gt_depths(save_gt_depths(tmp_path / "gt.npz", maps))
    assert [d.shape for d in loaded] == [(375, 1242), (370, 1224)]
    np.testing.assert_array_equal(loaded[1], maps[1])


def test_depth_png_source(tmp_path, split_dir):
    # eigen_benchmark layout: <folder>/proj_depth/groundtruth/image_02/%010d.png
    rng = np.random.default_rng(0)
    png_dir = tmp_path / "raw" / FOLDER / "proj_depth" / "groundtruth" / "image_02"
    png_dir.mkdir(parents=True)
    for i in range(5):
        depth = np.where(rng.random((6, 8)) < 0.5, 0.0, rng.uniform(1, 80, (6, 8)))
        write_depth_png(png_dir / f"{i:010d}.png", depth)
    out = export_gt_depths(tmp_path / "raw", split_dir, source="depth_png",
                           output=tmp_path / "gt.npz")
    depths = load_gt_depths(out)
    for i, depth in enumerate(depths):
        np.testing.assert_array_equal(depth, read_depth_png(png_dir / f"{i:010d}.png"))


def test_missing_gt_names_export_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="export_gt_depth.py --data_path") as info:
        load_gt_depths(tmp_path / "splits" / "eigen" / "gt_depths.npz", split="eigen")
    assert "--split eigen" in str(info.value)


def test_missing_inputs_name_the_file(tmp_path, split_dir, raw_mini):
    with pytest.raises(FileNotFoundError, match=r"no_data/2011_09_26/calib_cam_to_cam.txt"):
        export_gt_depths(tmp_path / "no_data", split_dir)
    (split_dir / "test_files.txt").write_text(f"{FOLDER} 99 l\n")
    with pytest.raises(FileNotFoundError, match=r"velodyne_points/data/0000000099.bin"):
        export_gt_depths(raw_mini, split_dir)


def test_script_unknown_split_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "export_gt_depth.py", "--data_path", str(tmp_path),
                             "--split", "no_such_split"], cwd=REPO_ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("error: split 'no_such_split'")
    assert result.stderr.count("\n") == 1
