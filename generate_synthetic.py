"""Write the procedural synthetic driving world or video; installed as m2g-generate-synthetic.

The program is monodepth2_geopt/cli/generate_synthetic.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import generate_synthetic as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
