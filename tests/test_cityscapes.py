"""Cityscapes generalisation benchmark (monodepth2_geopt.cityscapes, evaluate_depth.py --eval_split cityscapes) on
a few synthetic frames written in Cityscapes' own formats, with depths derived by hand.

Every frame below has baseline x fx = 0.2 m x 100 px = 20 m px, so depth = 20 / disparity and the PNG value
is disparity * 256 + 1. Depths whose disparity is a multiple of 1/256 decode exactly: 2 m <-> disparity 10 <->
value 2561, 20 m <-> 1 <-> 257, 40 m <-> 0.5 <-> 129, 160 m <-> 0.125 <-> 33.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monodepth2_geopt import cityscapes
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.evaluation import evaluate, resolve_eval_split
from monodepth2_geopt.metrics import STEREO_SCALE_FACTOR
from monodepth2_geopt.options import MonodepthOptions
from tests.conftest import run_script

H, W = 64, 128  # frame size (Cityscapes' is 1024x2048); evaluated: rows 16:48, columns 12:116
BASELINE, FX = 0.2, 100.0
# depths whose disparity 20 / d is a multiple of 1/256 (exact in the PNG)
EXACT_DEPTHS = np.array([2.0, 2.5, 4.0, 5.0, 8.0, 10.0, 16.0, 20.0, 40.0])
FRAMES = [("aachen", "aachen_000000_000019"), ("bonn", "bonn_000001_000019")]


def write_frame(root: Path, city: str, frame: str, depth: np.ndarray, baseline: float = BASELINE, fx: float = FX,
                image: np.ndarray | None = None) -> None:
    """leftImg8bit PNG, 16-bit disparity PNG and camera JSON of one frame; depth 0 -> value 0 (no measurement)."""
    for folder in ("leftImg8bit", "disparity", "camera"):
        (root / folder / "test" / city).mkdir(parents=True, exist_ok=True)
    if image is None:
        rng = np.random.default_rng(len(frame))
        image = rng.integers(0, 255, (*depth.shape, 3), dtype=np.uint8)
    Image.fromarray(image).save(root / "leftImg8bit" / "test" / city / f"{frame}_leftImg8bit.png")
    with np.errstate(divide="ignore"):
        disparity = np.where(depth > 0, BASELINE * FX / depth, 0.0)
    values = np.where(depth > 0, np.round(disparity * 256 + 1), 0).astype(np.uint16)
    Image.fromarray(values).save(root / "disparity" / "test" / city / f"{frame}_disparity.png")
    camera = {"extrinsic": {"baseline": baseline, "pitch": 0.04, "roll": 0.0, "x": 1.7, "y": 0.1, "yaw": -0.01,
                            "z": 1.2},
              "intrinsic": {"fx": fx, "fy": fx, "u0": W / 2, "v0": H / 2}}
    (root / "camera" / "test" / city / f"{frame}_camera.json").write_text(json.dumps(camera))


def scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(GT depth [H, W], mask of the evaluated region). Inside: exact depths varying by pixel, one pixel without
    a measurement and one beyond 80 m; outside (top quarter, sides, ego car): 2 m everywhere, a trap."""
    rng = np.random.default_rng(seed)
    depth = np.full((H, W), 2.0)
    region = np.zeros((H, W), bool)
    region[16:48, 12:116] = True
    depth[region] = rng.choice(EXACT_DEPTHS, int(region.sum()))
    depth[20, 20] = 0.0  # no measurement
    depth[21, 21] = 160.0  # beyond MAX_DEPTH
    return depth, region


@pytest.fixture
def city_world(tmp_path):
    root = tmp_path / "cityscapes_data"
    depths = []
    for i, (city, frame) in enumerate(FRAMES):
        depth, _ = scene(i)
        write_frame(root, city, frame, depth)
        depths.append(depth)
    split = tmp_path / "cityscapes"
    split.mkdir()
    (split / "test_files.txt").write_text("".join(f"{c} {f}\n" for c, f in FRAMES))
    return root, split, depths


def parse(*args):
    return MonodepthOptions().parse([str(a) for a in args] + ["--num_workers", "0", "--no_cuda"])


# ------------------------------------------------------------------------------------------ formats
def test_disparity_decoding_and_depth_by_hand():
    values = np.array([[0, 1, 257, 513, 2561]], np.uint16)
    disparity = cityscapes.decode_disparity(values)
    np.testing.assert_array_equal(disparity, [[0, 0, 1, 2, 10]])  # (v - 1) / 256; 0 = none; 1 = disparity 0
    depth = cityscapes.disparity_to_depth(disparity, BASELINE, FX)
    np.testing.assert_array_equal(depth, np.array([[0, 0, 20, 10, 2]], np.float32))
    # negative controls: a wrong baseline gives another depth, and so does forgetting the offset of 1
    wrong = cityscapes.disparity_to_depth(disparity, 0.25, FX)
    assert wrong[0, 2] == pytest.approx(25.0) and wrong[0, 2] != depth[0, 2]
    no_offset = cityscapes.disparity_to_depth(values.astype(np.float32) / 256, BASELINE, FX)
    assert abs(no_offset[0, 2] - 20.0) > 0.05


def test_ground_truth_read_from_the_files(city_world):
    root, _, depths = city_world
    gt = cityscapes.gt_depth(root, *FRAMES[0])
    assert gt.shape == (H, W) and gt.dtype == np.float32
    np.testing.assert_allclose(gt, depths[0], rtol=1e-6)  # exact depths decode exactly, 0 stays 0
    assert gt[20, 20] == 0 and gt[21, 21] == pytest.approx(160.0)
    # the same disparity PNG with a camera of another baseline: every depth scales with it
    cam = cityscapes.frame_file(root, "camera", *FRAMES[0])
    data = json.loads(cam.read_text())
    data["extrinsic"]["baseline"] = 0.25
    cam.write_text(json.dumps(data))
    np.testing.assert_allclose(cityscapes.gt_depth(root, *FRAMES[0]), depths[0] * 1.25, rtol=1e-6)


def test_archives_unzipped_into_their_own_folders_are_found(tmp_path):
    root = tmp_path / "cs"
    write_frame(root, *FRAMES[0], scene(0)[0])
    (root / "camera_trainvaltest").mkdir()
    (root / "camera").rename(root / "camera_trainvaltest" / "camera")  # ManyDepth's layout
    assert cityscapes.frame_file(root, "camera", *FRAMES[0]).is_file()
    assert cityscapes.gt_depth(root, *FRAMES[0])[30, 30] > 0


def test_bad_camera_json_is_one_line(tmp_path):
    path = tmp_path / "x_camera.json"
    path.write_text(json.dumps({"intrinsic": {"fx": 100.0}}))
    with pytest.raises(InputError, match="extrinsic.baseline"):
        cityscapes.read_camera(path)
    path.write_text(json.dumps({"extrinsic": {"baseline": -0.2}, "intrinsic": {"fx": 100.0}}))
    with pytest.raises(InputError, match="positive"):
        cityscapes.read_camera(path)


def test_crop_is_manydepths_at_full_size():
    assert cityscapes.kept_rows(1024) == 768
    rows, cols = cityscapes.eval_crop_slices(1024, 2048)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (256, 768, 192, 1856)  # gt[256:, 192:1856] of 768
    rows, cols = cityscapes.eval_crop_slices(H, W)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (16, 48, 12, 116)


def test_network_input_has_the_ego_car_cut_off(tmp_path):
    image = np.zeros((H, W, 3), np.uint8)
    image[:, :, 2] = 200  # blue sky and street ...
    image[48:, :, 0], image[48:, :, 2] = 255, 0  # ... and a red ego car in the bottom quarter
    write_frame(tmp_path, *FRAMES[0], scene(0)[0], image=image)
    item = cityscapes.CityscapesEvalImages(tmp_path, [" ".join(FRAMES[0])], 32, 64)[0]
    color = item[("color", 0)]
    assert color.shape == (3, 32, 64) and color.dtype == torch.uint8
    assert int(color[0].max()) <= 2 and int(color[2].min()) >= 198  # no red at all: the car was cut first


# ------------------------------------------------------------------------------------------ protocol
def exact_prediction(depths, scale: float = 1.0) -> np.ndarray:
    """Disparities [N, 3H/4, W] at the cut GT's size: exact inside the evaluated region (depth / scale), 30 m
    elsewhere and where the GT has no usable value (so only the region decides)."""
    preds = []
    for depth in depths:
        _, region = scene(0)
        good = region & (depth > 0) & (depth < 80)
        pred_depth = np.where(good, depth / scale, 30.0)[:48]
        preds.append((1.0 / pred_depth).astype(np.float32))
    return np.stack(preds)


def test_exact_prediction_scores_perfectly_and_the_crop_matters(city_world, tmp_path, monkeypatch):
    root, split, depths = city_world
    np.save(tmp_path / "d.npy", exact_prediction(depths, scale=3.0))  # median scaling removes any scale
    args = ("--ext_disp_to_eval", tmp_path / "d.npy", "--eval_mono", "--eval_split", split, "--data_path", root)
    result = evaluate(parse(*args), log=lambda _: None)
    assert result["abs_rel"] == pytest.approx(0.0, abs=1e-6) and result["a1"] == 1.0
    assert result["ratio_median"] == pytest.approx(3.0, rel=1e-6)
    assert result["num_images"] == 2
    # negative control: without the crops the 2 m traps (ego car, top, sides) against 30 m predictions count
    # (the prediction is then stretched over the whole frame, so only part of the region stays exact)
    monkeypatch.setattr(cityscapes, "EVAL_CROP_FRACTIONS", (0.0, 0.0, 1.0))
    monkeypatch.setattr(cityscapes, "kept_rows", lambda h: h)
    uncropped = evaluate(parse(*args), log=lambda _: None)
    assert uncropped["abs_rel"] > 0.5


def test_metric_evaluation_and_a_wrong_baseline(city_world, tmp_path):
    root, split, depths = city_world
    np.save(tmp_path / "d.npy", exact_prediction(depths, scale=STEREO_SCALE_FACTOR))  # stereo: depth = 5.4 / disp
    args = ("--ext_disp_to_eval", tmp_path / "d.npy", "--eval_stereo", "--eval_split", split, "--data_path", root)
    assert evaluate(parse(*args), log=lambda _: None)["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    # the camera file of frame 0 says 0.25 m: its GT is 1.25x farther, |1.25 - 1| / 1.25 = 0.2 on every pixel
    cam = cityscapes.frame_file(root, "camera", *FRAMES[0])
    data = json.loads(cam.read_text())
    data["extrinsic"]["baseline"] = 0.25
    cam.write_text(json.dumps(data))
    result = evaluate(parse(*args), log=lambda _: None)
    assert result["abs_rel"] == pytest.approx(0.2 / 2, rel=1e-5)  # mean over the two frames


def test_evaluates_a_weights_folder_end_to_end(city_world, tmp_path):
    from tests.test_evaluation import make_depth_weights

    root, split, _ = city_world
    weights = make_depth_weights(tmp_path / "weights_0", height=64, width=128)
    out = tmp_path / "out"
    result = evaluate(parse("--load_weights_folder", weights, "--eval_mono", "--eval_split", split,
                            "--data_path", root, "--save_pred_disps", "--eval_out_dir", out), log=lambda _: None)
    assert all(np.isfinite(result[k]) for k in ("abs_rel", "rmse", "a1"))
    assert np.load(out / "disps_cityscapes_split.npy").shape == (2, 64, 128)
    assert json.loads((out / "metrics_cityscapes.json").read_text())["split"] == "cityscapes"


def test_missing_files_are_reported_together_before_predicting(city_world, tmp_path):
    root, split, _ = city_world
    for city, frame in FRAMES:
        cityscapes.frame_file(root, "disparity", city, frame).unlink()
    with pytest.raises(InputError, match=r"2 Cityscapes file\(s\).*disparity"):
        evaluate(parse("--load_weights_folder", tmp_path / "nowhere", "--eval_mono", "--eval_split", split,
                       "--data_path", root), log=lambda _: None)


def test_cityscapes_split_without_a_list_names_the_command(tmp_path):
    with pytest.raises(InputError, match="make_split.py --cityscapes"):
        resolve_eval_split("cityscapes", repo_root=tmp_path)
    (tmp_path / "splits" / "cityscapes").mkdir(parents=True)
    assert resolve_eval_split("cityscapes", repo_root=tmp_path).kind == "cityscapes"


def test_make_split_lists_the_test_frames(city_world, tmp_path, capsys):
    root, _, _ = city_world
    out = tmp_path / "lists"
    code, _ = run_script(capsys, "make_split.py", "--cityscapes", "--data_path", root, "--out_dir", out)
    assert code == 0
    assert (out / "test_files.txt").read_text().splitlines() == sorted(f"{c} {f}" for c, f in FRAMES)
    code, err = run_script(capsys, "make_split.py", "--cityscapes", "--data_path", root, "--out_dir", out)
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
