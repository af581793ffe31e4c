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
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.options import MonodepthOptions

MODE_FLAGS = {"M": [], "S": ["--use_stereo", "--frame_ids", "0"], "MS": ["--use_stereo"]}


def train_steps(trainer, steps: int, lr: float | None = None) -> dict:
    """Run ``steps`` optimisation steps in all with the training loop (``Trainer.train(max_steps=steps)``), save,
    return stats: seconds, the mean loss of the first and last 5 steps, the weights folder written.

    ``lr``: learning rate for these steps (otherwise the option's, or the one adam.pth restored on resuming).
    """
    if lr is not None:
        for group in trainer.model_optimizer.param_groups:
            group["lr"] = lr
    trainer.loss_history = []
    start = time.time()
    weights = trainer.train(max_steps=trainer.step + steps)
    losses = [float(v) for v in trainer.loss_history]
    trainer.loss_history = None
    first, last = losses[:5], losses[-5:]
    return {"seconds": time.time() - start, "first_loss": sum(first) / max(len(first), 1),
            "last_loss": sum(last) / max(len(last), 1), "weights": weights}


# A run's budget is counted in steps, so by default the learning rate is constant (no epoch-based decay), only
# step 0 is logged and only the end is saved; the arguments can set any of these.
BUDGET_DEFAULTS = {"--scheduler_step_size": "1000000", "--log_frequency": "1000000", "--num_epochs": "1000000",
                   "--save_frequency": "1000000", "--save_every_steps": "0"}


def make_trainer(args: list[str], flow: bool = False):
    """The training loop for ``train.py`` (or ``pretrain_flow.py`` with ``flow``) arguments, for a step budget
    (``BUDGET_DEFAULTS``); it replaces an earlier run of the same ``--model_name`` unless ``--resume`` is given."""
    args = [str(a) for a in args]
    for flag, value in BUDGET_DEFAULTS.items():
        if flag not in args:
            args += [flag, value]
    if "--resume" not in args and "--overwrite" not in args:
        args.append("--overwrite")  # an experiment owns its run folders: a rerun replaces them
    opt = MonodepthOptions(task="flow" if flow else "depth").parse(args)
    if flow:
        from monodepth2_geopt.flow_task import flow_trainer
        return flow_trainer(opt)
    from monodepth2_geopt.depth_task import depth_trainer
    return depth_trainer(opt)


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
                      seed: int = 0, camera_shake: float = 0.0, square_pixels: bool = False) -> tuple[Path, Path]:
    """Generate (once) a synthetic world and its test ground truth; returns (data_path, split_dir)."""
    from monodepth2_geopt.gt_depth import export_gt_depths
    from monodepth2_geopt.tools.synthetic import generate_dataset
    root = Path(root)
    split_dir = root / "splits"
    info_path = root / "synthetic_info.json"
    if (split_dir / "gt_depths.npz").exists() and info_path.is_file():  # a world made before: the one asked for?
        import json
        info = json.loads(info_path.read_text())
        want = {"width": width, "height": height, "num_drives": drives, "frames_per_drive": frames, "seed": seed,
                "camera_shake": camera_shake, "square_pixels": square_pixels}
        have = {k: info.get(k, {"camera_shake": 0.0, "square_pixels": False}.get(k)) for k in want}
        if have != want:
            differ = ", ".join(f"{k} {have[k]} (asked {want[k]})" for k in want if have[k] != want[k])
            raise InputError(f"{root} holds another synthetic world ({differ}): choose another folder or delete it")
    if not (split_dir / "gt_depths.npz").exists():
        generate_dataset(root, num_drives=drives, frames_per_drive=frames, width=width, height=height, seed=seed,
                         camera_shake=camera_shake, square_pixels=square_pixels)
        export_gt_depths(root, split_dir, "depth_png")
    return root, split_dir
