"""Evaluate a pose network on KITTI odometry sequence 09 or 10 (5-frame snippet ATE, as Monodepth2).

    m2g-evaluate-pose --eval_split odom_9 --load_weights_folder ~/tmp/odom_model/models/weights_19 \\
        --data_path kitti_odom                                  # = python evaluate_pose.py ...
Needs <data_path>/sequences/09/image_2/*.jpg (or --png) and <data_path>/poses/09.txt.
"""
from __future__ import annotations

from collections.abc import Sequence

from monodepth2_geopt.errors import run_cli
from monodepth2_geopt.options import MonodepthOptions


def main(argv: Sequence[str] | None = None) -> None:
    opt = MonodepthOptions(__doc__.splitlines()[0], script="evaluate_pose").parse(argv)
    # imported after parsing: --help needs no torch
    from monodepth2_geopt.pose_eval import evaluate_pose
    from monodepth2_geopt.utils import cpu_threads_for_cli

    cpu_threads_for_cli(opt)
    evaluate_pose(opt)


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
