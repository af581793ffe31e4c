"""Self-supervised monocular depth training (Monodepth2 M / S / MS), optionally from GeoPt weights.

    m2g-train --model_name mono_model                        # or: python train.py ...; M, KITTI eigen_zhou
    m2g-train --model_name stereo_model --use_stereo --frame_ids 0 --split eigen_full
    m2g-train --model_name mono_geopt --geopt_weights runs/flow/models/weights_19
    torchrun --nproc_per_node 4 train.py --model_name mono_model  # multi-GPU (DDP)
    m2g-train --model_name mono_model --resume last          # continue an interrupted run exactly
"""
from __future__ import annotations

from collections.abc import Sequence

from monodepth2_geopt.errors import run_cli
from monodepth2_geopt.options import MonodepthOptions


def main(argv: Sequence[str] | None = None) -> None:
    opts = MonodepthOptions(__doc__.splitlines()[0], script="train").parse(argv)
    # imported after parsing: --help needs no torch
    from monodepth2_geopt.depth_task import depth_trainer
    from monodepth2_geopt.utils import cpu_threads_for_cli

    cpu_threads_for_cli(opts)
    depth_trainer(opts).train()


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
