"""Self-supervised monocular depth training (Monodepth2 M / S / MS), optionally from GeoPt weights.

    python train.py --model_name mono_model                        # M, KITTI eigen_zhou
    python train.py --model_name stereo_model --use_stereo --frame_ids 0 --split eigen_full
    python train.py --model_name mono_geopt --geopt_weights runs/flow/models/weights_19
    torchrun --nproc_per_node 4 train.py --model_name mono_model  # multi-GPU (DDP)
    python train.py --model_name mono_model --resume last          # continue an interrupted run exactly
"""
from monodepth2_geopt.errors import run_cli
from monodepth2_geopt.options import MonodepthOptions


def main():
    from monodepth2_geopt.depth_task import depth_trainer

    opts = MonodepthOptions().parse()
    depth_trainer(opts).train()


if __name__ == "__main__":
    run_cli(main)
