"""Build the pre-resized image cache of a split; installed as m2g-prepare-cache.

The program is monodepth2_geopt/cli/prepare_cache.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import prepare_cache as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
