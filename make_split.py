"""Write train/val(/test) split lists for a folder tree in the KITTI raw layout.

    python make_split.py --data_path my_root --out_dir splits/my_data
    python make_split.py --cityscapes --data_path cityscapes --out_dir splits/cityscapes   # the 1525 test frames
"""

import argparse

from monodepth2_geopt.errors import InputError, run_cli
from monodepth2_geopt.splits import make_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data_path", required=True, help="root holding <date>/<drive>/image_02/data")
    parser.add_argument("--out_dir", required=True, help="folder for train_files.txt etc.")
    parser.add_argument("--frame_ids", nargs="+", type=int, default=[0, -1, 1],
                        help="neighbours every kept frame needs")
    parser.add_argument("--val_fraction", type=float, default=0.1, help="share of frames for val")
    parser.add_argument("--test_fraction", type=float, default=0.0, help="share for test_files.txt")
    parser.add_argument("--by_drive", action="store_true", help="split whole drives, not frames")
    parser.add_argument("--stereo", action="store_true", help="add r lines where image_03 exists")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the split")
    parser.add_argument("--cityscapes", action="store_true",
                        help="--data_path is a Cityscapes root: write test_files.txt listing every "
                             "leftImg8bit/test/<city>/*_leftImg8bit.png, for evaluate_depth.py --eval_split cityscapes")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace split lists already in --out_dir (without it the script refuses)")
    opt = parser.parse_args()
    if opt.cityscapes:
        from monodepth2_geopt.cityscapes import write_test_list
        lines = write_test_list(opt.data_path, opt.out_dir, opt.overwrite)
        print(f"{len(lines)} Cityscapes test lines written to {opt.out_dir}/test_files.txt")
        return
    try:
        lists = make_split(opt.data_path, opt.out_dir, opt.frame_ids, opt.val_fraction,
                           opt.test_fraction, opt.by_drive, opt.stereo, opt.seed, opt.overwrite)
    except (OSError, ValueError) as err:
        raise InputError(str(err)) from None
    print(", ".join(f"{len(v)} {k}" for k, v in lists.items()) + f" lines written to {opt.out_dir}")


if __name__ == "__main__":
    run_cli(main)
