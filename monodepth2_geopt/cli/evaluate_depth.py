"""Evaluate a depth model (or precomputed disparities) on KITTI, as Monodepth2's evaluate_depth.py.

    m2g-evaluate --load_weights_folder ~/tmp/mono_model/models/weights_19 --eval_mono   # = python evaluate_depth.py
    m2g-evaluate --load_weights_folder ~/tmp/stereo_model/models/weights_19 --eval_stereo
    m2g-evaluate --load_weights_folder <w> --eval_mono --eval_split eigen_benchmark --align lsqr
    m2g-evaluate --ext_disp_to_eval disps.npy --eval_mono --eval_out_dir results/

Ground truth comes from `m2g-export-gt-depth --data_path kitti_data --split eigen`.
"""
from __future__ import annotations

from collections.abc import Sequence

from monodepth2_geopt.errors import run_cli
from monodepth2_geopt.options import MonodepthOptions


def main(argv: Sequence[str] | None = None) -> None:
    opt = MonodepthOptions(__doc__.splitlines()[0], script="evaluate_depth").parse(argv)
    # imported after parsing: --help needs no torch
    from monodepth2_geopt.evaluation import evaluate
    from monodepth2_geopt.utils import cpu_threads_for_cli

    cpu_threads_for_cli(opt)
    evaluate(opt)


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
