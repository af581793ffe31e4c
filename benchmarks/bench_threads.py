"""CPU threads on a shared machine: wall time of one small ``train.py`` run with --num_threads N against the
automatic default (no flag, OMP_NUM_THREADS unset: the free cores, see ``utils.configure_cpu_threads``).

    python benchmarks/bench_threads.py                        # 3 repeats of each setting, printed
    python benchmarks/bench_threads.py --write_results        # also a section of benchmarks/RESULTS.md

Each run is a fresh ``python train.py`` (M, from scratch, 1 epoch of the built-in synthetic world at 320x96,
batch 2, --num_workers 0), timed from start to exit, the settings interleaved (A B C A B C ...) so that the
machine's other load affects them alike; the 1-minute load average before each run is recorded.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

from monodepth2_geopt.errors import run_cli


def make_world(root: Path) -> Path:
    from monodepth2_geopt.tools.synthetic import generate_dataset
    if not (root / "splits" / "train_files.txt").exists():
        generate_dataset(root, num_drives=1, frames_per_drive=12, width=320, height=96, seed=0, velodyne=False)
    return root


def run_once(world: Path, flags: list[str]) -> tuple[float, float]:
    """(wall seconds, load average before) of one training run."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    load = os.getloadavg()[0]
    log_dir = tempfile.mkdtemp(prefix="bench_threads_")
    cmd = [sys.executable, str(common.ROOT / "train.py"), "--data_path", str(world), "--png", "--split",
           str(world / "splits"), "--height", "96", "--width", "320", "--batch_size", "2", "--num_epochs", "1",
           "--weights_init", "scratch", "--num_workers", "0", "--no_progress", "--seed", "0", "--no_cuda",
           "--log_dir", log_dir, *flags]
    start = time.perf_counter()
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        return time.perf_counter() - start, load
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)  # a 0.3 GB checkpoint per run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", nargs="+", type=int, default=[os.cpu_count() or 1, 1],
                   help="explicit --num_threads values to compare with the automatic default")
    p.add_argument("--write_results", action="store_true", help="also write a section of benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    world = make_world(Path(tempfile.gettempdir()) / "m2g_bench_threads_world")
    settings = [(f"--num_threads {n}", ["--num_threads", str(n)]) for n in args.threads]
    settings.append(("default (no flag, OMP_NUM_THREADS unset)", []))
    times: dict[str, list[float]] = {name: [] for name, _ in settings}
    loads: list[float] = []
    for r in range(args.repeats):
        for name, flags in settings:
            seconds, load = run_once(world, flags)
            times[name].append(seconds)
            loads.append(load)
            print(f"repeat {r}: {name:42s} {seconds:6.1f} s (load average before: {load:.1f})", flush=True)
    rows = [[name, len(t), round(statistics.mean(t), 1), round(statistics.stdev(t), 1) if len(t) > 1 else "-",
             " / ".join(f"{x:.0f}" for x in t)] for name, t in times.items()]
    body = (f"{os.cpu_count()} cores; 1-minute load average before the runs: {min(loads):.1f} to {max(loads):.1f} "
            "(other jobs on the machine). One `train.py` run each: M from scratch, 1 epoch of the synthetic world "
            "(1 drive, 12 frames) at 320x96, batch 2, --num_workers 0; wall time from start to exit, settings "
            "interleaved.\n\n"
            + common.table(["setting", "runs", "mean wall (s)", "sd (s)", "each run (s)"], rows))
    print(body)
    if args.write_results:
        common.write_section("CPU threads on a shared machine", body, common.command_line())


if __name__ == "__main__":
    run_cli(main)
