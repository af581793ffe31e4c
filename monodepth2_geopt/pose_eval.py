"""KITTI odometry pose evaluation (Monodepth2's ``evaluate_pose.py`` protocol) as an importable function.

Protocol (Zhou et al. 2017, SfMLearner; kept by Monodepth2): the pose network predicts one relative pose
per consecutive frame pair of the test list; for every pair i the 5-frame snippet made of pairs i..i+3 is
chained into positions, and compared with the ground truth chained the same way by the absolute trajectory
error after aligning the first positions and fitting one least-squares scale per snippet. Reported: mean and
std of the per-snippet ATE (metres, RMSE divided by the snippet length: ``metrics.snippet_ates``).
Only separate_resnet pose models fed frame pairs (``pose_encoder.pth`` + ``pose.pth``) are supported.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from monodepth2_geopt.errors import InputError
from monodepth2_geopt.geometry import transformation_from_parameters
from monodepth2_geopt.intrinsics import focal_relative_pose, load_head
from monodepth2_geopt.metrics import TRACK_LENGTH, snippet_ates
from monodepth2_geopt.model_loading import load_pose_model
from monodepth2_geopt.splits import REPO_ROOT, read_split_file, resolve_split_dir

EVAL_BATCH_SIZE = 16

Log = Callable[[str], None]


# ------------------------------------------------------------------------------------------------------
# Ground truth (NumPy, float64; the ATE itself is metrics.snippet_ates)


def load_kitti_poses(path: str | Path) -> np.ndarray:
    """KITTI odometry poses file (one 3x4 camera-to-world matrix per line) as [N, 4, 4]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth poses {path} not found (KITTI odometry 'data_odometry_poses' "
                                "download, placed as <data_path>/poses/<sequence>.txt)")
    rows = np.loadtxt(path, dtype=np.float64).reshape(-1, 3, 4)
    bottom = np.broadcast_to(np.array([0, 0, 0, 1.0]), (len(rows), 1, 4))
    return np.concatenate([rows, bottom], 1)


def gt_pair_poses(global_poses: np.ndarray, frame_indices) -> np.ndarray:
    """Ground-truth relative pose of each pair (i, i+1) in the pose network's convention.

    With G_i camera-to-world, the pair pose is inv(inv(G_i) @ G_{i+1}) = inv(G_{i+1}) @ G_i, which maps
    points from frame i's camera into frame i+1's (what the network predicts for inputs [i, i+1]).
    """
    out = []
    for i in frame_indices:
        if i + 1 >= len(global_poses):
            raise InputError(f"frame {i + 1} is beyond the {len(global_poses)} ground-truth poses")
        out.append(np.linalg.inv(np.linalg.inv(global_poses[i]) @ global_poses[i + 1]))
    return np.stack(out)


# ------------------------------------------------------------------------------------------------------
# Prediction and data


@torch.no_grad()
def predict_pair_poses(encoder, decoder, loader: DataLoader, device: torch.device, head=None,
                       square_pixels: bool = False) -> np.ndarray:
    """[N, 4, 4] pose of each (frame 0, frame 1) pair: the transform from frame 0's camera to frame 1's.
    ``head``: the intrinsics head of a ``--focal_relative_pose`` model, whose pair intrinsics scale the outputs
    as in training (``square_pixels``: the items carry "source_aspect")."""
    out = []
    for batch in loader:
        pair = torch.cat([batch[("color", 0)], batch[("color", 1)]], 1).to(device).float().div_(255.0)
        features = encoder(pair)
        axisangle, translation = decoder([features])
        if head is not None:
            aspect = batch["source_aspect"].to(device) if square_pixels else None
            k = head(features[-1], aspect)
            axisangle, translation = focal_relative_pose(axisangle, translation, k, head.initial, square_pixels)
        T = transformation_from_parameters(axisangle[:, 0].float(), translation[:, 0].float())
        out.append(T.cpu().double().numpy())
    return np.concatenate(out, 0)


def resolve_pose_test_file(eval_split: str, repo_root: str | Path = REPO_ROOT) -> Path:
    """``odom_9``/``odom_10`` -> ``splits/odom/test_files_0N.txt``; a test-list file or a split folder too."""
    if eval_split in ("odom_9", "odom_10"):
        sequence = int(eval_split.split("_")[1])
        return resolve_split_dir("odom", repo_root) / f"test_files_{sequence:02d}.txt"
    path = Path(eval_split).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        return path / "test_files.txt"
    raise InputError(f"--eval_split {eval_split!r}: pose evaluation takes odom_9, odom_10, a test list file "
                     "(lines '9 0 l') or a folder holding test_files.txt")


def _check_consecutive(entries, test_file: Path) -> int:
    sequences = {folder for folder, _, _ in entries}
    if len(sequences) != 1:
        raise InputError(f"{test_file} mixes sequences {sorted(sequences)}; evaluate one sequence at a time")
    indices = [i for _, i, _ in entries]
    if any(b != a + 1 for a, b in pairwise(indices)):
        raise InputError(f"{test_file} must list consecutive frames of one sequence (snippets chain them)")
    try:
        return int(next(iter(sequences)))
    except ValueError:
        raise InputError(f"{test_file}: odometry lines start with a sequence number, e.g. '9 0 l'") from None


def evaluate_pose(opt, log: Log = print) -> dict:
    """Monodepth2's odometry evaluation; returns {"ate_mean", "ate_std", "num_snippets", "poses_path", ...}."""
    from monodepth2_geopt.datasets import KITTIOdomDataset
    from monodepth2_geopt.utils import pick_device

    if not opt.load_weights_folder:
        raise InputError("pass --load_weights_folder <log_dir>/<model_name>/models/weights_<epoch>")
    weights_folder = Path(os.path.expanduser(opt.load_weights_folder))
    test_file = resolve_pose_test_file(opt.eval_split)
    entries = read_split_file(test_file)
    if not entries:
        raise InputError(f"{test_file} has no lines")
    sequence = _check_consecutive(entries, test_file)
    data_path = Path(os.path.expanduser(opt.data_path))
    gt_global = load_kitti_poses(data_path / "poses" / f"{sequence:02d}.txt")
    gt_pairs = gt_pair_poses(gt_global, [i for _, i, _ in entries])

    device = pick_device(opt.no_cuda)
    encoder, decoder, meta = load_pose_model(weights_folder, device)
    height, width = meta.get("height"), meta.get("width")
    if height is None or width is None:
        height, width = opt.height, opt.width
        log(f"   note: no input size in the checkpoints; using --height {height} --width {width}")
    lines = [line for line in (f"{f} {i} {s}" if s else f"{f} {i}" for f, i, s in entries)]
    dataset = KITTIOdomDataset(str(data_path), lines, height, width, [0, 1], 4, is_train=False,
                               img_ext=".png" if opt.png else ".jpg")
    loader = DataLoader(dataset, EVAL_BATCH_SIZE, shuffle=False, num_workers=opt.num_workers,
                        pin_memory=device.type == "cuda", drop_last=False)
    head, square = None, bool(meta.get("square_pixels", False))
    if (weights_folder / "intrinsics.pth").is_file() and not (weights_folder / "encoder.pth").is_file():
        log(f"   warning: {weights_folder} has intrinsics.pth but no encoder.pth, which records "
            "--focal_relative_pose: its poses are read as without it")
    if meta.get("focal_relative_pose"):  # the outputs are in units of the learned focal length
        head = load_head(weights_folder, device)  # the pose encoder and the meta are loaded already
        dataset.return_source_aspect = square
        log("   note: trained with --focal_relative_pose: the poses are read with each pair's learned intrinsics")
    log(f"-> Predicting {len(dataset)} pair poses of sequence {sequence:02d} at {width}x{height} on {device}")
    pred_pairs = predict_pair_poses(encoder, decoder, loader, device, head, square)

    ates = snippet_ates(pred_pairs, gt_pairs)
    out_dir = Path(os.path.expanduser(opt.eval_out_dir)) if opt.eval_out_dir else weights_folder
    out_dir.mkdir(parents=True, exist_ok=True)
    poses_path = out_dir / "poses.npy"
    np.save(poses_path, pred_pairs)
    result = {"ate_mean": float(np.mean(ates)), "ate_std": float(np.std(ates)), "num_snippets": len(ates),
              "sequence": sequence, "track_length": TRACK_LENGTH, "poses_path": str(poses_path)}
    log(f"\n   Trajectory error: {result['ate_mean']:0.3f} ± {result['ate_std']:0.3f} "
        f"(mean ± std over {len(ates)} {TRACK_LENGTH}-frame snippets)\n")
    log(f"-> Predictions saved to {poses_path}")
    return result


__all__ = ["load_kitti_poses", "gt_pair_poses", "predict_pair_poses", "resolve_pose_test_file", "evaluate_pose"]
