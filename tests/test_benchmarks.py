"""The benchmark scripts run end to end (CPU smoke at toy sizes; their numbers are not checked here)."""
import subprocess
import sys
from pathlib import Path

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
