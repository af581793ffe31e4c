"""Predict depth for an image, a folder of images or a video (Monodepth2's test_simple.py).

    m2g-infer --image_path assets/test_image.jpg --model_name mono+stereo_640x192    # = python test_simple.py ...
    m2g-infer --image_path frames/ --ext png --load_weights_folder runs/m/models/weights_19
    m2g-infer --image_path drive.mp4 --model_name mono_640x192   # writes drive_disp.mp4
"""
# The program of the repository's test_simple.py, for the installed command m2g-infer. The flat script keeps its
# own copy of this parser until it becomes a thin wrapper of this main (see the branch report).
from __future__ import annotations

import argparse
from collections.abc import Sequence

from monodepth2_geopt.errors import run_cli
from monodepth2_geopt.options import HelpFormatter


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from monodepth2_geopt.inference import RELEASED_MODELS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--image_path", type=str, required=True,
                   help="path to a test image, a folder of images, or a video (mp4/avi/mkv/mov)")
    p.add_argument("--model_name", type=str, choices=list(RELEASED_MODELS),
                   help="name of a released Monodepth2 model, looked up in models/<name> (downloaded if online)")
    p.add_argument("--load_weights_folder", type=str, help="your own weights folder (models/weights_<epoch>)")
    p.add_argument("--ext", type=str, default="jpg", help="image extension to search for in a folder")
    p.add_argument("--no_cuda", action="store_true", help="if set, disables CUDA")
    p.add_argument("--pred_metric_depth", action="store_true",
                   help="if set, writes metric depth (x5.4) instead of disparity; only for stereo-trained models")
    p.add_argument("--out_dir", "--output_dir", dest="output_dir", type=str,
                   help="folder for the outputs (default: next to each input; --output_dir: the earlier name)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs that already exist (without it the script refuses before predicting)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    from monodepth2_geopt.inference import run_inference

    a = parse_args(argv)
    run_inference(a.image_path, a.load_weights_folder, a.model_name, a.ext, a.no_cuda, a.pred_metric_depth,
                  a.output_dir, overwrite=a.overwrite)


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
