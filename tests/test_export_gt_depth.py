import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monodepth2_geopt.errors import InputError
from monodepth2_geopt.gt_depth import export_gt_depths, load_gt_depths, save_gt_depths
from monodepth2_geopt.kitti_layout import read_depth_png, write_depth_png
from monodepth2_geopt.kitti_utils import generate_depth_map
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

    with np.load(path, allow_pickle=False) as archive:  # plain arrays: no pickle needed to read it
        assert sorted(archive.files) == ["depths", "shapes", "split_sha256"]
        assert archive["shapes"].tolist() == [[375, 1242]] * 5 and archive["depths"].dtype == np.float32

    depths = load_gt_depths(path)
    assert len(depths) == 5
    velo_dir = raw_mini / FOLDER / "velodyne_points" / "data"
    for i, depth in enumerate(depths):
        assert depth.shape == (375, 1242) and depth.dtype == np.float32
        expected = generate_depth_map(raw_mini / "2011_09_26", velo_dir / f"{i:010d}.bin",
                                      cam=2, vel_depth=True)
        np.testing.assert_array_equal(depth, expected)


def test_ragged_maps_round_trip_without_pickle(tmp_path):
    rng = np.random.default_rng(0)
    maps = [rng.random((375, 1242), np.float32), rng.random((370, 1224), np.float32), np.zeros((2, 3), np.float32)]
    loaded = load_gt_depths(save_gt_depths(tmp_path / "gt.npz", maps))
    assert [d.shape for d in loaded] == [(375, 1242), (370, 1224), (2, 3)]
    for a, b in zip(loaded, maps):
        np.testing.assert_array_equal(a, b)


def monodepth2_gt_file(path, maps):
    """gt_depths.npz as Monodepth2's export writes it: one 1-D object array under 'data' (pickled)."""
    data = np.empty(len(maps), dtype=object)
    for i, m in enumerate(maps):
        data[i] = m
    np.savez_compressed(path, data=data)
    return path


class Payload:
    """Unpickling this creates a file: a stand-in for code run by a malicious download."""
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_monodepth2_pickled_gt_is_refused_by_default_and_read_with_allow_pickle(tmp_path):
    maps = [np.ones((4, 6), np.float32), np.full((3, 5), 2.0, np.float32)]
    path = monodepth2_gt_file(tmp_path / "gt_depths.npz", maps)
    with pytest.raises(InputError, match=r"gt_depths\.npz is a pickled object array.*--allow_pickle"):
        load_gt_depths(path, split="eigen")
    loaded = load_gt_depths(path, allow_pickle=True)
    assert [d.shape for d in loaded] == [(4, 6), (3, 5)] and float(loaded[1][0, 0]) == 2.0


def test_malicious_gt_file_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    data = np.empty(1, dtype=object)
    data[0] = Payload(marker)
    np.savez(tmp_path / "gt_depths.npz", data=data)
    with pytest.raises(InputError, match="pickled"):
        load_gt_depths(tmp_path / "gt_depths.npz")
    assert not marker.exists()
    # Negative control: the payload is live (NumPy's pickle load runs it), so the refusal above is what saved us.
    np.load(tmp_path / "gt_depths.npz", allow_pickle=True)["data"]
    assert marker.exists()


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
    assert result.returncode == 2  # bad input (run_cli)
    assert result.stderr.startswith("error: split 'no_such_split'")
    assert result.stderr.count("\n") == 1
