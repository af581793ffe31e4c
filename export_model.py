"""Export the depth (and pose) networks to ONNX / TorchScript; installed as m2g-export.

The program is monodepth2_geopt/cli/export_model.py (its docstring has examples; `--help` lists the options).
"""
from monodepth2_geopt.cli import export_model as program
from monodepth2_geopt.errors import run_cli


def main(argv=None):
    return program.main(argv)


if __name__ == "__main__":
    run_cli(main)
