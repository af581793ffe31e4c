"""Print the intrinsics a --learn_intrinsics model predicts, per sequence (mean and sd over its frame pairs).

    m2g-evaluate-intrinsics --load_weights_folder ~/tmp/mono_video/models/weights_19 --data_path frames/
    m2g-evaluate-intrinsics --load_weights_folder W --data_path kitti_data --split splits/eigen_zhou/val_files.txt
(``python evaluate_intrinsics.py`` is the same program.)

Frames: every folder of frames under --data_path (extract_frames.py's layout, KITTI raw, Cityscapes), or the lines of
--split. Each pair (t, t + stride) is centre-cropped to the training aspect ratio and resized, as --dataset video
training does; --whole_frame resizes whole frames instead, as KITTI-layout training does (use it for such models
when the frames' aspect differs from the input's).
Normalised values (fx/W, fy/H, cx/W, cy/H) and fx, fy in pixels of the network input; --json writes them to a file
(e.g. <weights>/intrinsics.json). The running mean of the training predictions is in intrinsics.pth.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from monodepth2_geopt.errors import InputError, run_cli
from monodepth2_geopt.options import HelpFormatter


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--load_weights_folder", required=True, help="weights folder of a --learn_intrinsics run")
    p.add_argument("--data_path", required=True, help="root of the frame folders")
    p.add_argument("--split", default=None, help="split file of '<folder> <frame_index> [side]' lines (default: all)")
    p.add_argument("--stride", type=int, default=1, help="frame distance of the pairs")
    p.add_argument("--max_pairs", type=int, default=200, help="at most this many pairs per sequence (evenly spread)")
    p.add_argument("--whole_frame", action="store_true",
                   help="resize whole frames to the input size (KITTI-layout training) instead of the centred crop "
                        "of the input's aspect (--dataset video training)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--no_cuda", action="store_true", help="run on the CPU even if CUDA is available")
    args = p.parse_args(argv)
    if args.max_pairs < 1 or args.stride < 1:
        raise InputError("--max_pairs and --stride must be at least 1")
    import torch

    from monodepth2_geopt.intrinsics import predict_sequences
    device = "cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu"
    res = predict_sequences(args.load_weights_folder, args.data_path, args.split, args.stride, args.max_pairs, device,
                            whole_frame=args.whole_frame)
    print(f"{'sequence':40s} {'pairs':>5s}  {'fx/W':>13s} {'fy/H':>13s} {'cx/W':>13s} {'cy/H':>13s}  fx, fy (px)")
    for seq, r in res.items():
        vals = "  ".join(f"{r[n]['mean']:.4f}±{r[n]['sd']:.4f}" for n in ("fx", "fy", "cx", "cy"))
        print(f"{seq:40s} {r['pairs']:5d}  {vals}  {r['fx_px']:.1f}, {r['fy_px']:.1f} at {r['size'][0]}x{r['size'][1]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
