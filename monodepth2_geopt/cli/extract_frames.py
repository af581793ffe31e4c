"""Extract frames from videos for GeoPt flow pretraining.

    m2g-extract-frames VIDEO_OR_FOLDER --out_dir frames/ [--fps 10] [--max_side 640]
        [--start S] [--end S] [--static_threshold 1.0] [--cut_threshold 30] [--val_fraction 0.05]

Writes <out_dir>/<video>/%06d.jpg (or <out_dir>/<video>_segNN/ when scene cuts split a video),
<out_dir>/train_files.txt ("<folder> <frame_index>" for frames with neighbours at +-stride),
<out_dir>/val_files.txt (with --val_fraction) and <out_dir>/extraction_summary.json.
Errors (missing or undecodable file, empty folder, bad option) exit with status 2.
``python extract_frames.py`` is the same program. See monodepth2_geopt/tools/video.py for the details; `--help`
lists every option.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from monodepth2_geopt.errors import InputError, run_cli
from monodepth2_geopt.options import HelpFormatter
from monodepth2_geopt.tools.video import ExtractOptions, VideoExtractionError, extract_videos


def build_arg_parser() -> argparse.ArgumentParser:
    d = ExtractOptions()
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter,
        description="Extract frames from videos (a file or a folder, searched recursively) into "
                    "<out>/<video>[_segNN]/%06d.jpg plus train_files.txt for flow pretraining.")
    p.add_argument("input", help="video file or folder of videos")
    p.add_argument("--out_dir", "--out", "-o", dest="out", required=True,
                   help="output folder (--out: the earlier name)")
    p.add_argument("--fps", type=float, default=None, help="target frame rate (default: source rate)")
    p.add_argument("--start", type=float, default=0.0, help="start time in seconds")
    p.add_argument("--end", type=float, default=None, help="end time in seconds (exclusive)")
    p.add_argument("--width", type=int, default=None, help="output width (height keeps the aspect unless given)")
    p.add_argument("--height", type=int, default=None, help="output height")
    p.add_argument("--max_side", type=int, default=None, help="downscale so the longer side is at most this")
    p.add_argument("--stretch", action="store_true", help="with --width and --height: ignore the aspect ratio")
    p.add_argument("--static_threshold", type=float, default=d.static_threshold,
                   help="drop frames whose mean grey difference to the last kept frame is below this (0-255; 0 = off)")
    p.add_argument("--cut_threshold", type=float, default=d.cut_threshold,
                   help="mean grey difference between consecutive frames that marks a scene cut (0 = off)")
    p.add_argument("--cut_hist_threshold", type=float, default=d.cut_hist_threshold,
                   help="grey histogram distance in [0,1] that marks a scene cut (0 = off)")
    p.add_argument("--stride", type=int, default=d.stride, help="neighbour offset for the split lists")
    p.add_argument("--min_segment_frames", type=int, default=None, help="discard shorter segments (default 2*stride+1)")
    p.add_argument("--ext", default=d.img_ext, choices=["jpg", "png"], help="image format")
    p.add_argument("--jpeg_quality", type=int, default=d.jpeg_quality, help="JPEG quality (1-100)")
    p.add_argument("--val_fraction", type=float, default=d.val_fraction,
                   help="fraction of each segment's targets held out (its last frames) for val_files.txt; "
                        "0 writes no val_files.txt")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output folders of the same videos and the lists (train_files.txt, "
                        "val_files.txt, extraction_summary.json); without it the script refuses")
    p.add_argument("--skip_errors", action="store_true", help="skip undecodable videos in a folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    try:
        opts = ExtractOptions(
            fps=args.fps, start=args.start, end=args.end, width=args.width, height=args.height,
            max_side=args.max_side, keep_aspect=not args.stretch, static_threshold=args.static_threshold,
            cut_threshold=args.cut_threshold, cut_hist_threshold=args.cut_hist_threshold, stride=args.stride,
            min_segment_frames=args.min_segment_frames, img_ext=args.ext, jpeg_quality=args.jpeg_quality,
            val_fraction=args.val_fraction, overwrite=args.overwrite, skip_errors=args.skip_errors)
        summary = extract_videos(args.input, args.out, opts, progress=not args.quiet)
    except VideoExtractionError as exc:
        raise InputError(str(exc)) from None
    for r in summary.videos:
        print(f"{r.name}: decoded {r.decoded}, sampled {r.sampled}, kept {r.kept} "
              f"(static dropped {r.dropped_static}, short-segment dropped {r.dropped_short}), "
              f"cuts {r.num_cuts}, segments {[s.folder for s in r.segments]}")
    for s in summary.skipped:
        print(f"skipped {s}")
    val = f", val_files.txt: {len(summary.val)}" if opts.val_fraction > 0 else ""
    print(f"wrote {args.out}: train_files.txt: {len(summary.train)} entries{val}")
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
