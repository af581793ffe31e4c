"""Evaluate a depth model on KITTI (Monodepth2's protocols); installed as m2g-evaluate.

The program is monodepth2_geopt/cli/evaluate_depth.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import evaluate_depth as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
