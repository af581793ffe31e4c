"""The README's main job on the built-in synthetic world, as the plain commands a user would type.

generate data -> pretrain_flow.py (uncalibrated video, another seed) -> train.py --geopt_weights (MS) ->
export_gt_depth.py -> evaluate_depth.py -> test_simple.py. Each step runs as a subprocess and is printed first.

Progress: the two trainings show their progress bar (examples, rate, time left; its title names the epoch).
In a terminal it redraws in place; when the output goes to a file or a pipe it is redrawn at most every
``QUIET_BAR_INTERVAL`` seconds (tqdm's ``TQDM_MININTERVAL`` and ``TQDM_MAXINTERVAL``), so a log gets a couple of
lines per minute, not thousands. The bar changes nothing in the runs (``--log_frequency``, seeds and budgets are
as before).
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

QUIET_BAR_INTERVAL = 30  # seconds between progress-bar updates when stderr is not a terminal


def disk_usage(path: str | os.PathLike) -> int:
    """Bytes of the files under ``path`` (their sizes, links not followed); 0 if it does not exist."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def format_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def disk_summary(out: Path) -> str:
    """One line: what ``out`` holds in all, and per top-level folder, largest first."""
    parts = sorted(((disk_usage(p), p.name) for p in out.iterdir() if p.is_dir()), reverse=True)
    inside = ", ".join(f"{name}/ {format_bytes(size)}" for size, name in parts if size)
    return f"{out} uses {format_bytes(disk_usage(out))} on disk ({inside})"


def latest_weights(run_dir: Path) -> Path:
    folders = sorted((run_dir / "models").glob("weights_*"), key=lambda p: int(p.name.split("_")[1]))
    if not folders:
        raise InputError(f"no weights_* folder under {run_dir / 'models'}: the step before did not save")
    return folders[-1]


def run_demo(out_dir: str | os.PathLike = "demo", width: int = 192, height: int = 64, drives: int = 4,
             frames_per_drive: int = 40, video_frames: int = 120, flow_epochs: int = 2, depth_epochs: int = 4,
             batch_size: int = 4, num_workers: int = 1, seed: int = 0, num_threads: int = 1,
             keep_last: int = 1) -> dict:
    """Generate, pretrain, train, evaluate and infer under ``out_dir``; returns the paths of the results.

    ``num_threads`` is pinned (not the automatic count, which follows the machine's load) because the thread count
    changes the order of floating-point sums and, at this budget, the result: the same code gives abs_rel 0.364
    with 1 thread and 0.442 with 2 (README). ``keep_last`` keeps the newest checkpoints of each run (disk)."""
    out = Path(out_dir).resolve()
    checkout = source_checkout()
    world, videos, runs = out / "world", out / "videos", out / "runs"
    started = time.time()

    env = dict(os.environ)
    if not sys.stderr.isatty():  # a log file or a pipe: a progress line now and then, not a redraw per step
        env.setdefault("TQDM_MININTERVAL", str(QUIET_BAR_INTERVAL))
        env.setdefault("TQDM_MAXINTERVAL", str(QUIET_BAR_INTERVAL))  # tqdm's monitor thread redraws after this

    def step(title, script, *args):
        if checkout is not None:  # a clone: the flat scripts, as the README shows them
            cmd, shown = [sys.executable, script], f"python {script}"
        else:  # an installed package: the same programs as console commands
            cmd, shown = [sys.executable, "-m", f"monodepth2_geopt.cli.{script[:-3]}"], CONSOLE_COMMANDS[script]
        cmd += [str(a) for a in args]
        print(f"\n=== {title}\n$ {shown} {' '.join(shlex.quote(str(a)) for a in args)}", flush=True)
        proc = subprocess.run(cmd, cwd=checkout, env=env)
        if proc.returncode != 0:
            raise InputError(f"step '{title}' failed (exit code {proc.returncode}); the command is printed above")

    size = ["--width", width, "--height", height]
    common = size + ["--batch_size", batch_size, "--num_workers", num_workers, "--weights_init", "scratch",
                     "--log_dir", runs, "--seed", seed, "--log_frequency", 50, "--num_threads", num_threads,
                     "--keep_last", keep_last]
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
    # Most of it is checkpoints with Adam's state (--keep_last: the newest weights_N and models/last of each run).
    # Delete runs/ once you are done with the weights; rerunning the demo replaces it.
    print(disk_summary(out))
    return {"weights": weights, "geopt": geopt, "disparity_image": disp, "disk_bytes": disk_usage(out)}
