"""Depth evaluation (monodepth2_geopt.evaluation / evaluate_depth.py) on real KITTI ground truth."""
import json
import os
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monodepth2_geopt.checkpoint import save_weights_folder
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.evaluation import evaluate, post_process_disparity, resize_disparity, scaling_protocol
from monodepth2_geopt.gt_depth import save_gt_depths
from monodepth2_geopt.kitti_layout import read_depth_png
from monodepth2_geopt.metrics import STEREO_SCALE_FACTOR
from monodepth2_geopt.options import MonodepthOptions
from monodepth2_geopt.splits import sha256_file
from monodepth2_geopt.networks import DepthDecoder, ResnetEncoder
from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
DATA = SHARED_DATA
KITTI_GT = DATA / "kitti_depth_gt"
needs_kitti_gt = pytest.mark.skipif(not (KITTI_GT / "depth").is_dir(),
                                    reason=f"shared KITTI depth sample not found at {KITTI_GT}")
DRIVE = "2011_09_26/2011_09_26_drive_0000_sync"


def run_script(script, *args):
    """Run a root script as `python <script> <args>` would, in this process (saves the interpreter start)."""
    argv = sys.argv
    sys.argv = [script] + [str(a) for a in args]
    try:
        runpy.run_path(str(REPO / script), run_name="__main__")
    finally:
        sys.argv = argv


def parse(*args):
    return MonodepthOptions().parse([str(a) for a in args] + ["--num_workers", "0", "--no_cuda"])


def make_depth_weights(folder, num_layers=18, height=96, width=320, use_stereo=False):
    """A freshly initialised depth model saved in Monodepth2's layout (encoder.pth carries the metadata)."""
    torch.manual_seed(0)
    encoder = ResnetEncoder(num_layers, False)
    decoder = DepthDecoder(encoder.num_ch_enc)
    meta = {"height": height, "width": width, "use_stereo": use_stereo}
    return save_weights_folder(folder, {"encoder": encoder, "depth": decoder}, encoder_meta=meta)


@pytest.fixture
def gt_split(tmp_path):
    """A split folder with test_files.txt + gt_depths.npz from the 3 real frames, and a raw-layout data tree."""
    depth_pngs = sorted((KITTI_GT / "depth").glob("*.png"))
    split_dir = tmp_path / "kitti3"
    split_dir.mkdir()
    data_path = tmp_path / "raw"
    image_dir = data_path / DRIVE / "image_02" / "data"
    image_dir.mkdir(parents=True)
    lines = []
    for png in depth_pngs:
        os.symlink(KITTI_GT / "rgb" / png.name, image_dir / png.name)
        lines.append(f"{DRIVE} {int(png.stem)} l")
    (split_dir / "test_files.txt").write_text("\n".join(lines) + "\n")
    gts = [read_depth_png(p) for p in depth_pngs]
    save_gt_depths(split_dir / "gt_depths.npz", gts, sha256_file(split_dir / "test_files.txt"))
    return split_dir, data_path, gts


def cap_residual(gts):
    """abs_rel left by a perfect prediction: outside the eigen split every gt > 0 counts (Monodepth2), and
    predictions are capped at MAX_DEPTH = 80 m, so GT beyond 80 m keeps an error of (gt - 80) / gt."""
    per_image = [np.mean(np.where(gt[gt > 0] > 80, (gt[gt > 0] - 80) / gt[gt > 0], 0.0)) for gt in gts]
    return float(np.mean(per_image))


def save_disps(path, gts, fn):
    """Disparities fn(gt) where the GT is valid and 1.0 (finite) elsewhere, at GT resolution."""
    disps = np.stack([np.where(gt > 0, fn(np.where(gt > 0, gt, 1.0)), 1.0) for gt in gts]).astype(np.float32)
    np.save(path, disps)
    return path


@needs_kitti_gt
@pytest.mark.parametrize("mode,fn", [("--eval_mono", lambda gt: 1.0 / gt),
                                     ("--eval_stereo", lambda gt: STEREO_SCALE_FACTOR / gt)])
def test_ground_truth_as_prediction_is_perfect(gt_split, tmp_path, mode, fn):
    split_dir, _, gts = gt_split
    disps = save_disps(tmp_path / "disps.npy", gts, fn)
    out = tmp_path / "out"
    result = evaluate(parse("--ext_disp_to_eval", disps, mode, "--eval_split", split_dir, "--eval_out_dir", out))
    assert result["num_images"] == 3
    assert result["abs_rel"] == pytest.approx(cap_residual(gts), abs=1e-7)
    assert result["abs_rel"] < 1e-4  # prints as 0.000
    assert result["a1"] == 1.0 and result["a3"] == 1.0
    assert result["ratio_median"] == pytest.approx(1.0, abs=1e-5)
    saved = json.loads((out / f"metrics_kitti3_{mode[len('--eval_'):].replace('mono', 'median')}.json").read_text())
    assert saved["abs_rel"] == pytest.approx(result["abs_rel"])
    assert saved["settings"]["scale"] == (STEREO_SCALE_FACTOR if mode == "--eval_stereo" else 1.0)
    assert len(list((out / "disp_images_kitti3").glob("*.jpeg"))) == 3


@needs_kitti_gt
def test_median_scaling_recovers_a_known_scale(gt_split, tmp_path):
    split_dir, _, gts = gt_split
    disps = save_disps(tmp_path / "disps.npy", gts, lambda gt: 3.0 / gt)  # depth = gt / 3
    result = evaluate(parse("--ext_disp_to_eval", disps, "--eval_mono", "--eval_split", split_dir))
    assert result["ratio_median"] == pytest.approx(3.0, rel=1e-5)
    assert result["ratio_std"] < 1e-5
    assert result["abs_rel"] == pytest.approx(cap_residual(gts), abs=1e-6) and result["a1"] == 1.0
    # without median scaling the same predictions are a third of the truth
    unscaled = evaluate(parse("--ext_disp_to_eval", disps, "--eval_mono", "--disable_median_scaling",
                              "--eval_split", split_dir))
    assert unscaled["abs_rel"] == pytest.approx(2 / 3, rel=1e-3)
    # --pred_depth_scale_factor 3 fixes it
    fixed = evaluate(parse("--ext_disp_to_eval", disps, "--eval_mono", "--disable_median_scaling",
                           "--pred_depth_scale_factor", 3, "--eval_split", split_dir))
    assert fixed["abs_rel"] == pytest.approx(cap_residual(gts), abs=1e-6)


@needs_kitti_gt
def test_lsqr_recovers_scale_and_shift_in_disparity(gt_split, tmp_path):
    split_dir, _, gts = gt_split
    s, t = 2.0, 0.005  # 1/gt = s * disp + t
    disps = save_disps(tmp_path / "disps.npy", gts, lambda gt: (1.0 / gt - t) / s)
    lsqr = evaluate(parse("--ext_disp_to_eval", disps, "--eval_mono", "--align", "lsqr", "--eval_split", split_dir))
    assert lsqr["abs_rel"] < 1e-4 and lsqr["a1"] == 1.0
    assert lsqr["ratio_median"] == pytest.approx(s, rel=1e-4)
    assert "lsqr" in lsqr["protocol"]
    median = evaluate(parse("--ext_disp_to_eval", disps, "--eval_mono", "--eval_split", split_dir))
    assert median["abs_rel"] > 0.01  # a shift is not a scale: median scaling cannot undo it


@needs_kitti_gt
def test_evaluates_a_weights_folder_end_to_end(gt_split, tmp_path):
    split_dir, data_path, _ = gt_split
    weights = make_depth_weights(tmp_path / "weights_0", height=64, width=192)
    out = tmp_path / "out"
    result = evaluate(parse("--load_weights_folder", weights, "--data_path", data_path, "--png", "--eval_mono",
                            "--eval_split", split_dir, "--post_process", "--save_pred_disps",
                            "--eval_out_dir", out))
    assert all(np.isfinite(result[k]) for k in ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"))
    disps = np.load(out / "disps_kitti3_split.npy")
    assert disps.shape == (3, 64, 192)  # network resolution, read from encoder.pth
    assert (out / "metrics_kitti3_median_pp.json").is_file()
    # without --eval_out_dir, the metrics go to the weights folder
    with pytest.warns(UserWarning, match="--eval_stereo on a model trained without stereo"):  # a mono model
        evaluate(parse("--load_weights_folder", weights, "--data_path", data_path, "--png", "--eval_stereo",
                       "--eval_split", split_dir))
    assert (weights / "metrics_kitti3_stereo.json").is_file()


def test_benchmark_split_writes_uint16_pngs(tmp_path):
    split_dir = tmp_path / "benchmark"  # the protocol follows the folder name
    split_dir.mkdir()
    (split_dir / "test_files.txt").write_text("image 0\nimage 1\n")
    disps = np.full((2, 96, 320), 0.1, dtype=np.float32)
    np.save(tmp_path / "d.npy", disps)
    out = tmp_path / "out"
    result = evaluate(parse("--ext_disp_to_eval", tmp_path / "d.npy", "--eval_stereo", "--eval_split", split_dir,
                            "--eval_out_dir", out))
    pngs = sorted((out / "benchmark_predictions").glob("*.png"))
    assert [p.name for p in pngs] == ["0000000000.png", "0000000001.png"]
    with Image.open(pngs[0]) as img:
        assert img.size == (1216, 352)
        values = np.asarray(img)
    assert values.dtype == np.uint16
    assert np.all(values == round(STEREO_SCALE_FACTOR / 0.1 * 256))
    assert result["benchmark_predictions_dir"] == str(out / "benchmark_predictions")


def test_benchmark_split_with_a_model(tmp_path):
    """Monodepth2's benchmark path crashes on its 2-token `image N` lines; here it predicts from images."""
    split_dir = tmp_path / "benchmark"
    split_dir.mkdir()
    (split_dir / "test_files.txt").write_text("image 0\n")
    (tmp_path / "data" / "image").mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 400, 3), dtype=np.uint8)).save(
        tmp_path / "data" / "image" / "0000000000.png")
    weights = make_depth_weights(tmp_path / "w", height=64, width=64, use_stereo=True)
    evaluate(parse("--load_weights_folder", weights, "--data_path", tmp_path / "data", "--png", "--eval_stereo",
                   "--eval_split", split_dir))
    assert (weights / "benchmark_predictions" / "0000000000.png").is_file()


# ---- clear errors ---------------------------------------------------------------------------------------


def test_needs_exactly_one_of_mono_or_stereo(tmp_path):
    for flags in ([], ["--eval_mono", "--eval_stereo"]):
        with pytest.raises(InputError, match="--eval_mono.*--eval_stereo"):
            evaluate(parse("--ext_disp_to_eval", tmp_path / "x.npy", *flags))
    with pytest.raises(InputError, match="lsqr"):
        scaling_protocol(parse("--eval_stereo", "--align", "lsqr"))


def test_weights_folder_without_depth_pth(tmp_path):
    split_dir = tmp_path / "s"
    split_dir.mkdir()
    (split_dir / "test_files.txt").write_text(f"{DRIVE} 5 l\n")
    save_gt_depths(split_dir / "gt_depths.npz", [np.ones((4, 4), np.float32)],
                   sha256_file(split_dir / "test_files.txt"))
    weights = make_depth_weights(tmp_path / "w")
    (weights / "depth.pth").unlink()
    with pytest.raises(InputError, match="depth.pth"):
        evaluate(parse("--load_weights_folder", weights, "--eval_mono", "--eval_split", split_dir))


@needs_kitti_gt
def test_prediction_file_of_wrong_length(gt_split, tmp_path):
    split_dir, _, gts = gt_split
    disps = save_disps(tmp_path / "disps.npy", gts[:2], lambda gt: 1 / gt)
    with pytest.raises(InputError, match=r"2 predictions but 3 ground-truth"):
        evaluate(parse("--ext_disp_to_eval", disps, "--eval_mono", "--eval_split", split_dir))


def test_missing_gt_depths_names_the_export_command(tmp_path):
    split_dir = tmp_path / "s"
    split_dir.mkdir()
    (split_dir / "test_files.txt").write_text(f"{DRIVE} 5 l\n")
    np.save(tmp_path / "d.npy", np.ones((1, 4, 4), np.float32))
    with pytest.raises(FileNotFoundError, match=r"gt_depths.npz.*export_gt_depth.py --data_path"):
        evaluate(parse("--ext_disp_to_eval", tmp_path / "d.npy", "--eval_mono", "--eval_split", split_dir))


def test_save_pred_disps_of_external_disparities_needs_an_out_dir(tmp_path):
    split_dir = tmp_path / "s"
    split_dir.mkdir()
    (split_dir / "test_files.txt").write_text(f"{DRIVE} 5 l\n")
    np.save(tmp_path / "d.npy", np.ones((1, 4, 4), np.float32))
    with pytest.raises(InputError, match="--eval_out_dir"):
        evaluate(parse("--ext_disp_to_eval", tmp_path / "d.npy", "--eval_mono", "--eval_split", split_dir,
                       "--save_pred_disps", "--no_eval"))
    result = evaluate(parse("--ext_disp_to_eval", tmp_path / "d.npy", "--eval_mono", "--eval_split", split_dir,
                            "--save_pred_disps", "--no_eval", "--eval_out_dir", tmp_path / "o"))
    assert np.load(result["pred_disps_path"]).shape == (1, 4, 4)


def test_pickled_prediction_file_is_refused_and_runs_no_code(tmp_path):
    from tests.test_export_gt_depth import Payload
    split_dir = tmp_path / "s"
    split_dir.mkdir()
    (split_dir / "test_files.txt").write_text(f"{DRIVE} 5 l\n")
    save_gt_depths(split_dir / "gt_depths.npz", [np.ones((4, 4), np.float32)],
                   sha256_file(split_dir / "test_files.txt"))
    data = np.empty(1, dtype=object)
    data[0] = Payload(tmp_path / "pwned")
    np.save(tmp_path / "d.npy", data, allow_pickle=True)
    with pytest.raises(InputError, match=r"--ext_disp_to_eval .*d\.npy: cannot be read without unpickling"):
        evaluate(parse("--ext_disp_to_eval", tmp_path / "d.npy", "--eval_mono", "--eval_split", split_dir))
    assert not (tmp_path / "pwned").exists()


# ---- helpers ---------------------------------------------------------------------------------------------


def test_post_process_blends_with_edge_ramps():
    w = 100
    disp = torch.full((1, 2, w), 1.0)
    flipped = torch.full((1, 2, w), 3.0)
    out = post_process_disparity(disp, flipped)[0, 0]
    assert torch.allclose(out[:5], torch.tensor(3.0))  # left 5%: the flipped prediction
    assert torch.allclose(out[-5:], torch.tensor(1.0))  # right 5%: the direct prediction
    assert torch.allclose(out[11:-11], torch.tensor(2.0))  # middle: the mean
    same = torch.rand(2, 3, w)
    assert torch.allclose(post_process_disparity(same, same), same)


def test_resize_disparity_is_identity_at_the_same_size():
    d = np.random.default_rng(0).random((7, 9)).astype(np.float32)
    assert np.array_equal(resize_disparity(d, 7, 9), d)
    assert resize_disparity(d, 14, 18).shape == (14, 18)


@needs_kitti_gt
def test_cli_prints_the_metrics_table_and_fails_in_one_line(gt_split, tmp_path, capsys):
    split_dir, _, gts = gt_split
    disps = save_disps(tmp_path / "disps.npy", gts, lambda gt: 2.0 / gt)
    run_script("evaluate_depth.py", "--ext_disp_to_eval", disps, "--eval_mono", "--eval_split", split_dir)
    out = capsys.readouterr().out
    assert "abs_rel" in out and "Scaling ratios | med: 2.000" in out
    with pytest.raises(SystemExit) as exit_info:
        run_script("evaluate_depth.py", "--ext_disp_to_eval", disps, "--eval_split", split_dir)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "--eval_mono" in err
