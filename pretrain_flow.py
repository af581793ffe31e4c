"""Geometric Pretraining: self-supervised flow on uncalibrated frame triplets (structure + motion encoders).

    python pretrain_flow.py --data_path frames/ --model_name geopt --height 192 --width 640   # extract_frames.py lists
    python pretrain_flow.py --data_path kitti_data --flow_data cityscapes/leftImg8bit_sequence/train:1 frames/:2 \
        --flow_val_split frames/val_files.txt --model_name kcd        # KITTI Eigen test drives are left out
    python pretrain_flow.py ... --flow_eval_path synthetic/            # also log EPE against KITTI flow PNGs
    torchrun --nproc_per_node 4 pretrain_flow.py --data_path frames/ --model_name geopt   # multi-GPU (DDP)
Then: python train.py --geopt_weights <log_dir>/geopt/models/weights_19 [--geopt_pose] ...
"""
from monodepth2_geopt.errors import run_cli
from monodepth2_geopt.options import MonodepthOptions


def main():
    from monodepth2_geopt.flow_task import flow_trainer

    opts = MonodepthOptions(task="flow").parse()
    flow_trainer(opts).train()


if __name__ == "__main__":
    run_cli(main)
