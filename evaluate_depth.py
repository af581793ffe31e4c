"""Evaluate a depth model (or precomputed disparities) on KITTI, as Monodepth2's evaluate_depth.py.

    python evaluate_depth.py --load_weights_folder ~/tmp/mono_model/models/weights_19 --eval_mono
    python evaluate_depth.py --load_weights_folder ~/tmp/stereo_model/models/weights_19 --eval_stereo
    python evaluate_depth.py --load_weights_folder <w> --eval_mono --eval_split eigen_benchmark --align lsqr
    python evaluate_depth.py --ext_disp_to_eval disps.npy --eval_mono --eval_out_dir results/

Ground truth comes from `python export_gt_depth.py --data_path kitti_data --split eigen`.
"""
from monodepth2_geopt.errors import run_cli
from monodepth2_geopt.options import MonodepthOptions


def main():
    from monodepth2_geopt.evaluation import evaluate

    opt = MonodepthOptions("Monodepth2-GeoPt depth evaluation").parse()
    evaluate(opt)


if __name__ == "__main__":
    run_cli(main)
