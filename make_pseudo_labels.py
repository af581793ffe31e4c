"""Write a teacher's disparity for every frame, for distillation (NimbleD); installed as m2g-pseudo-labels.

The program is monodepth2_geopt/cli/make_pseudo_labels.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import make_pseudo_labels as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
