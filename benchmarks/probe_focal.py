"""How much does the photometric loss say about the focal length (issue 14, part 1)? A probe with no network.

    python benchmarks/probe_focal.py --world_root /tmp/probe_worlds

Monodepth2's training loss (per-pixel minimum reprojection of SSIM + L1, auto-masking on and off, scale 0) on the
training triplets of three synthetic worlds, warped with each world's *exact* depth and camera motion while the
focal lengths are multiplied by a gain g (fx and fy together, then each alone; principal point fixed).

Read it as an upper bound on what the loss can tell: the motions stay exact here, while in training the pose
network can rescale its rotation and lateral translation to undo most of a wrong focal length (their image motion
is, to first order, the focal length times them). Forward motion's image motion does not depend on the focal
length at all, so a camera that drives straight leaves it almost unobservable however good the networks are.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import common
import numpy as np
import torch

from monodepth2_geopt import geometry, intrinsics
from monodepth2_geopt.kitti_layout import parse_split_line, pil_loader, to_uint8_tensor
from monodepth2_geopt.losses import MinReprojectionConfig, min_reprojection_loss
from monodepth2_geopt.pose_eval import load_kitti_poses
from monodepth2_geopt.splits import readlines
from monodepth2_geopt.tools.experiments import prepare_synthetic

SECTION = "Learned intrinsics: the photometric loss along the focal length, exact depth and motion (issue 14)"
GAINS = [0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3]


def load_drive(drive: Path, frames: list[int]):
    """Colours [3, H, W] in [0, 1] and exact depth [H, W] of the left camera's ``frames``; camera-to-world poses."""
    colors = {f: to_uint8_tensor(pil_loader(drive / "image_02" / "data" / f"{f:010d}.png")).float() / 255.0
              for f in frames}
    depth = {f: torch.from_numpy(np.load(drive / "depth" / "image_02" / f"{f:010d}.npy")) for f in frames}
    return colors, depth, load_kitti_poses(drive / "poses.txt")


def batches(data: Path, split: Path):
    """Triplets (t-1, t, t+1) of the training split's left-camera lines: colours [B, 3, H, W] each, depth
    [B, 1, H, W] and the target -> source transforms for -1 and +1."""
    by_drive: dict[str, list[int]] = {}
    for folder, frame, side in (parse_split_line(ln) for ln in readlines(split / "train_files.txt")):
        if side == "l":
            by_drive.setdefault(folder, []).append(frame)
    out = []
    for folder, frames in sorted(by_drive.items()):
        colors, depth, poses = load_drive(data / folder, sorted({f + d for f in frames for d in (-1, 0, 1)}))
        for f in frames:
            T = {d: torch.from_numpy(np.linalg.inv(poses[f + d]) @ poses[f]).float() for d in (-1, 1)}
            out.append((colors[f - 1], colors[f], colors[f + 1], depth[f][None], T[-1], T[1]))
    return [torch.stack(c) for c in zip(*out)]


def loss_at(gx: float, gy: float, batch, k_norm, automask: bool = True) -> float:
    """The training loss with the exact depth and motions, at focal gains (gx, gy)."""
    prev, tgt, nxt, depth, t_prev, t_next = batch
    b, _, h, w = tgt.shape
    fx, fy, cx, cy = k_norm
    K, inv_K = intrinsics.matrices(torch.tensor([[fx * gx, fy * gy, cx, cy]]).repeat(b, 1), h, w)
    d = torch.where(depth > 0, depth, torch.full_like(depth, 1e4))  # sky: far away
    with torch.no_grad():
        warped = [geometry.sample(src, geometry.rigid_pixels(d, K, inv_K, T)) for src, T in
                  ((prev, t_prev), (nxt, t_next))]
        torch.manual_seed(0)  # the same tie-break noise for every gain
        loss, _, _ = min_reprojection_loss(warped, [prev, nxt], tgt, MinReprojectionConfig(automask=automask))
    return float(loss)


WORLDS = {"default": (0.0, False), "square_pixels": (0.0, True), "camera_shake_3": (3.0, False)}
FOCALS = {"fx and fy": lambda g: (g, g), "fx only": lambda g: (g, 1.0), "fy only": lambda g: (1.0, g)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worlds", nargs="+", choices=list(WORLDS), default=list(WORLDS),
                   help="synthetic worlds (generate_synthetic.py at 160x64, 5 drives of 30 frames, seed 0): as made, "
                        "with --square_pixels, with --camera_shake 3")
    p.add_argument("--world_root", default=None, help="folder for the worlds (default: a temporary one)")
    p.add_argument("--no_report", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    root = Path(args.world_root or tempfile.mkdtemp(prefix="probe_worlds_"))
    lines = ["| world | focal lengths x g | auto-mask | " + " | ".join(f"{g:g}" for g in GAINS) + " | argmin |",
             "|" + "---|" * (len(GAINS) + 4)]
    n_triplets = 0
    for world in args.worlds:
        shake, square = WORLDS[world]
        data, split = prepare_synthetic(root / world, 160, 64, drives=5, frames=30, seed=0, camera_shake=shake,
                                        square_pixels=square)
        k_norm = (0.58, 0.58 * 160 / 64 if square else 1.92, 0.5, 0.5)
        batch = batches(Path(data), Path(split))
        n_triplets = batch[0].shape[0]
        for name, gxy in FOCALS.items():
            for automask in (True, False):
                vals = [loss_at(*gxy(g), batch, k_norm, automask) for g in GAINS]
                rel = [100.0 * (v / vals[GAINS.index(1.0)] - 1) for v in vals]
                best = GAINS[int(np.argmin(vals))]
                print(world, name, "automask" if automask else "no automask", f"L(1) {vals[GAINS.index(1.0)]:.6f}",
                      "change %:", [round(r, 3) for r in rel], "argmin", best, flush=True)
                lines.append(f"| {world} | {name} | {'on' if automask else 'off'} | "
                             + " | ".join(f"{r:+.2f}" for r in rel) + f" | {best:g} |")
    if args.no_report:
        return
    body = (f"Monodepth2's training loss (per-pixel minimum reprojection of SSIM + L1, scale 0) on each world's "
            f"{n_triplets} training triplets (generate_synthetic.py at 160x64, 5 drives of 30 frames, seed 0: as "
            "made, --square_pixels, --camera_shake 3), warped with the world's exact depth and camera motion while "
            "the focal lengths are multiplied by g (principal point fixed). Change of the loss against g = 1, in %. "
            "An upper bound on what the loss tells about the focal length: in training the pose network can rescale "
            "its rotation and lateral translation to undo most of a wrong one.\n\n" + "\n".join(lines))
    common.write_section(SECTION, body, common.command_line())


if __name__ == "__main__":
    main()
