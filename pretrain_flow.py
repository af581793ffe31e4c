"""Geometric Pretraining (self-supervised flow on uncalibrated video); installed as m2g-pretrain.

The program is monodepth2_geopt/cli/pretrain_flow.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import pretrain_flow as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
