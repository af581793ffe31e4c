#!/usr/bin/env python
"""Extract frames from videos for GeoPt flow pretraining.

    python extract_frames.py VIDEO_OR_FOLDER --out frames/ [--fps 10] [--max_side 640]
        [--start S] [--end S] [--static_threshold 1.0] [--cut_threshold 30] [--val_fraction 0.05]

Writes <out>/<video>/%06d.jpg (or <out>/<video>_segNN/ when scene cuts split a video),
<out>/train_files.txt ("<folder> <frame_index>" for frames with neighbours at +-stride),
<out>/val_files.txt (with --val_fraction) and <out>/extraction_summary.json.
Errors (missing or undecodable file, empty folder, bad option) exit with status 2.
See monodepth2_geopt/video.py for the details; `--help` lists every option.
"""
import sys

from monodepth2_geopt.video import main

if __name__ == "__main__":
    sys.exit(main())
