"""The flow a GeoPt model predicts between two images (colour-wheel PNG and .flo); installed as m2g-predict-flow.

The program is monodepth2_geopt/cli/predict_flow.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import predict_flow as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
