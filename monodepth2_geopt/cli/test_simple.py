"""Predict depth for an image, a folder of images or a video (Monodepth2's test_simple.py).

    python test_simple.py --image_path my_photo.jpg --model_name mono+stereo_640x192
    python test_simple.py --image_path frames/ --ext png --load_weights_folder runs/m/models/weights_19 --save_depth
    python test_simple.py --image_path photo.jpg --model_name mono+stereo_640x192 --save_ply --intrinsics 0.8 1.4 0.5 0.5
    python test_simple.py --image_path drive.mp4 --model_name mono_640x192 --fixed_range   # drive_disp.mp4

``m2g-infer`` (installed) is the same program. Outputs go to ./test_simple_out (--out_dir; --next_to_inputs writes
beside each input, as Monodepth2 did); the script prints the name of every file it writes.
"""
import argparse

from monodepth2_geopt.errors import run_cli
from monodepth2_geopt.options import HelpFormatter
from monodepth2_geopt.inference import DEFAULT_OUT_DIR, RELEASED_MODELS, run_inference
from monodepth2_geopt.intrinsics import add_intrinsics_argument


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Simple testing function for Monodepth2-GeoPt models.",
                                formatter_class=HelpFormatter)
    p.add_argument("--image_path", type=str, required=True,
                   help="path to a test image, a folder of images, or a video (mp4/avi/mkv/mov)")
    p.add_argument("--model_name", type=str, choices=list(RELEASED_MODELS),
                   help="name of a released Monodepth2 model, looked up in models/<name> (downloaded if online)")
    p.add_argument("--load_weights_folder", type=str, help="your own weights folder (models/weights_<epoch>)")
    p.add_argument("--ext", type=str, default="jpg", help="image extension to search for in a folder")
    p.add_argument("--no_cuda", action="store_true", help="if set, disables CUDA")
    p.add_argument("--pred_metric_depth", action="store_true",
                   help="if set, writes <name>_depth.npy = 5.4 x depth instead of <name>_disp.npy (Monodepth2's "
                        "flag); metric only for stereo-trained models. Also applies x5.4 to --save_depth/--save_ply")
    p.add_argument("--save_depth", action="store_true",
                   help="also write <name>_depth.npy (float32 [1, 1, H, W]) and <name>_depth.png (uint16, KITTI's "
                        "format: value / 256 = depth) at the input's size: metres for stereo-trained models, "
                        "relative (not median-scaled) for monocular ones")
    p.add_argument("--save_ply", action="store_true",
                   help="also write <name>_points.ply, a coloured point cloud (binary PLY, camera frame, unit of "
                        "--save_depth; the header states the scale), using --intrinsics")
    add_intrinsics_argument(p, "normalised intrinsics of the input images for --save_ply (fx/width, fy/height, "
                               "cx/width, cy/height), as train.py's; default: Monodepth2's KITTI values 0.58 1.92 "
                               "0.5 0.5, right for KITTI frames only")
    p.add_argument("--fixed_range", nargs="*", type=float, default=None, metavar=("NEAR", "FAR"),
                   help="one colour range for every frame of a video (and every image of a folder) instead of "
                        "Monodepth2's per-image range, which flickers: without values the first frame's range, "
                        "or NEAR FAR depths (metres for stereo-trained models) at the ends of the colour map")
    p.add_argument("--out_dir", "--output_dir", dest="output_dir", type=str, default=None,
                   help=f"folder for the outputs (default: ./{DEFAULT_OUT_DIR} in the working directory; "
                        "--output_dir: the earlier name)")
    p.add_argument("--next_to_inputs", action="store_true",
                   help="write the outputs beside each input, as Monodepth2 did (instead of --out_dir)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs that already exist (without it the script refuses before predicting)")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    run_inference(a.image_path, a.load_weights_folder, a.model_name, a.ext, a.no_cuda, a.pred_metric_depth,
                  a.output_dir, overwrite=a.overwrite, save_depth=a.save_depth, save_ply=a.save_ply,
                  intrinsics=a.intrinsics, fixed_range=a.fixed_range, next_to_inputs=a.next_to_inputs)


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
