"""One KITTI layout: what the synthetic world and the other writers write is what every reader reads.

Round trips go through the readers' own code (datasets, ground-truth export, flow evaluation, split files), not
through kitti_layout alone, so a reader that drifts from the writer fails here.
"""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monodepth2_geopt import kitti_layout as layout
from monodepth2_geopt.tools import synthetic
from monodepth2_geopt.datasets import KITTIDepthDataset, KITTIRAWDataset
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.fileio import atomic_path, atomic_write_text
from monodepth2_geopt.flow import find_flow_pairs, load_image
from monodepth2_geopt.flow_diagnostics import ground_truth_path
from monodepth2_geopt.flow_io import read_flow_png, write_flow_png, write_png
from monodepth2_geopt.gt_depth import gt_depth_for_frame
from monodepth2_geopt.splits import make_split, read_split_file
from tests.conftest import SHARED_DATA

DRIVE = "2000_01_01/2000_01_01_drive_0001_sync"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    synthetic.generate_dataset(root, num_drives=1, frames_per_drive=3, width=64, height=32, seed=0)
    return root


def dataset(cls, root, lines, **kw):
    return cls(str(root), lines, 32, 64, [0], img_ext=".png", **kw)


# --- sides -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("side, folder, other", [("l", "image_02", "r"), ("2", "image_02", "3"),
                                                 ("r", "image_03", "l"), ("3", "image_03", "2")])
def test_sides(side, folder, other):
    assert layout.camera_folder(side) == folder
    assert layout.other_side(side) == other
    assert layout.camera_folder(layout.side_of_camera_folder(folder)) == folder
    assert KITTIRAWDataset.side_map[side] == layout.camera_index(side)  # Monodepth2's attribute, same table


def test_a_line_without_side_is_the_left_camera_but_kitti_datasets_refuse_it(world):
    assert layout.camera_folder(None) == "image_02"
    with pytest.raises(InputError, match="side 'x'"):
        layout.camera_folder("x")
    with pytest.raises(FileNotFoundError, match="need a camera side"):
        dataset(KITTIRAWDataset, world, [f"{DRIVE} 1"]).get_image_path(DRIVE, 1, None)


# --- the synthetic writer and the readers agree on every path ------------------------------------------------

@pytest.mark.parametrize("side", ["l", "r"])
def test_synthetic_frame_paths_are_the_readers_paths(world, side):
    written = synthetic.frame_files(str(world), DRIVE, 1, ".png", velodyne=True)
    raw = dataset(KITTIRAWDataset, world, [f"{DRIVE} 1 {side}"])
    depth = dataset(KITTIDepthDataset, world, [f"{DRIVE} 1 {side}"])
    assert raw.get_image_path(DRIVE, 1, side) == written[f"image_{side}"]
    assert depth.get_image_path(DRIVE, 1, side) == written[f"image_{side}"]
    assert depth.depth_path(DRIVE, 1, side) == written[f"depth_png_{side}"]
    assert raw.check_depth() and depth.check_depth()  # velodyne scan / depth PNG where the readers look
    for path in written.values():
        assert os.path.isfile(path), path


def test_synthetic_depth_png_reads_back_through_the_readers(world):
    exact = np.load(synthetic.frame_files(str(world), DRIVE, 1, ".png", False)["depth_npy_l"])
    quantised = np.where(exact * 256 <= 65535, np.round(exact.astype(np.float64) * 256) / 256, 0)
    via_export = gt_depth_for_frame(world, DRIVE, 1, "l", source="depth_png")
    np.testing.assert_array_equal(via_export, quantised.astype(np.float32))
    np.testing.assert_allclose(via_export, exact, atol=1 / 512 + 1e-6)
    ds = dataset(KITTIDepthDataset, world, [f"{DRIVE} 1 l"])
    ds.full_res_shape = (64, 32)  # no resize: compare values
    np.testing.assert_array_equal(ds.get_depth(DRIVE, 1, "l", False), via_export)


def test_synthetic_flow_png_is_found_from_split_lines_and_from_images(world):
    (target, source, gt), = find_flow_pairs(world, [f"{DRIVE} 1 l"])
    written = synthetic.frame_files(str(world), DRIVE, 1, ".png", False)
    assert (str(target), str(gt)) == (written["image_l"], written["flow"])
    assert str(source) == synthetic.frame_files(str(world), DRIVE, 2, ".png", False)["image_l"]
    assert str(layout.flow_png_of_image(target)) == written["flow"]
    assert ground_truth_path(target, 32, 64) == gt
    with pytest.raises(InputError, match="no flow ground truth"):  # the world has no right-camera flow
        find_flow_pairs(world, [f"{DRIVE} 1 r"])


def test_synthetic_split_lines_parse(world):
    for name in ("train", "val", "test"):
        for folder, index, side in read_split_file(world / "splits" / f"{name}_files.txt"):
            assert folder == DRIVE and side in ("l", "r") and 0 <= index < 3


# --- depth PNG codec ---------------------------------------------------------------------------------------

def test_depth_png_round_trip_through_the_dataset_and_the_export(tmp_path):
    depth = np.array([[0.0, 1.0, 12.3456], [80.0, 255.99, 300.0]], dtype=np.float32)
    path = layout.depth_png_path(tmp_path, DRIVE, 7, "r")
    os.makedirs(os.path.dirname(path))
    layout.write_depth_png(path, depth)
    expected = np.minimum(np.round(depth.astype(np.float64) * 256), 65535) / 256
    np.testing.assert_array_equal(gt_depth_for_frame(tmp_path, DRIVE, 7, "r", "depth_png"), expected)
    ds = dataset(KITTIDepthDataset, tmp_path, [f"{DRIVE} 7 r"])
    ds.full_res_shape = (3, 2)
    np.testing.assert_array_equal(ds.get_depth(DRIVE, 7, "r", False), expected)


def test_depth_png_encoding_conventions():
    depth = np.array([[-1.0, np.nan, np.inf, 0.0, 1 / 256, 300.0]])
    assert layout.encode_depth_png(depth).tolist() == [[0, 0, 0, 0, 1, 65535]]  # far predictions stay far
    assert layout.encode_depth_png(depth, beyond_range="zero").tolist() == [[0, 0, 0, 0, 1, 0]]  # no GT
    with pytest.raises(InputError, match=r"\[H, W\]"):
        layout.encode_depth_png(np.zeros((1, 2, 3)))


def test_negative_control_a_depth_png_at_another_scale_reads_back_wrong(tmp_path):
    """A writer that drifts (here: depth * 100 instead of * 256) is caught: the reader's metres are wrong."""
    depth = np.full((2, 3), 10.0)
    path = tmp_path / "wrong.png"
    write_png(path, np.round(depth * 100).astype(np.uint16))
    read = layout.read_depth_png(path)
    assert np.abs(read - depth).min() > 1.0  # 3.9 m instead of 10 m
    layout.write_depth_png(path, depth)
    np.testing.assert_array_equal(layout.read_depth_png(path), depth)


def test_an_8_bit_png_is_not_read_as_depth(tmp_path):
    Image.fromarray(np.full((2, 2), 10, np.uint8)).save(tmp_path / "d.png")
    with pytest.raises(InputError, match="not a 16-bit depth PNG"):
        layout.read_depth_png(tmp_path / "d.png")


# --- flow PNG at its layout path ----------------------------------------------------------------------------

def test_flow_png_round_trip_through_flow_evaluation(tmp_path):
    for index in (4, 5):
        path = layout.frame_path(tmp_path, DRIVE, index, "l", ".png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.new("RGB", (4, 3)).save(path)
    flow = np.random.default_rng(0).normal(0, 20, (3, 4, 2))
    valid = np.ones((3, 4), bool)
    valid[0, 0] = False
    gt = layout.flow_png_path(tmp_path, DRIVE, 4, "l")
    os.makedirs(os.path.dirname(gt))
    write_flow_png(gt, flow, valid)
    assert find_flow_pairs(tmp_path, [f"{DRIVE} 4 l"]) == [
        (Path(layout.frame_path(tmp_path, DRIVE, 4, "l", ".png")),
         Path(layout.frame_path(tmp_path, DRIVE, 5, "l", ".png")), Path(gt))]
    assert find_flow_pairs(tmp_path) == find_flow_pairs(tmp_path, [f"{DRIVE} 4 l"])  # found by walking, too
    read, read_valid = read_flow_png(gt)
    np.testing.assert_array_equal(read_valid, valid)
    np.testing.assert_array_equal(read[valid], (np.round(flow * 64) / 64).astype(np.float32)[valid])


# --- split lines ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", [(DRIVE, 473, "r"), (DRIVE, 0, "l"), ("9", 12, "3"), ("image", 0, None)])
def test_split_line_round_trip(tmp_path, entry):
    line = layout.format_split_line(*entry)
    assert layout.parse_split_line(line) == entry
    layout.write_split_file(tmp_path / "x_files.txt", [line, line])
    assert read_split_file(tmp_path / "x_files.txt") == [entry, entry]
    assert (tmp_path / "x_files.txt").read_text() == f"{line}\n{line}\n"


def test_make_split_writes_lines_the_datasets_read(world, tmp_path):
    lists = make_split(world, tmp_path, frame_ids=(0,), val_fraction=0.0, stereo=True)
    entries = read_split_file(tmp_path / "train_files.txt")
    assert sorted(entries) == sorted((DRIVE, i, s) for i in range(3) for s in ("l", "r"))
    ds = dataset(KITTIRAWDataset, world, lists["train"])
    assert all(os.path.isfile(ds.get_image_path(*e)) for e in entries)


# --- images: read, resize (LANCZOS), uint8 tensor --------------------------------------------------------------

def test_one_image_loader_for_datasets_flow_and_inference(tmp_path):
    image = SHARED_DATA / "test_image.jpg"
    if not image.is_file():
        pytest.skip(f"real image not found: {image}")
    resized = Image.open(image).convert("RGB").resize((64, 32), Image.Resampling.LANCZOS)
    expected = torch.from_numpy(np.array(resized)).permute(2, 0, 1)
    loaded = layout.load_image_uint8(image, 32, 64)
    assert loaded.dtype == torch.uint8 and torch.equal(loaded, expected)
    path = layout.frame_path(tmp_path, DRIVE, 0, "l", ".jpg")
    os.makedirs(os.path.dirname(path))
    os.symlink(image, path)
    ds = KITTIRAWDataset(str(tmp_path), [f"{DRIVE} 0 l"], 32, 64, [0], img_ext=".jpg")
    assert torch.equal(ds.load_color(DRIVE, 0, "l", False), expected)
    as_float = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255).permute(2, 0, 1)  # flow's old loader
    assert torch.equal(load_image(image, 32, 64)[0], as_float)
    same = Image.new("RGB", (64, 32))
    assert layout.resize_image(same, 64, 32) is same  # already at size: untouched


# --- atomic writes -------------------------------------------------------------------------------------------

def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"
