"""Export the depth network (and optionally the pose network) to ONNX or TorchScript.

    python export_model.py --load_weights_folder runs/m/models/weights_19 --format onnx torchscript --out_dir export/
    python export_model.py --load_weights_folder ... --format onnx --output depth --pose --out_dir export/

Input: RGB in [0, 1], NCHW at the checkpoint's height and width, dynamic batch. Output: Monodepth2's scale-0
sigmoid disparity (``--output depth``: depth, metres for stereo-trained models). Each file is checked against
PyTorch after writing (ONNX with onnxruntime; TorchScript reloaded in a fresh interpreter without this project).
See monodepth2_geopt/export.py for the files and their conventions.
"""
import argparse

from monodepth2_geopt.errors import run_cli
from monodepth2_geopt.export import FORMATS, OPSET, export_model


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Export Monodepth2-GeoPt networks to ONNX / TorchScript.")
    p.add_argument("--load_weights_folder", type=str, required=True,
                   help="weights folder (models/weights_<epoch>, or an unzipped Monodepth2 release)")
    p.add_argument("--format", nargs="+", choices=FORMATS, default=["onnx"], help="onnx, torchscript or both")
    p.add_argument("--out_dir", type=str, required=True, help="folder for the exported files")
    p.add_argument("--output", choices=["disp", "depth"], default="disp",
                   help="disp: Monodepth2's scale-0 sigmoid disparity (default); depth: depth with the "
                        "checkpoint's depth range, x5.4 (metres) for stereo-trained models")
    p.add_argument("--pose", action="store_true",
                   help="also export the pose network (pose_encoder.pth + pose.pth, --pose_model_type separate_resnet)")
    p.add_argument("--opset", type=int, default=OPSET, help="ONNX opset (TorchScript-based exporter)")
    p.add_argument("--onnx_exporter", choices=["torchscript", "dynamo"], default="torchscript",
                   help="PyTorch's ONNX exporter: torchscript (default: no extra dependency) or dynamo "
                        "(torch.export based; pip install onnxscript)")
    p.add_argument("--no_check", action="store_true", help="skip the comparison with PyTorch after export")
    p.add_argument("--overwrite", action="store_true", help="replace exported files that already exist")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    export_model(a.load_weights_folder, a.format, a.out_dir, a.output, a.pose, a.overwrite, check=not a.no_check,
                 opset=a.opset, onnx_exporter=a.onnx_exporter)


if __name__ == "__main__":
    run_cli(main)
