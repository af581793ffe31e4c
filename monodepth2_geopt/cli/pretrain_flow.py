"""Geometric Pretraining: self-supervised flow on uncalibrated frame triplets (structure + motion encoders).

    m2g-pretrain --data_path frames/ --model_name geopt --height 192 --width 640   # extract_frames.py lists
    m2g-pretrain --data_path kitti_data --flow_data cityscapes/leftImg8bit_sequence/train:1 frames/:2 \\
        --flow_val_split frames/val_files.txt --model_name kcd        # KITTI Eigen test drives are left out
    m2g-pretrain ... --flow_eval_path synthetic/            # also log EPE against KITTI flow PNGs
    torchrun --nproc_per_node 4 pretrain_flow.py --data_path frames/ --model_name geopt   # multi-GPU (DDP)
Then: m2g-train --geopt_weights <log_dir>/geopt/models/weights_19 [--geopt_pose] ...
(``python pretrain_flow.py`` is the same program.)
"""
from __future__ import annotations

from collections.abc import Sequence

from monodepth2_geopt.errors import run_cli
from monodepth2_geopt.options import MonodepthOptions


def main(argv: Sequence[str] | None = None) -> None:
    opts = MonodepthOptions(__doc__.splitlines()[0], task="flow", script="pretrain_flow").parse(argv)
    # imported after parsing: --help needs no torch
    from monodepth2_geopt.flow_task import flow_trainer
    from monodepth2_geopt.utils import cpu_threads_for_cli

    cpu_threads_for_cli(opts)
    flow_trainer(opts).train()


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
