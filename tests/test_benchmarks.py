"""The benchmark scripts run end to end (CPU smoke at toy sizes; their numbers are not checked here)."""
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each benchmark script end to end

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args):
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_speed_benchmark_smoke():
    out = run_script("benchmarks/bench_speed.py", "--quick", "--modes", "M", "flow", "--no_ablation")
    assert "| M |" in out and "| flow |" in out


def test_accuracy_benchmark_smoke(tmp_path):
    out = run_script("benchmarks/bench_accuracy.py", "--part", "all", "--steps", 2, "--flow_steps", 2,
                     "--speed_steps", 1, "--seeds", 0, "--modes", "M", "S", "--width", 96, "--height", 64,
                     "--drives", 2, "--frames", 6, "--video_frames", 6, "--automask_warmup", 1, "--num_workers", 0,
                     "--no_write", "--work", tmp_path)
    for row in ("| M | median | 2 |", "| all speed options on | 0 |", "| after 1 steps |", "| mean ± sd |"):
        assert row in out, out[-3000:]


def test_geopt_benchmark_smoke(tmp_path):
    common = ["--no_write", "--work", tmp_path, "--every", 1, "--batch_size", 2]
    out = run_script("benchmarks/bench_geopt.py", "--part", "pretext", "--steps", 1, "--drives", 2, "--frames", 5,
                     "--width", 128, "--height", 64, "--recipes", "default", "previous", *common)
    assert "| default, seed 0 | 1 |" in out and "| previous, seed 0 | 1 |" in out, out[-3000:]
    out = run_script("benchmarks/bench_geopt.py", "--part", "overfit", "--overfit_steps", 1, "--overfit_width", 128,
                     "--overfit_height", 96, *common)
    assert "| default | 1 |" in out, out[-3000:]
    out = run_script("benchmarks/bench_geopt.py", "--part", "transfer", "--seeds", 0, 1, "--modes", "M",
                     "--flow_steps", 1, "--depth_steps", 1, "--drives", 2, "--frames", 6, "--video_frames", 6,
                     "--width", 128, "--height", 64, "--depth_width", 96, "--depth_height", 64,
                     "--depth_batch_size", 2, *common)
    for row in ("| 0 | geopt |", "| 1 | shuffled_sources |", "| mean ± sd |", "| gain over scratch, paired |"):
        assert row in out, out[-3000:]
