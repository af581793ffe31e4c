"""Write the procedural synthetic driving dataset (KITTI raw layout + exact GT) or uncalibrated video.

    m2g-generate-synthetic --out_dir synthetic_data           # = python generate_synthetic.py ...
    m2g-generate-synthetic --out_dir videos --video --num_sequences 2 --mp4
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from monodepth2_geopt.errors import InputError, run_cli
from monodepth2_geopt.options import HelpFormatter


def main(argv: Sequence[str] | None = None) -> None:
    from monodepth2_geopt.tools.synthetic import generate_dataset, generate_video

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--out_dir", default="synthetic_data", help="output root")
    p.add_argument("--num_drives", type=int, default=2, help="drives of the KITTI-layout world")
    p.add_argument("--frames_per_drive", type=int, default=50, help="frames of each drive")
    p.add_argument("--width", type=int, default=320, help="image width")
    p.add_argument("--height", type=int, default=96, help="image height")
    p.add_argument("--seed", type=int, default=0, help="world seed (scene, drive, textures)")
    p.add_argument("--ext", choices=["png", "jpg"], default="png", help="colour image format")
    p.add_argument("--moving_objects", type=int, default=0, help="independently moving cars per drive")
    p.add_argument("--brightness_change", type=float, default=0.02, help="per-frame global gain amplitude")
    p.add_argument("--camera_shake", type=float, default=0.0,
                   help="pitch amplitude in degrees (roll: half of it) of a shaking camera; 0 = it only yaws with "
                        "the road. Focal lengths are observable from rotation only: fy needs pitch")
    p.add_argument("--square_pixels", action="store_true",
                   help="render with square pixels (fy = fx in pixels, fx/W = 0.58) instead of KITTI's normalised K, "
                        "whose pixels are square only near KITTI's 3.3:1 aspect; train with --intrinsics 0.58 "
                        "<0.58 x W/H> 0.5 0.5")
    p.add_argument("--no_velodyne", action="store_true", help="skip velodyne_points")
    p.add_argument("--video", action="store_true", help="write uncalibrated video frames instead")
    p.add_argument("--num_sequences", type=int, default=1, help="--video: number of sequences")
    p.add_argument("--frames", type=int, default=100, help="--video: frames per sequence")
    p.add_argument("--mp4", action="store_true", help="--video: also write <seq>.mp4 (PyAV)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --out_dir that generate_synthetic.py wrote (without it the script "
                        "refuses; a folder holding other files is refused either way)")
    args = p.parse_args(argv)
    for flag in ("num_drives", "frames_per_drive", "width", "height", "num_sequences", "frames"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag} {getattr(args, flag)}: must be at least 1")

    start = time.perf_counter()
    if args.video:
        out = generate_video(args.out_dir, args.num_sequences, args.frames, args.width, args.height, args.seed,
                             mp4=args.mp4, moving_objects=args.moving_objects,
                             brightness_change=args.brightness_change, overwrite=args.overwrite,
                             camera_shake=args.camera_shake, square_pixels=args.square_pixels)
        print("\n".join(out))
    else:
        info = generate_dataset(args.out_dir, args.num_drives, args.frames_per_drive, args.width, args.height,
                                args.seed, args.ext, args.moving_objects, args.brightness_change,
                                velodyne=not args.no_velodyne, verbose=True, overwrite=args.overwrite,
                                camera_shake=args.camera_shake, square_pixels=args.square_pixels)
        print("splits:", ", ".join(f"{k}={v}" for k, v in info["splits"].items()))
    print(f"done in {time.perf_counter() - start:.1f} s")


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
