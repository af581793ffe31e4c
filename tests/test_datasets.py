"""KITTI datasets on the synthetic tiny tree (exact pixels) and on the shared real KITTI frames."""
import numpy as np
import pytest
import torch
from PIL import Image

from monodepth2_geopt.datasets import DATASETS, KITTIDepthDataset, KITTIOdomDataset, KITTIRAWDataset, mono_dataset
from monodepth2_geopt.errors import InputError
from tests.conftest import render_plane

FRAMES = [0, -1, 1, "s"]


def raw(kitti_tiny, lines, frames=FRAMES, ext=".png", **kw):
    return KITTIRAWDataset(kitti_tiny.root, lines, kitti_tiny.height, kitti_tiny.width, frames,
                           img_ext=ext, **kw)


def expected_image(kitti_tiny, frame, side):
    cam_x = frame * kitti_tiny.t_x + (kitti_tiny.baseline if side == "r" else 0.0)
    img = render_plane(kitti_tiny.height, kitti_tiny.width, cam_x=cam_x)
    return torch.from_numpy(np.round(img * 255).astype(np.uint8))


@pytest.fixture
def force_flip(monkeypatch):
    """Make the dataset's coin flip come out as 'flip' (True) or 'no flip' (False)."""
    def set_flip(flip: bool):
        monkeypatch.setattr(mono_dataset.random, "random", lambda: 0.9 if flip else 0.1)
    return set_flip


def test_registry():
    assert DATASETS == {"kitti": KITTIRAWDataset, "kitti_odom": KITTIOdomDataset,
                        "kitti_depth": KITTIDepthDataset}


def test_raw_item_keys_dtypes_and_pixels(kitti_tiny):
    ds = raw(kitti_tiny, [f"{kitti_tiny.drive} 2 l", f"{kitti_tiny.drive} 3 r"])
    assert len(ds) == 2
    item = ds[0]
    assert set(item) == {("color", 0), ("color", -1), ("color", 1), ("color", "s"), "K", "stereo_T",
                         "flip", "index"}
    for f in FRAMES:
        x = item[("color", f)]
        assert x.dtype == torch.uint8 and x.shape == (3, kitti_tiny.height, kitti_tiny.width)
    # PNG round trip is lossless: frames are exactly the rendered views
    assert torch.equal(item[("color", 0)], expected_image(kitti_tiny, 2, "l"))
    assert torch.equal(item[("color", -1)], expected_image(kitti_tiny, 1, "l"))
    assert torch.equal(item[("color", 1)], expected_image(kitti_tiny, 3, "l"))
    assert torch.equal(item[("color", "s")], expected_image(kitti_tiny, 2, "r"))
    assert torch.equal(ds[1][("color", "s")], expected_image(kitti_tiny, 3, "l"))  # other side of r is l
    assert item["K"].dtype == torch.float32
    torch.testing.assert_close(item["K"], torch.tensor(
        [[0.58, 0, 0.5, 0], [0, 1.92, 0.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    assert item["flip"].item() is False and item["index"].item() == 0 and ds[1]["index"].item() == 1
    assert "depth_gt" not in item


@pytest.mark.parametrize("side,flip,sign", [("l", False, -1), ("r", False, 1), ("l", True, 1), ("r", True, -1)])
def test_stereo_T_sign(kitti_tiny, force_flip, side, flip, sign):
    """T[0, 3] = side_sign * flip_sign * 0.1 (side l -> -1): the target->source camera transform."""
    force_flip(flip)
    ds = raw(kitti_tiny, [f"{kitti_tiny.drive} 2 {side}"], [0, "s"], is_train=True)
    item = ds[0]
    assert item["flip"].item() is flip
    expected = torch.eye(4)
    expected[0, 3] = sign * 0.1
    torch.testing.assert_close(item["stereo_T"], expected)
    ds = raw(kitti_tiny, [f"{kitti_tiny.drive} 2 {side}"], [0, "s"], is_train=True, stereo_baseline=0.54)
    assert ds[0]["stereo_T"][0, 3].item() == pytest.approx(sign * 0.54)


def test_no_stereo_T_without_s(kitti_tiny):
    assert "stereo_T" not in raw(kitti_tiny, [f"{kitti_tiny.drive} 2 l"], [0, -1, 1])[0]


def test_flip_mirrors_every_frame_and_cx(kitti_tiny, force_flip):
    line = [f"{kitti_tiny.drive} 2 l"]
    intr = (0.6, 1.9, 0.3, 0.45)
    force_flip(False)
    plain = raw(kitti_tiny, line, is_train=True, intrinsics=intr)[0]
    force_flip(True)
    flipped = raw(kitti_tiny, line, is_train=True, intrinsics=intr)[0]
    assert flipped["flip"].item() is True
    for f in FRAMES:
        assert torch.equal(flipped[("color", f)], plain[("color", f)].flip(-1)), f
    assert plain["K"][0, 2].item() == pytest.approx(0.3)
    assert flipped["K"][0, 2].item() == pytest.approx(0.7)   # 1 - cx
    torch.testing.assert_close(flipped["K"][1], plain["K"][1])
    assert flipped["K"][0, 0].item() == pytest.approx(0.6)


def test_no_flip_outside_training(kitti_tiny, force_flip):
    force_flip(True)
    assert raw(kitti_tiny, [f"{kitti_tiny.drive} 2 l"], is_train=False)[0]["flip"].item() is False


def test_custom_intrinsics_pass_through(kitti_tiny):
    item = raw(kitti_tiny, [f"{kitti_tiny.drive} 2 l"], [0, 1], intrinsics=(0.7, 1.5, 0.48, 0.52))[0]
    torch.testing.assert_close(item["K"], torch.tensor(
        [[0.7, 0, 0.48, 0], [0, 1.5, 0.52, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))


def test_png_and_jpg_paths(kitti_tiny):
    lines = [f"{kitti_tiny.drive} 2 r"]
    png, jpg = raw(kitti_tiny, lines, ext=".png"), raw(kitti_tiny, lines, ext=".jpg")
    root = str(kitti_tiny.root)
    assert png.get_image_path(kitti_tiny.drive, 2, "r") == f"{root}/{kitti_tiny.drive}/image_03/data/0000000002.png"
    assert jpg.get_image_path(kitti_tiny.drive, 7, "l") == f"{root}/{kitti_tiny.drive}/image_02/data/0000000007.jpg"
    assert png.get_image_path(kitti_tiny.drive, 7, "2") == jpg.get_image_path(kitti_tiny.drive, 7, "2")[:-4] + ".png"
    a, b = png[0][("color", 0)].float(), jpg[0][("color", 0)].float()
    assert (a - b).abs().mean() < 4  # the same picture, up to JPEG loss
    assert not torch.equal(a, b)


def test_resizes_to_training_resolution(kitti_tiny):
    ds = KITTIRAWDataset(kitti_tiny.root, [f"{kitti_tiny.drive} 2 l"], 32, 64, [0, -1], img_ext=".png")
    item = ds[0]
    assert item[("color", 0)].shape == (3, 32, 64)
    torch.testing.assert_close(item["K"][0, 0], torch.tensor(0.58))  # normalised K is size independent


def test_missing_and_corrupt_images_name_the_file(kitti_tiny, tmp_path):
    ds = raw(kitti_tiny, [f"{kitti_tiny.drive} 5 l"], [0, 1])  # frame 6 does not exist
    with pytest.raises(FileNotFoundError, match="0000000006.png"):
        ds[0]
    bad = tmp_path / "2011_09_26" / "d" / "image_02" / "data"
    bad.mkdir(parents=True)
    (bad / "0000000000.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    ds = KITTIRAWDataset(tmp_path, ["2011_09_26/d 0 l"], 32, 64, [0], img_ext=".png")
    with pytest.raises(InputError, match=r"0000000000\.png.*corrupt"):
        ds[0]


def test_stereo_needs_a_side_and_sizes_must_be_multiples_of_32(kitti_tiny):
    # a 'folder frame' line has no side: KITTI raw cannot pick image_02/image_03
    with pytest.raises((InputError, FileNotFoundError), match="side"):
        raw(kitti_tiny, [f"{kitti_tiny.drive} 2"], [0, "s"])[0]
    with pytest.raises(InputError, match="multiples of 32"):
        KITTIRAWDataset(kitti_tiny.root, [f"{kitti_tiny.drive} 2 l"], 60, 96, [0])
    with pytest.raises(InputError, match="empty"):
        KITTIRAWDataset(kitti_tiny.root, [], 64, 96, [0])


def test_collates_into_batches(kitti_tiny):
    ds = raw(kitti_tiny, [f"{kitti_tiny.drive} {i} l" for i in (1, 2, 3, 4)])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch[("color", -1)].shape == (3, 3, kitti_tiny.height, kitti_tiny.width)
    assert batch["K"].shape == batch["stereo_T"].shape == (3, 4, 4)
    assert batch["index"].tolist() == [0, 1, 2]


# --- odometry and depth-benchmark layouts --------------------------------------------------------

def test_odom_paths(tmp_path):
    ds = KITTIOdomDataset(tmp_path, ["9 0 l"], 64, 96, [0], img_ext=".png")
    assert ds.get_image_path("9", 12, "l") == str(tmp_path / "sequences" / "09" / "image_2" / "000012.png")
    assert ds.get_image_path("10", 3, "r").endswith("sequences/10/image_3/000003.png")
    d = tmp_path / "sequences" / "09" / "image_3"
    d.mkdir(parents=True)
    Image.new("RGB", (96, 64), (10, 20, 30)).save(d / "000005.png")
    item = KITTIOdomDataset(tmp_path, ["9 5 r"], 64, 96, [0], img_ext=".png")[0]
    assert item[("color", 0)][:, 0, 0].tolist() == [10, 20, 30]


def test_real_odometry_frames_load(shared_data, tmp_path):
    root = shared_data / "kitti_odom_06"
    if not (root / "image_2" / "000013.png").is_file():
        pytest.skip(f"kitti_odom_06 not found at {root}")
    # The shared copy is one sequence without the sequences/06 level: link it into the odometry layout.
    (tmp_path / "sequences").mkdir()
    (tmp_path / "sequences" / "06").symlink_to(root, target_is_directory=True)
    ds = KITTIOdomDataset(tmp_path, ["6 13 l", "6 12 r"], 64, 96, [0, -1, 1], img_ext=".png")
    item = ds[0]
    for f in (0, -1, 1):
        assert item[("color", f)].shape == (3, 64, 96)
    assert not torch.equal(item[("color", -1)], item[("color", 1)])
    assert ds.get_image_path("6", 12, "r").endswith("sequences/06/image_3/000012.png")
    assert KITTIOdomDataset(tmp_path, ["6 12 r"], 64, 96, [0], img_ext=".png")[0][("color", 0)].shape == (3, 64, 96)


def test_depth_benchmark_paths_and_ground_truth(kitti_tiny, tmp_path):
    lines = [f"{kitti_tiny.drive} 2 l"]
    ds = KITTIDepthDataset(tmp_path, lines, 64, 96, [0], img_ext=".png")
    assert ds.get_image_path(kitti_tiny.drive, 2, "l") == str(
        tmp_path / kitti_tiny.drive / "image_02" / "data" / "0000000002.png")
    gt_path = tmp_path / kitti_tiny.drive / "proj_depth" / "groundtruth" / "image_02" / "0000000002.png"
    assert ds.depth_path(kitti_tiny.drive, 2, "l") == str(gt_path)
    assert not ds.check_depth()
    # Write the images and a 16-bit ground-truth PNG at KITTI's size: value / 256 = metres, 0 = no data.
    img_dir = tmp_path / kitti_tiny.drive / "image_02" / "data"
    img_dir.mkdir(parents=True)
    Image.new("RGB", (96, 64)).save(img_dir / "0000000002.png")
    gt = np.zeros((375, 1242), np.uint16)
    gt[200, 600], gt[300, 100] = 256 * 10, 2560 + 128  # 10 m and 10.5 m
    gt_path.parent.mkdir(parents=True)
    Image.fromarray(gt).save(gt_path)
    ds = KITTIDepthDataset(tmp_path, lines, 64, 96, [0], img_ext=".png", load_depth=True)
    assert ds.check_depth()
    depth = ds[0]["depth_gt"]
    assert depth.shape == (1, 375, 1242) and depth.dtype == torch.float32
    assert depth[0, 200, 600].item() == 10.0 and depth[0, 300, 100].item() == 10.5
    assert (depth > 0).sum().item() == 2
    assert "depth_gt" not in KITTIDepthDataset(tmp_path, lines, 64, 96, [0], img_ext=".png")[0]


# --- real KITTI raw frames -----------------------------------------------------------------------

REAL_DRIVE = "2011_09_26/2011_09_26_drive_SFND_sync"


def test_real_kitti_raw_loads_with_png(kitti_raw_mini):
    lines = [f"{REAL_DRIVE} {i} l" for i in (1, 2, 3)]
    ds = KITTIRAWDataset(kitti_raw_mini, lines, 96, 320, [0, -1, 1], img_ext=".png")
    assert ds.check_depth()  # velodyne scans are there
    item = ds[1]
    for f in (0, -1, 1):
        assert item[("color", f)].shape == (3, 96, 320) and item[("color", f)].dtype == torch.uint8
    assert not torch.equal(item[("color", -1)], item[("color", 1)])  # consecutive real frames differ
    assert "depth_gt" not in item
    # Without --png the loader looks for the JPEGs, which this copy does not have, and says which file.
    jpg = KITTIRAWDataset(kitti_raw_mini, lines, 96, 320, [0], img_ext=".jpg")
    with pytest.raises(FileNotFoundError, match=r"0000000001\.jpg"):
        jpg[0]


def test_real_kitti_raw_depth_gt_only_with_load_depth(kitti_raw_mini):
    lines = [f"{REAL_DRIVE} 2 l"]
    ds = KITTIRAWDataset(kitti_raw_mini, lines, 96, 320, [0], img_ext=".png", load_depth=True)
    depth = ds[0]["depth_gt"]
    assert depth.shape == (1, 375, 1242) and depth.dtype == torch.float32
    valid = depth[depth > 0]
    assert valid.numel() > 1000           # a velodyne scan covers thousands of pixels
    assert 1.0 < valid.min() and valid.max() < 120.0
    # the top of the image (sky, above the scanner's field of view) has no points
    assert (depth[0, :60] > 0).sum() == 0
