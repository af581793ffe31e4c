"""Depth for images, folders or videos with a trained model (Monodepth2's test_simple.py); installed as m2g-infer.

The program is monodepth2_geopt/cli/test_simple.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import test_simple as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
