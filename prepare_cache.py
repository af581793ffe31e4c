"""Decode and resize a split's frames once into memory-mapped uint8 arrays (see monodepth2_geopt/image_cache.py).

    python prepare_cache.py --data_path kitti_data --split eigen_zhou --height 192 --width 640 --image_cache kitti_cache
    python train.py ... --image_cache kitti_cache
"""
from monodepth2_geopt.errors import InputError, run_cli
from monodepth2_geopt.options import MonodepthOptions


def main():
    from monodepth2_geopt.datasets import DATASETS
    from monodepth2_geopt.image_cache import build_cache
    from monodepth2_geopt.depth_task import split_file_lines

    opt = MonodepthOptions("Build the pre-resized image cache").parse()
    if not opt.image_cache:
        raise InputError("pass --image_cache DIR: the folder to write the cache to")
    frame_ids = list(opt.frame_ids) + (["s"] if opt.use_stereo else [])
    # One cache from the union of train and val lines: they often share drives.
    lines = split_file_lines(opt.split, "train") + split_file_lines(opt.split, "val")
    ds = DATASETS[opt.dataset](opt.data_path, lines, opt.height, opt.width, frame_ids,
                               img_ext=".png" if opt.png else ".jpg")
    total = build_cache(ds, opt.image_cache, progress=not opt.no_progress, overwrite=opt.overwrite)  # refuses a stale cache without --overwrite
    print(f"cached {total} frames at {opt.width}x{opt.height} in {opt.image_cache}")


if __name__ == "__main__":
    run_cli(main)
