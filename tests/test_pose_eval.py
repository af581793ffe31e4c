"""Odometry pose evaluation (monodepth2_geopt.pose_eval / evaluate_pose.py); the ATE itself: test_metrics."""
import os
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from monodepth2_geopt.checkpoint import save_weights_folder
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.options import MonodepthOptions
from monodepth2_geopt.metrics import chain_positions, snippet_ates
from monodepth2_geopt.pose_eval import evaluate_pose, gt_pair_poses, load_kitti_poses
from monodepth2_geopt.networks import PoseDecoder, ResnetEncoder
from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
ODOM = SHARED_DATA / "kitti_odom_06"
needs_odom = pytest.mark.skipif(not (ODOM / "poses" / "06.txt").is_file(),
                                reason=f"shared KITTI odometry sample not found at {ODOM}")


def test_gt_pair_poses_map_frame_i_into_frame_i_plus_1():
    forward = np.eye(4)
    forward[2, 3] = 1.0  # camera 1 is 1 m ahead of camera 0
    pair = gt_pair_poses(np.stack([np.eye(4), forward]), [0])[0]
    assert np.allclose(pair @ np.array([0, 0, 5.0, 1]), [0, 0, 4.0, 1])  # a point 5 m ahead is 4 m from cam 1
    assert np.allclose(chain_positions([pair, pair]), [[0, 0, 0], [0, 0, -1], [0, 0, -2]])


def make_pose_weights(folder, height=64, width=192):
    torch.manual_seed(0)
    depth_encoder = ResnetEncoder(18, False)
    pose_encoder = ResnetEncoder(18, False, 2)
    pose = PoseDecoder(pose_encoder.num_ch_enc, 1, 2)
    meta = {"height": height, "width": width, "use_stereo": False}
    return save_weights_folder(folder, {"encoder": depth_encoder, "pose_encoder": pose_encoder, "pose": pose},
                               encoder_meta=meta)


@pytest.fixture
def odom_layout(tmp_path):
    """KITTI odometry layout for frames 12-14 of sequence 06 and a test list of their two pairs."""
    image_dir = tmp_path / "odom" / "sequences" / "06" / "image_2"
    image_dir.mkdir(parents=True)
    for png in sorted((ODOM / "image_2").glob("*.png")):
        os.symlink(png, image_dir / png.name)
    (tmp_path / "odom" / "poses").mkdir()
    os.symlink(ODOM / "poses" / "06.txt", tmp_path / "odom" / "poses" / "06.txt")
    test_list = tmp_path / "test_files_06.txt"
    test_list.write_text("6 12 l\n6 13 l\n")
    return tmp_path / "odom", test_list


@needs_odom
def test_real_ground_truth_against_itself(odom_layout):
    data_path, _ = odom_layout
    poses = load_kitti_poses(data_path / "poses" / "06.txt")
    assert poses.shape[1:] == (4, 4) and np.allclose(poses[:, 3], [0, 0, 0, 1])
    pairs = gt_pair_poses(poses, range(40))
    assert np.allclose(snippet_ates(pairs, pairs), 0.0)


@needs_odom
def test_evaluate_pose_end_to_end(odom_layout, tmp_path, capsys):
    data_path, test_list = odom_layout
    weights = make_pose_weights(tmp_path / "weights_0")
    opt = MonodepthOptions().parse(["--eval_split", str(test_list), "--load_weights_folder", str(weights),
                                    "--data_path", str(data_path), "--png", "--num_workers", "0", "--no_cuda",
                                    "--eval_out_dir", str(tmp_path / "out")])
    result = evaluate_pose(opt)
    assert result["num_snippets"] == 2 and np.isfinite(result["ate_mean"]) and np.isfinite(result["ate_std"])
    poses = np.load(tmp_path / "out" / "poses.npy")
    assert poses.shape == (2, 4, 4)

    capsys.readouterr()
    argv = sys.argv
    sys.argv = ["evaluate_pose.py", "--eval_split", str(test_list), "--load_weights_folder", str(weights),
                "--data_path", str(data_path), "--png", "--num_workers", "0", "--no_cuda"]
    try:  # the script exactly as `python evaluate_pose.py ...` runs it, in this process
        runpy.run_path(str(REPO / "evaluate_pose.py"), run_name="__main__")
    finally:
        sys.argv = argv
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "Trajectory error" in ln)
    assert np.isfinite(float(line.split(":")[1].split()[0]))
    assert (weights / "poses.npy").is_file()


@needs_odom
def test_focal_relative_pose_models_are_read_with_their_learned_intrinsics(odom_layout, tmp_path):
    """A --focal_relative_pose model's pose is in units of its learned focal length: with a head that predicts half
    the initial fx and a quarter of fy, evaluate_pose reads tx and the yaw (about y) twice as large as the plain
    reading, ty and the pitch (about x) four times, tz and the roll alike."""
    from monodepth2_geopt.networks import IntrinsicsHead
    from monodepth2_geopt.networks.intrinsics_head import EPS, GAIN, softplus_inverse
    data_path, test_list = odom_layout
    plain = make_pose_weights(tmp_path / "plain")
    head = IntrinsicsHead(512, (0.58, 1.92, 0.5, 0.5))
    with torch.no_grad():  # predict (0.29, 0.48): half the initial fx, a quarter of fy
        head.bias[:2] = torch.tensor([softplus_inverse(0.29 - EPS), softplus_inverse(0.48 - EPS)]) - head.raw_init[:2]
        head.bias[:2] /= GAIN
    torch.manual_seed(0)
    nets = {"encoder": ResnetEncoder(18, False), "pose_encoder": ResnetEncoder(18, False, 2)}
    nets["pose"] = PoseDecoder(nets["pose_encoder"].num_ch_enc, 1, 2)
    relative = save_weights_folder(tmp_path / "relative", {**nets, "intrinsics": head}, encoder_meta={
        "height": 64, "width": 192, "use_stereo": False, "focal_relative_pose": True})
    poses = {}
    for name, weights in (("plain", plain), ("relative", relative)):
        opt = MonodepthOptions().parse(["--eval_split", str(test_list), "--load_weights_folder", str(weights),
                                        "--data_path", str(data_path), "--png", "--num_workers", "0", "--no_cuda",
                                        "--eval_out_dir", str(tmp_path / name)])
        evaluate_pose(opt, log=lambda *a: None)
        poses[name] = np.load(tmp_path / name / "poses.npy")
    t_plain, t_rel = poses["plain"][:, :3, 3], poses["relative"][:, :3, 3]
    assert np.abs(t_plain).min() > 1e-6
    assert np.allclose(t_rel, t_plain * [2, 4, 1], rtol=1e-4)

    def small_angles(R):  # axis-angle of a small rotation: the antisymmetric part of R
        return np.stack([R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]], 1) / 2
    w_plain, w_rel = small_angles(poses["plain"]), small_angles(poses["relative"])
    assert np.abs(w_plain).max() < 0.05 and np.abs(w_plain).min() > 1e-7
    assert np.allclose(w_rel, w_plain * [4, 2, 1], rtol=2e-3, atol=1e-9)  # pitch x4 (fy), yaw x2 (fx), roll x1


def test_missing_pose_weights_is_a_clear_error(tmp_path):
    weights = make_pose_weights(tmp_path / "w")
    (weights / "pose.pth").unlink()
    test_list = tmp_path / "t.txt"
    test_list.write_text("6 12 l\n")
    (tmp_path / "poses").mkdir()
    np.savetxt(tmp_path / "poses" / "06.txt", np.tile(np.eye(4)[:3].reshape(1, 12), (20, 1)))
    opt = MonodepthOptions().parse(["--eval_split", str(test_list), "--load_weights_folder", str(weights),
                                    "--data_path", str(tmp_path), "--no_cuda"])
    with pytest.raises(InputError, match="pose.pth"):
        evaluate_pose(opt)


def test_non_consecutive_test_list_is_rejected(tmp_path):
    test_list = tmp_path / "t.txt"
    test_list.write_text("9 0 l\n9 2 l\n")
    opt = MonodepthOptions().parse(["--eval_split", str(test_list), "--load_weights_folder", str(tmp_path)])
    with pytest.raises(InputError, match="consecutive"):
        evaluate_pose(opt)
