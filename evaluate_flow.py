"""GeoPt flow diagnostics (EPE, Fl-all, latent sensitivity, ...); installed as m2g-evaluate-flow.

The program is monodepth2_geopt/cli/evaluate_flow.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import evaluate_flow as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
