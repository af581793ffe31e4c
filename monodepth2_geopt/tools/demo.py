"""The README's main job on the built-in synthetic world, as the plain commands a user would type.

generate data -> pretrain_flow.py (uncalibrated video, another seed) -> train.py --geopt_weights (MS) ->
export_gt_depth.py -> evaluate_depth.py -> test_simple.py. Each step runs as a subprocess and is printed first.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from monodepth2_geopt.errors import InputError
from monodepth2_geopt.kitti_layout import frame_path, parse_split_line
from monodepth2_geopt.paths import CONSOLE_COMMANDS, source_checkout


def latest_weights(run_dir: Path) -> Path:
    folders = sorted((run_dir / "models").glob("weights_*"), key=lambda p: int(p.name.split("_")[1]))
    if not folders:
        raise InputError(f"no weights_* folder under {run_dir / 'models'}: the step before did not save")
    return folders[-1]


def run_demo(out_dir: str | os.PathLike = "demo", width: int = 192, height: int = 64, drives: int = 4,
             frames_per_drive: int = 40, video_frames: int = 120, flow_epochs: int = 2, depth_epochs: int = 4,
             batch_size: int = 4, num_workers: int = 1, seed: int = 0) -> dict:
    out = Path(out_dir).resolve()
    checkout = source_checkout()
    world, videos, runs = out / "world", out / "videos", out / "runs"
    started = time.time()

    def step(title, script, *args):
        if checkout is not None:  # a clone: the flat scripts, as the README shows them
            cmd, shown = [sys.executable, script], f"python {script}"
        else:  # an installed package: the same programs as console commands
            cmd, shown = [sys.executable, "-m", f"monodepth2_geopt.cli.{script[:-3]}"], CONSOLE_COMMANDS[script]
        cmd += [str(a) for a in args]
        print(f"\n=== {title}\n$ {shown} {' '.join(shlex.quote(str(a)) for a in args)}", flush=True)
        proc = subprocess.run(cmd, cwd=checkout)
        if proc.returncode != 0:
            raise InputError(f"step '{title}' failed (exit code {proc.returncode}); the command is printed above")

    size = ["--width", width, "--height", height]
    common = size + ["--batch_size", batch_size, "--num_workers", num_workers, "--weights_init", "scratch",
                     "--log_dir", runs, "--seed", seed, "--log_frequency", 50, "--no_progress"]
    if not (world / "splits" / "test_files.txt").exists():
        step("1/6 generate the synthetic driving world (KITTI layout, ground truth)", "generate_synthetic.py",
             "--out_dir", world, "--num_drives", drives, "--frames_per_drive", frames_per_drive, *size,
             "--seed", seed)
    if not any(videos.glob("seq_*")):
        step("2/6 generate uncalibrated video frames of another world (seed + 1)", "generate_synthetic.py",
             "--out_dir", videos, "--video", "--num_sequences", 2, "--frames", video_frames, *size,
             "--seed", seed + 1)
    step("3/6 Geometric Pretraining: self-supervised flow on the uncalibrated frames", "pretrain_flow.py",
         "--data_path", videos, "--model_name", "geopt", "--num_epochs", flow_epochs, *common,
         "--overwrite")  # the demo's own run folder: a rerun replaces it
    geopt = latest_weights(runs / "geopt")
    # MS (mono + stereo, frames 0 -1 1 s): Monodepth2's best mode; the stereo pair fixes the metric scale.
    # The decoder starts from scratch: --init_depth 2 (about 11 m) instead of Monodepth2's 0.2 (see README).
    step("4/6 Monodepth2 training (MS) from the pretrained structure encoder", "train.py",
         "--data_path", world, "--png", "--split", world / "splits", "--model_name", "depth", "--use_stereo",
         "--num_epochs", depth_epochs, "--geopt_weights", geopt, "--init_depth", 2, *common, "--overwrite")
    weights = latest_weights(runs / "depth")
    step("5/6 export the test drive's ground truth", "export_gt_depth.py",
         "--data_path", world, "--split", world / "splits", "--gt_source", "depth_png",
         "--overwrite")  # the demo's own outputs: a rerun replaces them
    step("5/6 evaluate on the held-out test drive (metric: x5.4, no median scaling)", "evaluate_depth.py",
         "--load_weights_folder", weights, "--eval_stereo", "--eval_split", world / "splits", "--data_path", world, "--png",
         "--eval_out_dir", out / "eval", "--num_workers", 0)
    first_line = (world / "splits" / "test_files.txt").read_text().split("\n")[0]
    folder, frame_index, side = parse_split_line(first_line)
    image = Path(frame_path(world, folder, frame_index, side, ".png"))
    step("6/6 single-image inference", "test_simple.py", "--image_path", image, "--load_weights_folder", weights,
         "--out_dir", out / "predictions", "--overwrite")
    disp = out / "predictions" / f"{image.stem}_disp.jpeg"
    print(f"\nDone in {time.time() - started:.0f} s. Metrics: {out / 'eval'}; disparity image: {disp}")
    return {"weights": weights, "geopt": geopt, "disparity_image": disp}
