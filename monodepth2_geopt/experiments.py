"""Fixed-budget training runs and their evaluation, shared by the accuracy tests and benchmarks.

A run is a list of ``train.py`` / ``pretrain_flow.py`` arguments plus a budget in optimisation steps (not
epochs), so results at tiny and full sizes are comparable across modes and machines.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from monodepth2_geopt import checkpoint
from monodepth2_geopt.options import MonodepthOptions

MODE_FLAGS = {"M": [], "S": ["--use_stereo", "--frame_ids", "0"], "MS": ["--use_stereo"]}


def _batches(loader):
    while True:
        for batch in loader:
            yield batch


def train_steps(trainer, steps: int, lr: float | None = None) -> dict:
    """Run ``steps`` optimisation steps of a Trainer/FlowTrainer (cycling its loader); save; return stats.

    ``lr``: learning rate for these steps (otherwise the option's, or the one adam.pth restored on resuming).
    """
    if lr is not None:
        for group in trainer.model_optimizer.param_groups:
            group["lr"] = lr
    trainer.set_train()
    batches = _batches(trainer.train_loader)
    first, last = [], []
    start = time.time()
    for i in range(steps):
        _, _, losses = trainer.train_step(next(batches))
        if i < 5:
            first.append(float(losses["loss"].detach()))
        if i >= steps - 5:
            last.append(float(losses["loss"].detach()))
        trainer.step += 1
    trainer.model_lr_scheduler.step()
    trainer.epoch = 0
    trainer.save_model()
    return {"seconds": time.time() - start, "first_loss": sum(first) / max(len(first), 1),
            "last_loss": sum(last) / max(len(last), 1),
            "weights": Path(trainer.log_path) / "models" / "weights_0"}


def make_trainer(args: list[str], flow: bool = False):
    opt = MonodepthOptions(task="flow" if flow else "depth").parse([str(a) for a in args])
    if flow:
        from monodepth2_geopt.flow_trainer import FlowTrainer
        trainer = FlowTrainer(opt)
    else:
        from monodepth2_geopt.trainer import Trainer
        trainer = Trainer(opt)
    trainer.step, trainer.epoch = 0, 0
    return trainer


def save_initial(trainer, folder: str | os.PathLike) -> Path:
    """Save a trainer's current (e.g. untrained) depth networks as a weights folder."""
    return checkpoint.save_weights_folder(folder, {k: trainer.models[k] for k in ("encoder", "depth")},
                                          encoder_meta=trainer.encoder_meta())


def evaluate_weights(weights: str | os.PathLike, data_path: str | os.PathLike, split_dir: str | os.PathLike,
                     stereo: bool = False, png: bool = True) -> dict:
    """Depth metrics of a weights folder on ``<split_dir>/test_files.txt`` against its gt_depths.npz.

    ``stereo``: metric evaluation (x5.4 for a 0.1-baseline model, no median scaling); otherwise per-image
    median scaling (the mono protocol).
    """
    from monodepth2_geopt.evaluation import evaluate
    args = ["--load_weights_folder", str(weights), "--eval_split", str(split_dir), "--data_path", str(data_path),
            "--num_workers", "0", "--eval_stereo" if stereo else "--eval_mono"]
    if png:
        args.append("--png")
    if not torch.cuda.is_available():
        args.append("--no_cuda")
    return evaluate(MonodepthOptions().parse(args), log=lambda *a, **k: None)


def prepare_synthetic(root: str | os.PathLike, width: int, height: int, drives: int, frames: int,
                      seed: int = 0) -> tuple[Path, Path]:
    """Generate (once) a synthetic world and its test ground truth; returns (data_path, split_dir)."""
    from monodepth2_geopt.gt_depth import export_gt_depths
    from monodepth2_geopt.synthetic import generate_dataset
    root = Path(root)
    split_dir = root / "splits"
    if not (split_dir / "gt_depths.npz").exists():
        generate_dataset(root, num_drives=drives, frames_per_drive=frames, width=width, height=height, seed=seed)
        export_gt_depths(root, split_dir, "depth_png")
    return root, split_dir
