"""Self-supervised monocular depth training (Monodepth2 M / S / MS); installed as m2g-train.

The program is monodepth2_geopt/cli/train.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import train as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
