"""Export a split's ground-truth depth maps to gt_depths.npz (Monodepth2's export_gt_depth.py).

    m2g-export-gt-depth --data_path kitti_data --split eigen              # = python export_gt_depth.py ...
    m2g-export-gt-depth --data_path kitti_data --split eigen_benchmark    # KITTI's annotated depth PNGs
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from monodepth2_geopt.errors import InputError, run_cli
from monodepth2_geopt.gt_depth import GT_SOURCES, SPLIT_GT_SOURCE, export_gt_depths
from monodepth2_geopt.options import HelpFormatter
from monodepth2_geopt.splits import resolve_split_dir


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    parser.add_argument("--data_path", required=True, help="root of the KITTI raw data")
    parser.add_argument("--split", required=True,
                        help="eigen, eigen_benchmark, or a split folder with test_files.txt")
    parser.add_argument("--output", help="output .npz (default: <split folder>/gt_depths.npz)")
    parser.add_argument("--gt_source", choices=GT_SOURCES,
                        help="velodyne scans or KITTI depth PNGs "
                             "(default: depth_png for eigen_benchmark, velodyne otherwise)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output file (without it the script refuses)")
    opt = parser.parse_args(argv)
    try:
        split_dir = resolve_split_dir(opt.split)
        source = opt.gt_source or SPLIT_GT_SOURCE.get(split_dir.name, "velodyne")
        path = export_gt_depths(opt.data_path, split_dir, source, opt.output, opt.overwrite)
    except (OSError, ValueError) as err:
        raise InputError(str(err)) from None
    print(f"Saved {source} ground truth for {split_dir} to {path}")


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
