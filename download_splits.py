"""Download the published KITTI split lists, SHA-256 checked; installed as m2g-download-splits.

The program is monodepth2_geopt/cli/download_splits.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import download_splits as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
