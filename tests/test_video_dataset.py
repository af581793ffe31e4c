"""Tests of datasets/video_dataset.py (UncalibratedVideoDataset, make_mixed_dataset).

Synthetic frames encode their identity and geometry: R = a per-frame code (constant), G = a
left-to-right ramp, B = a top-to-bottom ramp. So R tells which file was read, and G/B (identical in
every frame) must come out identical across a triplet iff the triplet shares crop and flip.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monodepth2_geopt.datasets.video_dataset import UncalibratedVideoDataset, VideoDatasetError, make_mixed_dataset

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SRC_W, SRC_H = 300, 100          # aspect 3
OUT_W, OUT_H = 128, 32           # aspect 4 -> the maximal crop is 300x75


def frame_array(code, w=SRC_W, h=SRC_H):
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = code
    img[..., 1] = np.linspace(0, 255, w)[None, :]
    img[..., 2] = np.linspace(0, 255, h)[:, None]
    return img


def write_frame(path, code, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame_array(code, **kw)).save(path)
    return path


def code_of(t):
    """The R code of an output image (its mean, rounded)."""
    return int(round(t[0].float().mean().item()))


def make(root, **kw):
    kw.setdefault("height", OUT_H)
    kw.setdefault("width", OUT_W)
    return UncalibratedVideoDataset(root, **kw)


@pytest.fixture()
def plain(tmp_path):
    root = tmp_path / "plain"
    for i in range(6):
        write_frame(root / "vidA" / f"{i:06d}.png", 10 + 10 * i)
    for i in range(4):
        write_frame(root / "sub" / "vidB" / f"{i:06d}.png", 150 + 10 * i)
    (root / "vidA" / "notes.txt").write_text("ignored")
    return root


@pytest.fixture()
def kitti(tmp_path):
    root = tmp_path / "kitti"
    drive = root / "2011_09_26" / "2011_09_26_drive_0001_sync"
    for i in range(5):
        write_frame(drive / "image_02" / "data" / f"{i:010d}.png", 20 + 10 * i)
        write_frame(drive / "image_03" / "data" / f"{i:010d}.png", 120 + 10 * i)
    (root / "2011_09_26" / "calib_cam_to_cam.txt").write_text("ignored: no calibration is read")
    return root


@pytest.fixture()
def cityscapes(tmp_path):
    root = tmp_path / "cs"
    for frame in range(17, 22):
        write_frame(root / "train" / "aachen" / f"aachen_000000_{frame:06d}_leftImg8bit.png", frame * 5)
    for frame in range(5, 8):
        write_frame(root / "train" / "aachen" / f"aachen_000001_{frame:06d}_leftImg8bit.png", 200 + frame)
    return root


# ------------------------------------------------------------------------------------------------
# indexing
# ------------------------------------------------------------------------------------------------
def test_plain_folders_scan_and_schema(plain):
    ds = make(plain, is_train=False)
    assert sorted(ds.filenames) == sorted([f"vidA {i}" for i in range(1, 5)] + ["sub/vidB 1", "sub/vidB 2"])
    assert len(ds) == 6
    for i in range(len(ds)):
        item = ds[i]
        assert set(item) == {("color", 0), ("color", -1), ("color", 1), "flip", "index"}
        assert item["index"] == i and item["flip"].dtype == torch.bool and not item["flip"]
        for f in (0, -1, 1):
            t = item[("color", f)]
            assert t.dtype == torch.uint8 and t.shape == (3, OUT_H, OUT_W)
        folder, frame = ds.filenames[i].split()
        base = 10 if folder == "vidA" else 150
        for f in (0, -1, 1):
            assert code_of(item[("color", f)]) == base + 10 * (int(frame) + f)


def test_stride_and_frame_idxs(plain):
    ds = make(plain, stride=2, is_train=False)
    assert ds.filenames == ["vidA 2", "vidA 3"]         # vidB (4 frames) has no +-2 triplet
    item = ds[0]
    assert [code_of(item[("color", f)]) for f in (-1, 0, 1)] == [10, 30, 50]
    ds = make(plain, frame_idxs=(0, 1), is_train=False)   # pairs: every frame but the last
    assert len(ds) == 5 + 3
    assert set(k for k in ds[0] if isinstance(k, tuple)) == {("color", 0), ("color", 1)}


def test_split_lines_and_file(plain):
    ds = make(plain, filenames=["vidA 3", "sub/vidB 2", ""], is_train=False)
    assert len(ds) == 2
    assert [code_of(ds[0][("color", f)]) for f in (-1, 0, 1)] == [30, 40, 50]
    assert [code_of(ds[1][("color", f)]) for f in (-1, 0, 1)] == [160, 170, 180]
    split = plain / "split.txt"
    split.write_text("vidA 1\nvidA 4\n")
    assert make(plain, filenames=split).filenames == ["vidA 1", "vidA 4"]
    # the scan's filenames reload to the same samples
    scanned = make(plain)
    assert make(plain, filenames=scanned.filenames).filenames == scanned.filenames


def test_sorted_names_index_by_position(tmp_path):
    for code, name in [(10, "shot_a1"), (20, "shot_a2"), (30, "shot_a10"), (40, "shot_b1")]:
        write_frame(tmp_path / "clip" / f"{name}.jpeg", code)
    ds = make(tmp_path, is_train=False)
    assert ds.filenames == ["clip 1", "clip 2"]
    # natural order: a1, a2, a10, b1
    assert [code_of(ds[1][("color", f)]) for f in (-1, 0, 1)] == pytest.approx([20, 30, 40], abs=2)


def test_numeric_gaps_never_make_triplets(tmp_path):
    for i in (0, 1, 2, 5, 6, 7):
        write_frame(tmp_path / "v" / f"{i:06d}.png", 10 * i)
    assert make(tmp_path).filenames == ["v 1", "v 6"]


def test_kitti_raw_layout(kitti):
    ds = make(kitti, is_train=False)
    drive = "2011_09_26/2011_09_26_drive_0001_sync"
    assert ds.filenames == [f"{drive} {i} l" for i in (1, 2, 3)] + [f"{drive} {i} r" for i in (1, 2, 3)]
    ds = make(kitti, filenames=[f"{drive} 2 l", f"{drive} 2 r", f"{drive} 3"], is_train=False)
    assert [code_of(ds[0][("color", f)]) for f in (-1, 0, 1)] == [30, 40, 50]          # image_02
    assert [code_of(ds[1][("color", f)]) for f in (-1, 0, 1)] == [130, 140, 150]       # image_03
    assert code_of(ds[2][("color", 0)]) == 50                                           # default: image_02
    with pytest.raises(VideoDatasetError, match=r"missing neighbour at offset \+1: .*image_02.data.0000000005\.png"):
        make(kitti, filenames=[f"{drive} 4 l"])


def test_cityscapes_sequences(cityscapes):
    ds = make(cityscapes, is_train=False)
    assert ds.filenames == [f"train/aachen/aachen_000000 {i}" for i in (18, 19, 20)] + ["train/aachen/aachen_000001 6"]
    item = ds[3]
    assert [code_of(item[("color", f)]) for f in (-1, 0, 1)] == [205, 206, 207]   # same sequence only
    ds = make(cityscapes, filenames=["train/aachen/aachen_000000 19"], stride=2, is_train=False)
    assert [code_of(ds[0][("color", f)]) for f in (-1, 0, 1)] == [85, 95, 105]
    with pytest.raises(VideoDatasetError, match="2 Cityscapes sequences"):
        make(cityscapes, filenames=["train/aachen 19"])
    with pytest.raises(VideoDatasetError, match=r"aachen_000001_000008_leftImg8bit\.png"):
        make(cityscapes, filenames=["train/aachen/aachen_000001 7"])


# ------------------------------------------------------------------------------------------------
# crop / resize / flip
# ------------------------------------------------------------------------------------------------
def test_centre_crop_is_deterministic_and_exact(plain):
    ds = make(plain, filenames=["vidA 2"], is_train=False)
    a, b = ds[0], ds[0]
    for f in (0, -1, 1):
        assert torch.equal(a[("color", f)], b[("color", f)])
    src = Image.open(plain / "vidA" / "000002.png")
    expected = src.resize((OUT_W, OUT_H), Image.LANCZOS, box=(0, 12.5, 300, 87.5))   # 300x75 centred
    assert torch.equal(a[("color", 0)], torch.from_numpy(np.array(expected)).permute(2, 0, 1))


def test_training_crop_and_flip_shared_by_the_triplet(plain):
    torch.manual_seed(0)
    ds = make(plain)
    flips, geoms = [], []
    for _ in range(24):
        item = ds[1]
        colors = [item[("color", f)] for f in (0, -1, 1)]
        for c in colors[1:]:            # G/B ramps identical: same crop box and same flip
            assert torch.equal(c[1:], colors[0][1:])
        g = colors[0][1].float()
        flipped = bool(item["flip"])
        assert (g[:, 0].mean() > g[:, -1].mean()) == flipped
        flips.append(flipped)
        geoms.append(colors[0][1:])
    assert any(flips) and not all(flips)
    assert not all(torch.equal(geoms[0], g) for g in geoms[1:])   # the crop is random


def test_flip_probability_extremes(plain):
    always = make(plain, flip_prob=1.0)
    never = make(plain, flip_prob=0.0)
    for _ in range(5):
        assert bool(always[0]["flip"]) and not bool(never[0]["flip"])


def test_any_source_resolution_and_jpeg_draft(tmp_path):
    # a large JPEG (crop >= 2x the output: the decoder downscales) and a portrait source
    (tmp_path / "big").mkdir()
    for i in range(3):
        Image.fromarray(frame_array(60, w=1600, h=400)).save(tmp_path / "big" / f"{i:06d}.jpg", quality=95)
        write_frame(tmp_path / "tall" / f"{i:06d}.png", 90, w=90, h=160)
    ds = make(tmp_path, is_train=False)
    assert len(ds) == 2
    big = ds[0][("color", 0)]
    assert big.shape == (3, OUT_H, OUT_W) and abs(code_of(big) - 60) <= 2
    # close to the full-resolution result (the G ramp survives the DCT downscaling)
    ref = Image.fromarray(frame_array(60, w=1600, h=400)).resize((OUT_W, OUT_H), Image.LANCZOS, box=(0, 0, 1600, 400))
    ref = torch.from_numpy(np.array(ref)).permute(2, 0, 1)
    assert (big.float() - ref.float()).abs().mean() < 3
    tall = ds[1][("color", 0)]
    assert tall.shape == (3, OUT_H, OUT_W) and code_of(tall) == 90
    torch.manual_seed(1)
    train = make(tmp_path, height=48, width=48, scale_range=(0.5, 0.5))
    assert train[0][("color", 1)].shape == (3, 48, 48)


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------
def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(VideoDatasetError, match="data_path not found"):
        make(tmp_path / "nope")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(VideoDatasetError, match=r"no images found under '.*empty'.*expected folders of frames"):
        make(tmp_path / "empty")
    for i in range(2):
        write_frame(tmp_path / "short" / f"{i:06d}.png", 0)
    with pytest.raises(VideoDatasetError, match="no frame has neighbours"):
        make(tmp_path / "short")
    with pytest.raises(VideoDatasetError, match="no images with extension .jpg"):
        make(tmp_path / "short", img_ext="jpg")


def test_split_line_errors(plain):
    with pytest.raises(VideoDatasetError, match=r"missing neighbour at offset \+1: .*vidA.000006\.png"):
        make(plain, filenames=["vidA 5"])
    with pytest.raises(VideoDatasetError, match="before the first frame"):
        make(plain, filenames=["vidA 0"])
    with pytest.raises(VideoDatasetError, match=r"split line 2 .*folder not found"):
        make(plain, filenames=["vidA 1", "vidC 1"])
    with pytest.raises(VideoDatasetError, match="not an integer"):
        make(plain, filenames=["vidA one"])
    with pytest.raises(VideoDatasetError, match="split file not found"):
        make(plain, filenames=plain / "missing.txt")


def test_corrupt_and_vanished_images(plain):
    (plain / "vidA" / "000003.png").write_bytes(b"\x89PNG not really a png" * 10)
    ds = make(plain, filenames=["vidA 1", "vidA 2"])
    ds[0]
    with pytest.raises(VideoDatasetError, match=r"cannot read image '.*000003\.png'"):
        ds[1]
    (plain / "vidA" / "000000.png").unlink()
    with pytest.raises(VideoDatasetError, match=r"image file not found: '.*000000\.png'"):
        ds[0]


def test_size_mismatch_in_triplet(plain):
    write_frame(plain / "vidA" / "000002.png", 0, w=200, h=100)
    with pytest.raises(VideoDatasetError, match="differ in size"):
        make(plain, filenames=["vidA 1"])[0]


def test_bad_arguments(plain):
    for kw in (dict(stride=0), dict(scale_range=(0.5, 1.2)), dict(flip_prob=2), dict(img_ext="gif"),
               dict(resample="nearest"), dict(frame_idxs=())):
        with pytest.raises(VideoDatasetError):
            make(plain, **kw)


# ------------------------------------------------------------------------------------------------
# mixing and real data
# ------------------------------------------------------------------------------------------------
def test_make_mixed_dataset(plain, cityscapes):
    a = make(plain)                       # 6 samples
    b = make(cityscapes)                  # 4 samples
    ds, sampler = make_mixed_dataset([a, b], [1, 3], num_samples=4000,
                                     generator=torch.Generator().manual_seed(0))
    assert len(ds) == 10 and len(sampler) == 4000
    idx = torch.tensor(list(sampler))
    assert abs((idx >= 6).float().mean().item() - 0.75) < 0.03
    loader = torch.utils.data.DataLoader(ds, batch_size=4, sampler=sampler, num_workers=2)
    batch = next(iter(loader))
    assert batch[("color", 0)].shape == (4, 3, OUT_H, OUT_W) and batch[("color", 0)].dtype == torch.uint8
    assert batch["flip"].dtype == torch.bool
    with pytest.raises(ValueError):
        make_mixed_dataset([a, b], [1])
    with pytest.raises(ValueError):
        make_mixed_dataset([a, b], [0, 0])


def test_reads_extractor_output(tmp_path):
    pytest.importorskip("av")
    from monodepth2_geopt.tools.video import ExtractOptions, extract_videos
    from tests.test_video import synthetic_frames, write_video

    video = tmp_path / "clip.mp4"
    write_video(video, synthetic_frames())
    out = tmp_path / "frames"
    summary = extract_videos(video, out, ExtractOptions(val_fraction=0), progress=False)
    ds = make(out, filenames=out / "train_files.txt")
    assert len(ds) == len(summary.train) == 52
    scanned = make(out)
    assert scanned.filenames == summary.train
    assert ds[len(ds) - 1][("color", 1)].shape == (3, OUT_H, OUT_W)


def test_kitti_raw_mini_as_uncalibrated_source():
    root = SHARED_DATA / "kitti_raw_mini"
    if not root.is_dir():
        pytest.skip(f"real KITTI sample not available: {root}")
    ds = UncalibratedVideoDataset(root, is_train=True)
    drive = "2011_09_26/2011_09_26_drive_SFND_sync"
    assert ds.filenames == [f"{drive} {i} l" for i in (1, 2, 3)]
    item = ds[1]
    for f in (0, -1, 1):
        assert item[("color", f)].shape == (3, 192, 640) and item[("color", f)].dtype == torch.uint8
    val = UncalibratedVideoDataset(root, filenames=[f"{drive} 2 l"], is_train=False)
    a, b = val[0][("color", 0)], val[0][("color", -1)]
    assert not torch.equal(a, b)                          # consecutive real frames differ
    assert (a.float() - b.float()).abs().mean() < 40      # ... but not wildly


def test_ground_truth_folders_of_a_kitti_tree_are_not_sequences(tmp_path):
    """The synthetic world writes depth/flow PNGs beside the frames; only image folders are scanned."""
    from monodepth2_geopt.tools.synthetic import generate_dataset
    generate_dataset(tmp_path, num_drives=1, frames_per_drive=6, width=64, height=32, seed=0, velodyne=False)
    ds = UncalibratedVideoDataset(tmp_path, height=32, width=64, is_train=False)
    paths = [str(p) for i in range(len(ds)) for p in ds.get_paths(i).values()]
    assert paths and all("/image_0" in p and "proj_depth" not in p and "/flow/" not in p for p in paths)
    assert len(ds) == 2 * 4  # image_02 and image_03, frames 1..4
