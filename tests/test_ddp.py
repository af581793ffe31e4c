"""torchrun + DDP on the CPU (gloo, 2 processes): training runs, rank 0 saves, the checkpoint loads alone."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monodepth2_geopt import networks
from monodepth2_geopt import checkpoint

pytestmark = pytest.mark.slow  # two torchrun processes

ROOT = Path(__file__).resolve().parents[1]


def write_tiny_kitti(root: Path, frames: int = 8, size=(96, 64)) -> Path:
    rng = np.random.default_rng(0)
    drive = root / "2011_09_26" / "2011_09_26_drive_0001_sync" / "image_02" / "data"
    drive.mkdir(parents=True)
    base = rng.integers(0, 255, (size[1], size[0] + frames * 2, 3), dtype=np.uint8)
    for i in range(frames):
        Image.fromarray(base[:, 2 * i:2 * i + size[0]]).save(drive / f"{i:010d}.png")
    lines = [f"2011_09_26/2011_09_26_drive_0001_sync {i} l" for i in range(1, frames - 1)]
    split = root / "split"
    split.mkdir()
    (split / "train_files.txt").write_text("\n".join(lines) + "\n")
    (split / "val_files.txt").write_text("\n".join(lines[:2]) + "\n")
    return split



def test_torchrun_two_processes_gloo(tmp_path):
    split = write_tiny_kitti(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           str(ROOT / "train.py"), "--data_path", str(tmp_path), "--png", "--split", str(split),
           "--height", "64", "--width", "96", "--batch_size", "1", "--num_epochs", "1", "--weights_init", "scratch",
           "--num_workers", "0", "--no_cuda", "--log_dir", str(tmp_path / "runs"), "--model_name", "ddp",
           "--no_progress", "--seed", "0"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout + proc.stderr
    folder = tmp_path / "runs" / "ddp" / "models" / "weights_0"
    # Saved once, by rank 0, without DDP's "module." prefix: loads strictly into plain single-GPU networks.
    encoder = networks.ResnetEncoder(18, False)
    meta = checkpoint.load_into(encoder, folder / "encoder.pth", "encoder")
    assert meta["height"] == 64 and meta["width"] == 96
    depth = networks.DepthDecoder(encoder.num_ch_enc)
    checkpoint.load_into(depth, folder / "depth.pth", "depth")
    state = torch.load(folder / "encoder.pth", weights_only=True)
    assert not any(k.startswith("module.") for k in state)
