"""Write a teacher's disparity for every frame, for distillation (train.py --pseudo_label_path, NimbleD).

``m2g-pseudo-labels`` (installed) is the same program.

    python make_pseudo_labels.py --teacher ~/tmp/mono_model/models/weights_19 --data_path frames/ --out_dir labels/
    python make_pseudo_labels.py --teacher my_teacher.py:predict --teacher_output disp --data_path kitti_data \\
        --split eigen_zhou --png --out_dir kitti_labels/
    python make_pseudo_labels.py --teacher my_pkg.depth:run --teacher_output depth --data_path frames/ \\
        --out_dir labels/ --format npy

--teacher: a weights folder of this project, or module:function (importable, or path/to/file.py:function) taking
an RGB uint8 array [H, W, 3] and returning one [H', W'] map, disparity or depth as --teacher_output says.
Frames: every image under --data_path (extract_frames.py folders), or the target frames of --split (its
train_files.txt and val_files.txt, or one split file; --dataset video for extract_frames.py lines).
Output: --out_dir mirrors the image tree, one 16-bit PNG (or float16 .npy) per image at the image's size, plus
pseudo_labels.json naming the teacher. Labels that exist are skipped (rerun to resume); another teacher's folder is
refused without --overwrite. Encoding: monodepth2_geopt/pseudo_labels.py.
"""
from __future__ import annotations

import argparse

from monodepth2_geopt.errors import run_cli


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="a weights folder (models/weights_N) or module:function")
    p.add_argument("--teacher_output", default="disp", choices=["disp", "depth"],
                   help="what a module:function teacher returns (a weights folder always gives disparity)")
    p.add_argument("--data_path", required=True, help="root of the images (labels mirror its tree)")
    p.add_argument("--split", default=None,
                   help="a split name or folder (train_files.txt + val_files.txt) or one split file: label only the "
                        "target frames of its lines (default: every image under --data_path)")
    p.add_argument("--dataset", default="kitti", choices=["kitti", "kitti_odom", "kitti_depth", "video"],
                   help="with --split: how its lines name images (video: extract_frames.py folders)")
    p.add_argument("--png", action="store_true", help="with --split on KITTI: the frames are .png (else .jpg)")
    p.add_argument("--out_dir", required=True, help="output folder (put it beside --data_path, not inside)")
    p.add_argument("--format", default="png", choices=["png", "npy"],
                   help="png: 16-bit, scaled per file (compact); npy: float16")
    p.add_argument("--overwrite", action="store_true",
                   help="rewrite every label, and write into a folder made by another teacher")
    p.add_argument("--no_cuda", action="store_true", help="a weights-folder teacher runs on the CPU")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)

    from monodepth2_geopt import pseudo_labels as pl
    from monodepth2_geopt.utils import pick_device

    if args.split:
        images = pl.split_images(args.data_path, args.split, args.dataset, args.png)
    else:
        images = pl.folder_images(args.data_path, exclude=[args.out_dir])
    teacher = pl.load_teacher(args.teacher, args.teacher_output, pick_device(args.no_cuda))
    stats = pl.make_pseudo_labels(teacher, images, args.data_path, args.out_dir, args.format, args.teacher_output,
                                  overwrite=args.overwrite, progress=not args.no_progress)
    print(f"-> wrote {stats['written']} labels, kept {stats['skipped']} existing, in {stats['out_dir']}")
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
