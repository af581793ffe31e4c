"""Intrinsics a --learn_intrinsics model predicts, per sequence; installed as m2g-evaluate-intrinsics.

The program is monodepth2_geopt/cli/evaluate_intrinsics.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import evaluate_intrinsics as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
