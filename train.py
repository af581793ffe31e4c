"""Self-supervised monocular depth training (Monodepth2 M / S / MS), optionally from GeoPt weights.

    python train.py --model_name mono_model                        # M, KITTI eigen_zhou
    python train.py --model_name stereo_model --use_stereo --frame_ids 0 --split eigen_full
    python train.py --model_name mono_geopt --geopt_weights runs/flow/models/weights_19
    torchrun --nproc_per_node 4 train.py --model_name mono_model  # multi-GPU (DDP)
"""
from monodepth2_geopt.errors import run_cli
from monodepth2_geopt.options import MonodepthOptions


def main():
    from monodepth2_geopt.trainer import Trainer

    opts = MonodepthOptions().parse()
    Trainer(opts).train()


if __name__ == "__main__":
    run_cli(main)
