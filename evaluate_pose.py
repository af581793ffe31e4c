"""Evaluate a pose network on KITTI odometry sequence 09 or 10 (5-frame snippet ATE, as Monodepth2).

    python evaluate_pose.py --eval_split odom_9 --load_weights_folder ~/tmp/odom_model/models/weights_19 \
        --data_path kitti_odom
Needs <data_path>/sequences/09/image_2/*.jpg (or --png) and <data_path>/poses/09.txt.
"""
from monodepth2_geopt.errors import run_cli
from monodepth2_geopt.options import MonodepthOptions


def main():
    from monodepth2_geopt.pose_eval import evaluate_pose

    opt = MonodepthOptions("Monodepth2-GeoPt odometry pose evaluation").parse()
    evaluate_pose(opt)


if __name__ == "__main__":
    run_cli(main)
