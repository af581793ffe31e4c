"""The whole pipeline on the built-in synthetic world (CPU, minutes); installed as m2g-demo.

The program is monodepth2_geopt/cli/run_demo.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import run_demo as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
