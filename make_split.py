"""Write train/val(/test) split lists for a KITTI-raw-layout tree; installed as m2g-make-split.

The program is monodepth2_geopt/cli/make_split.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import make_split as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
