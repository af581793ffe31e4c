"""Extract frames from videos for GeoPt pretraining; installed as m2g-extract-frames.

The program is monodepth2_geopt/cli/extract_frames.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import extract_frames as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
