"""The speed options do not change the training result, and the speed benchmark runs (CPU smoke)."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from monodepth2_geopt.experiments import MODE_FLAGS, evaluate_weights, make_trainer, prepare_synthetic, train_steps

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return prepare_synthetic(tmp_path_factory.mktemp("world"), 160, 64, drives=2, frames=30, seed=0)


def abs_rel_after(world, tmp_path, name, flags, steps=150):
    data, split = world
    torch.manual_seed(0)
    trainer = make_trainer(["--data_path", data, "--png", "--split", split, "--height", 64, "--width", 160,
                            "--batch_size", 4, "--num_workers", 0, "--weights_init", "scratch", "--no_progress",
                            "--log_dir", tmp_path, "--model_name", name, "--seed", 0, "--learning_rate", "2e-4",
                            "--no_cuda", *MODE_FLAGS["S"], *flags])
    stats = train_steps(trainer, steps)
    return evaluate_weights(stats["weights"], data, split, stereo=True)["abs_rel"]


def test_default_speed_options_keep_the_result(world, tmp_path):
    """channels_last (on by default for CUDA) must not change what training learns.

    The issue's target is 2% at full size. At this 150-step CPU budget the run is chaotic: channels_last alone
    (different conv kernels, same maths) measured 0.238 against fp32's 0.248 (4%), so the bound here is 10%,
    which still catches a broken memory-format path. bf16 autocast is opt-in (--amp bf16): in this check it gave
    0.431, so it is not a default until it is verified at full size on a GPU.
    """
    plain = abs_rel_after(world, tmp_path, "fp32", ["--amp", "off", "--channels_last", "off"])
    fast = abs_rel_after(world, tmp_path, "fast", ["--amp", "off", "--channels_last", "on"])
    assert abs(fast - plain) <= 0.10 * plain, f"abs_rel fp32 {plain:.4f} vs channels_last {fast:.4f}"


def test_speed_benchmark_smoke():
    proc = subprocess.run([sys.executable, "benchmarks/bench_speed.py", "--quick", "--modes", "M", "flow",
                           "--no_ablation"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| M |" in proc.stdout and "| flow |" in proc.stdout
