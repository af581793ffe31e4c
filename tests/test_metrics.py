import math

import numpy as np
import pytest
import torch

from monodepth2_geopt import metrics
from monodepth2_geopt.metrics import (METRIC_NAMES, MAX_DEPTH, MIN_DEPTH, aggregate, chain_positions,
                                      compute_ate, compute_depth_errors, eigen_crop_mask, end_point_error,
                                      evaluate_depth_map, fl_all, format_metrics_table, lsqr_scale_shift,
                                      median_scale, snippet_ates, valid_mask)
from tests.conftest import SHARED_DATA



def test_constants():
    assert (MIN_DEPTH, MAX_DEPTH, metrics.STEREO_SCALE_FACTOR) == (1e-3, 80.0, 5.4)
    assert METRIC_NAMES == ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")


def test_errors_match_hand_computed_values():
    gt = np.array([2.0, 4.0, 10.0])
    pred = np.array([1.0, 5.0, 10.0])
    # |gt - pred| = 1, 1, 0
    # abs_rel  = (1/2 + 1/4 + 0) / 3 = 0.25
    # sq_rel   = (1/2 + 1/4 + 0) / 3 = 0.25
    # rmse     = sqrt((1 + 1 + 0) / 3)
    # rmse_log = sqrt((ln 2 ^ 2 + ln(4/5) ^ 2 + 0) / 3)
    # thresh   = max(gt/pred, pred/gt) = 2, 1.25, 1 -> strict "<":
    #   a1 (< 1.25) = 1/3, a2 (< 1.5625) = 2/3, a3 (< 1.953125) = 2/3
    expected = {
        "abs_rel": 0.25, "sq_rel": 0.25, "rmse": math.sqrt(2 / 3),
        "rmse_log": math.sqrt((math.log(2) ** 2 + math.log(0.8) ** 2) / 3),
        "a1": 1 / 3, "a2": 2 / 3, "a3": 2 / 3,
    }
    errors = compute_depth_errors(gt, pred)
    assert list(errors) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert isinstance(errors[name], float)
        assert errors[name] == pytest.approx(expected[name], rel=1e-12)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_torch_and_numpy_agree(dtype, tol):
    rng = np.random.default_rng(0)
    gt = rng.uniform(1, 80, 1000)
    pred = gt * rng.uniform(0.6, 1.6, 1000)
    errors_np = compute_depth_errors(gt, pred)
    errors_t = compute_depth_errors(torch.tensor(gt, dtype=dtype), torch.tensor(pred, dtype=dtype))
    for name in METRIC_NAMES:
        assert isinstance(errors_t[name], torch.Tensor) and errors_t[name].dtype == dtype
        assert float(errors_t[name]) == pytest.approx(errors_np[name], rel=tol, abs=tol)


def test_empty_or_mismatched_inputs_raise():
    with pytest.raises(ValueError, match="no valid pixels"):
        compute_depth_errors(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="same shape"):
        compute_depth_errors(np.ones(3), np.ones(4))


def test_eigen_crop_at_kitti_resolution():
    mask = eigen_crop_mask(375, 1242)
    expected = np.zeros((375, 1242), dtype=bool)
    expected[153:371, 44:1197] = True
    np.testing.assert_array_equal(mask, expected)


def test_valid_mask_numpy_and_torch():
    gt = np.full((375, 1242), 10.0)
    gt[200, 100] = 0.0     # no GT
    gt[201, 100] = 85.0    # beyond MAX_DEPTH
    mask = valid_mask(gt, crop="eigen")
    assert mask.sum() == (371 - 153) * (1197 - 44) - 2
    assert not mask[0, 0] and mask[153, 44] and not mask[371, 44]
    mask_t = valid_mask(torch.from_numpy(gt)[None, None], crop="eigen")  # [B, 1, H, W]
    assert mask_t.shape == (1, 1, 375, 1242)
    np.testing.assert_array_equal(mask_t[0, 0].numpy(), mask)
    assert valid_mask(gt, crop=None).sum() == 375 * 1242 - 2
    with pytest.raises(ValueError, match="unknown crop"):
        valid_mask(gt, crop="garg")


def test_median_scaling_recovers_known_scale():
    rng = np.random.default_rng(1)
    gt = rng.uniform(2, 70, (375, 1242))
    pred = gt / 3.7
    errors, ratio = evaluate_depth_map(gt, pred, crop="eigen", align="median")
    assert ratio == pytest.approx(3.7, rel=1e-12)
    for name in ("abs_rel", "sq_rel", "rmse", "rmse_log"):
        assert errors[name] == pytest.approx(0.0, abs=1e-10)
    assert errors["a1"] == errors["a2"] == errors["a3"] == 1.0
    assert median_scale(torch.tensor(gt.ravel()), torch.tensor(pred.ravel())) == pytest.approx(3.7)


def test_median_scale_is_interpolating_median_for_both_types():
    gt, pred = np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4)
    # median(gt) = (2 + 3) / 2 = 2.5 (torch.median alone would give the lower middle, 2)
    assert median_scale(gt, pred) == 2.5
    assert median_scale(torch.tensor(gt), torch.tensor(pred)) == 2.5


def test_lsqr_recovers_scale_and_shift_in_disparity():
    rng = np.random.default_rng(2)
    gt = rng.uniform(2, 70, 5000)
    s, t = 0.3, 0.005
    pred_disp = (1 / gt - t) / s  # so that s * pred_disp + t = 1 / gt exactly
    assert lsqr_scale_shift(gt, pred_disp) == pytest.approx((s, t), rel=1e-9)
    assert lsqr_scale_shift(torch.tensor(gt), torch.tensor(pred_disp)) == pytest.approx((s, t))
    gt_map, pred_map = gt.reshape(50, 100), 1 / pred_disp.reshape(50, 100)
    errors, ratio = evaluate_depth_map(gt_map, pred_map, crop=None, align="lsqr")
    assert ratio == pytest.approx(s)
    assert errors["abs_rel"] == pytest.approx(0.0, abs=1e-9)
    assert errors["a1"] == 1.0
    # Median scaling cannot undo a shift, so it must do worse here.
    assert evaluate_depth_map(gt_map, pred_map, crop=None, align="median")[0]["abs_rel"] > 1e-3


def test_aligned_depth_clamps_like_nimbled():
    disp = np.array([0.5, 1e-4, 1e4, 0.0, -0.2])
    # 1/0.5 = 2; 1/1e-4 = 1e4 -> 80; 1/1e4 = 1e-4 -> 1e-3; non-positive -> depth 0 -> 1e-3
    expected = [2.0, 80.0, 1e-3, 1e-3, 1e-3]
    np.testing.assert_allclose(metrics.aligned_depth_from_disp(disp, 1.0, 0.0), expected)
    torch_depth = metrics.aligned_depth_from_disp(torch.tensor(disp), 1.0, 0.0)
    np.testing.assert_allclose(torch_depth.numpy(), expected)


def test_split_eval_settings_reproduce_published_masks():
    gt = np.full((375, 1242), 85.0)  # beyond MAX_DEPTH everywhere
    gt[0, 0] = 0.0
    pred = np.full((375, 1242), 85.0)
    with pytest.raises(ValueError, match="no valid pixels"):
        evaluate_depth_map(gt, pred, **metrics.split_eval_settings("eigen"))
    errors, _ = evaluate_depth_map(gt, pred, align="none",
                                   **metrics.split_eval_settings("eigen_benchmark"))
    # gt > 0 keeps 85 m GT; the prediction is still clamped to 80: abs_rel = 5 / 85
    assert errors["abs_rel"] == pytest.approx(5 / 85)


def test_lsqr_degenerate_raises():
    with pytest.raises(ValueError, match="degenerate"):
        lsqr_scale_shift(np.array([1.0, 2.0]), np.array([0.5, 0.5]))


def test_evaluate_hand_built_map_with_crop_scale_and_clamp():
    gt = np.zeros((375, 1242))
    gt[153:371, 44:1197] = 10.0
    pred = np.full((375, 1242), 1000.0)      # outside the crop: ignored
    pred[153:371, 44:1197] = 2.0
    pred[160, 50] = 1e-6                     # scaled to 6e-6, then clamped up to MIN_DEPTH
    errors, ratio = evaluate_depth_map(gt, pred, crop="eigen", align="none", scale=6.0)
    n = (371 - 153) * (1197 - 44)
    # Every valid pred is 2 * 6 = 12 except one, which is 6e-6 and is clamped to 1e-3:
    # abs_rel = ((n - 1) * 2/10 + (10 - 1e-3)/10) / n
    assert ratio == 1.0
    assert errors["abs_rel"] == pytest.approx(((n - 1) * 0.2 + (10 - 1e-3) / 10) / n, rel=1e-12)
    # rmse = sqrt(((n - 1) * 2^2 + (10 - 1e-3)^2) / n)
    assert errors["rmse"] == pytest.approx(math.sqrt(((n - 1) * 4 + (10 - 1e-3) ** 2) / n))
    # thresh = 1.2 for all but the clamped pixel: a1 = (n - 1) / n
    assert errors["a1"] == pytest.approx((n - 1) / n)


def test_evaluate_requires_gt_resolution():
    with pytest.raises(ValueError, match="resized to the GT size"):
        evaluate_depth_map(np.ones((375, 1242)), np.ones((192, 640)))
    with pytest.raises(ValueError, match="unknown align"):
        evaluate_depth_map(np.ones((10, 10)), np.ones((10, 10)), crop=None, align="mean")


def test_evaluate_torch_inputs_match_numpy():
    rng = np.random.default_rng(3)
    gt = rng.uniform(0, 90, (375, 1242))
    pred = rng.uniform(1, 50, (375, 1242))
    for align in ("median", "lsqr", "none"):
        errors_np, ratio_np = evaluate_depth_map(gt, pred, align=align)
        errors_t, ratio_t = evaluate_depth_map(torch.from_numpy(gt), torch.from_numpy(pred),
                                               align=align)
        assert ratio_t == pytest.approx(ratio_np)
        for name in METRIC_NAMES:
            assert float(errors_t[name]) == pytest.approx(errors_np[name], rel=1e-10)


def test_aggregate_averages_per_image():
    big = {name: 1.0 for name in METRIC_NAMES}
    small = {name: torch.tensor(0.5) for name in METRIC_NAMES}
    mean = aggregate([big, small])
    assert mean == {name: 0.75 for name in METRIC_NAMES}
    with pytest.raises(ValueError):
        aggregate([])


def test_format_metrics_table():
    values = dict(zip(METRIC_NAMES, (0.115, 0.903, 4.863, 0.193, 0.877, 0.959, 0.981), strict=True))
    table = format_metrics_table(values)
    header, row = table.splitlines()
    assert header.split(" | ")[0].strip() == "abs_rel" and header.split()[-1] == "a3"
    assert row.startswith("&   0.115  &   0.903  &   4.863") and row.endswith("0.981  \\\\")
    assert "std" in metrics.format_ratio_summary([1.0, 2.0, 3.0])


def test_real_kitti_depth_gt():
    depth_dir = SHARED_DATA / "kitti_depth_gt" / "depth"
    if not depth_dir.is_dir():
        pytest.skip(f"shared KITTI depth GT not found at {depth_dir}")
    from monodepth2_geopt.kitti_layout import read_depth_png

    per_image = []
    for png in sorted(depth_dir.glob("*.png")):
        gt = read_depth_png(png)
        pred = np.where(gt > 0, gt, 20.0) / 1.1  # right shape and scale, holes filled
        errors, ratio = evaluate_depth_map(gt, pred, crop="eigen", align="median")
        assert ratio == pytest.approx(1.1, rel=1e-5)
        assert errors["abs_rel"] < 1e-6 and errors["a1"] == 1.0
        per_image.append(errors)
    assert len(per_image) == 3
    assert aggregate(per_image)["rmse"] < 1e-4


# ---------------------------------------------------------------------------------------------- flow: EPE, Fl-all
def test_epe_and_fl_all_hand_values():
    gt = torch.zeros(1, 2, 1, 4)
    gt[0, 0] = torch.tensor([10.0, 100.0, 0.0, 2.0])
    pred = gt.clone()
    pred[0, 0, 0, 0] += 4.0   # EPE 4 > 3 and > 0.5 (5 % of 10): outlier
    pred[0, 1, 0, 1] += 4.0   # EPE 4 > 3 but < 5 (5 % of 100): not an outlier
    pred[0, 0, 0, 2] += 3.0   # EPE 3, not > 3: not an outlier
    pred[0, 1, 0, 3] += 30.0  # EPE 30: outlier, but invalid below
    valid = torch.tensor([[[True, True, True, False]]])
    assert float(end_point_error(pred, gt)) == pytest.approx((4 + 4 + 3 + 30) / 4)
    assert float(end_point_error(pred, gt, valid)) == pytest.approx((4 + 4 + 3) / 3)
    assert float(fl_all(pred, gt)) == pytest.approx(2 / 4)
    assert float(fl_all(pred, gt, valid)) == pytest.approx(1 / 3)
    # diagonal error: EPE is the Euclidean norm
    assert float(end_point_error(torch.tensor([[[3.0]], [[4.0]]]), torch.zeros(2, 1, 1))) == pytest.approx(5.0)


def test_epe_of_a_constant_offset_and_fl_all_relative_edge():
    # Every pixel off by (3, 4): EPE = 5 px everywhere, with or without a mask.
    gt = torch.zeros(2, 2, 3, 5)
    gt[:, 0] = torch.linspace(0, 400, 15).view(3, 5)  # |gt| from 0 to 400 px
    pred = gt + torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
    assert float(end_point_error(pred, gt)) == pytest.approx(5.0)
    some = torch.rand(2, 3, 5, generator=torch.Generator().manual_seed(0)) > 0.5
    assert float(end_point_error(pred, gt, some)) == pytest.approx(5.0)
    # 5 px > 3 px, so a pixel is an outlier iff 5 > 0.05 |gt|, i.e. |gt| < 100: 400 * k / 14 < 100 for k = 0..3.
    assert float(fl_all(pred, gt)) == pytest.approx(4 / 15)
    # Both thresholds are strict: an EPE of exactly 4 at |gt| = 80 (5 % of it) is not an outlier; just above is.
    gt80 = torch.tensor([[[80.0]], [[0.0]]])
    assert float(fl_all(gt80 + torch.tensor([[[4.0]], [[0.0]]]), gt80)) == 0.0
    assert float(fl_all(gt80 + torch.tensor([[[4.01]], [[0.0]]]), gt80)) == 1.0
    # ... and an EPE of exactly 3 at |gt| = 0 is not one either.
    assert float(fl_all(torch.tensor([[[3.0]], [[0.0]]]), torch.zeros(2, 1, 1))) == 0.0


# ---------------------------------------------------------------------------------------------- pose: ATE
def random_trajectory(n=5, seed=0):
    xyz = np.cumsum(np.random.default_rng(seed).normal(size=(n, 3)), 0)
    return xyz - xyz[0]  # snippets start at the origin, as chain_positions builds them


def test_ate_of_ground_truth_against_itself_is_zero():
    gt = random_trajectory()
    assert compute_ate(gt, gt) == 0.0


def test_ate_recovers_the_scale():
    gt = random_trajectory()
    assert compute_ate(gt, 0.37 * gt) == pytest.approx(0.0, abs=1e-12)
    assert compute_ate(gt, 12.0 * gt + 3.0) == pytest.approx(0.0, abs=1e-12)  # first positions are aligned


def test_ate_of_a_perturbed_trajectory_matches_a_hand_computation():
    gt = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=float)
    pred = np.array([[0, 0, 0], [1, 1, 0], [2, 0, 0]], dtype=float)
    # scale = <gt, pred> / |pred|^2 = 5 / 6; residuals (0,0,0), (-1/6, 5/6, 0), (-1/3, 0, 0)
    # sum of squares = (1 + 25 + 4) / 36 = 5 / 6; ATE = sqrt(5 / 6) / 3
    assert compute_ate(gt, pred) == pytest.approx(np.sqrt(5 / 6) / 3, rel=1e-12)
    assert compute_ate(gt, pred + 4.0) == pytest.approx(np.sqrt(5 / 6) / 3, rel=1e-12)


def _pose(yaw, t):
    c, s = np.cos(yaw), np.sin(yaw)
    T = np.eye(4)
    T[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    T[:3, 3] = t
    return T


def test_snippets_of_scaled_pair_poses_have_zero_ate():
    rng = np.random.default_rng(1)
    gt = np.stack([_pose(rng.normal(0, 0.05), rng.normal(size=3)) for _ in range(7)])
    assert np.allclose(snippet_ates(gt, gt), 0.0)
    scaled = gt.copy()
    scaled[:, :3, 3] *= 0.1  # a monocular network's translations are up to scale
    ates = snippet_ates(scaled, gt)
    assert len(ates) == 7 and np.allclose(ates, 0.0, atol=1e-12)
    noisy = scaled.copy()
    noisy[:, :3, 3] += rng.normal(0, 0.05, size=(7, 3))
    assert np.all(snippet_ates(noisy, gt)[:-1] > 0)


def test_chain_positions_compose_rotations_before_translations():
    quarter_turn = _pose(np.pi / 2, [0, 0, 0])  # yaw: camera x -> world -z
    step_x = _pose(0.0, [1, 0, 0])
    assert np.allclose(chain_positions([step_x, step_x]), [[0, 0, 0], [1, 0, 0], [2, 0, 0]])
    # T1 @ T2: the second step is taken in the rotated frame, x -> R x = (0, 0, -1).
    assert np.allclose(chain_positions([quarter_turn, step_x]), [[0, 0, 0], [0, 0, 0], [0, 0, -1]])


def test_snippet_ates_count_and_length_mismatch():
    poses = np.stack([_pose(0.0, [0, 0, 1])] * 6)
    assert len(snippet_ates(poses, poses)) == 6  # one snippet per pair; the last ones are shorter
    assert len(snippet_ates(poses, poses, track_length=3)) == 6
    with pytest.raises(ValueError, match="5 predicted poses but 6"):
        snippet_ates(poses[:5], poses)
