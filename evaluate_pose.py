"""Evaluate a pose network on KITTI odometry 09/10 (5-frame ATE); installed as m2g-evaluate-pose.

The program is monodepth2_geopt/cli/evaluate_pose.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import evaluate_pose as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
