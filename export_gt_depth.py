"""Export a split's ground-truth depth to gt_depths.npz; installed as m2g-export-gt-depth.

The program is monodepth2_geopt/cli/export_gt_depth.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import export_gt_depth as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
