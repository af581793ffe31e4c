"""Decode and resize a split's frames once into memory-mapped uint8 arrays (see monodepth2_geopt/image_cache.py).

    m2g-prepare-cache --data_path kitti_data --split eigen_zhou --height 192 --width 640 --image_cache kitti_cache
    m2g-train ... --image_cache kitti_cache
"""
from __future__ import annotations

from collections.abc import Sequence

from monodepth2_geopt.errors import InputError, run_cli
from monodepth2_geopt.options import MonodepthOptions


def main(argv: Sequence[str] | None = None) -> None:
    opt = MonodepthOptions(__doc__.splitlines()[0], script="prepare_cache").parse(argv)
    # imported after parsing: --help needs no torch
    from monodepth2_geopt.datasets import DATASETS
    from monodepth2_geopt.depth_task import split_file_lines
    from monodepth2_geopt.image_cache import build_cache

    if not opt.image_cache:
        raise InputError("pass --image_cache DIR: the folder to write the cache to")
    frame_ids = list(opt.frame_ids) + (["s"] if opt.use_stereo else [])
    # One cache from the union of train and val lines: they often share drives.
    lines = split_file_lines(opt.split, "train") + split_file_lines(opt.split, "val")
    ds = DATASETS[opt.dataset](opt.data_path, lines, opt.height, opt.width, frame_ids,
                               img_ext=".png" if opt.png else ".jpg")
    # refuses a stale cache without --overwrite
    total = build_cache(ds, opt.image_cache, progress=not opt.no_progress, overwrite=opt.overwrite)
    print(f"cached {total} frames at {opt.width}x{opt.height} in {opt.image_cache}")


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
