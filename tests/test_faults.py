"""Faults a long run must survive: non-finite steps are skipped (never reach the weights), counted and, in a row,
stop the run with one line; a non-finite checkpoint is never written; NaN coordinates cannot crash grid_sample;
broken weights never produce a silent NaN prediction; numeric options are checked before any work."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from monodepth2_geopt import checkpoint
from monodepth2_geopt.errors import InputError, TrainingError
from monodepth2_geopt.model_loading import load_depth_model
from monodepth2_geopt.networks import DepthDecoder, ResnetEncoder
from monodepth2_geopt.options import MonodepthOptions
from monodepth2_geopt.depth_task import depth_trainer
from monodepth2_geopt.trainer import validate_run_options

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


def tiny_trainer(kitti_tiny, log_dir, *extra):
    return depth_trainer(MonodepthOptions().parse([
        "--data_path", str(kitti_tiny.root), "--split", str(kitti_tiny.split), "--png", "--num_workers", "0",
        "--no_progress", "--log_dir", str(log_dir), "--weights_init", "scratch", "--batch_size", "2",
        "--num_epochs", "1", "--height", "64", "--width", "96", "--seed", "0", *extra]))


def parameters_and_adam(trainer):
    params = {f"{k}.{n}": p.detach().clone() for k, m in trainer.models.items() for n, p in m.named_parameters()}
    adam = {i: {k: v.clone() for k, v in s.items()} for i, s in trainer.model_optimizer.state_dict()["state"].items()}
    return params, adam


def assert_unchanged(before, trainer):
    params, adam = parameters_and_adam(trainer)
    assert all(torch.equal(before[0][k], params[k]) for k in params)
    assert before[1].keys() == adam.keys()
    assert all(torch.equal(before[1][i][k], adam[i][k]) for i in adam for k in adam[i])


def nan_loss(trainer):
    """Make the trainer's loss NaN (as a bad batch would), through the real backward pass."""
    process = trainer.process_batch

    def poisoned(inputs):
        outputs, losses = process(inputs)
        losses["loss"] = losses["loss"] * float("nan")
        return outputs, losses
    trainer.process_batch = poisoned
    return process


@pytest.mark.parametrize("fault", ["nan_loss", "nan_intrinsics"])
def test_a_nonfinite_step_leaves_weights_and_adam_alone_and_is_counted(fault, kitti_tiny, tmp_path):
    trainer = tiny_trainer(kitti_tiny, tmp_path)
    trainer.set_train()
    batch = next(iter(trainer.train_loader))
    trainer.train_step(batch)  # a good step first, so that Adam has state to protect
    before = parameters_and_adam(trainer)
    if fault == "nan_loss":
        good = nan_loss(trainer)
        bad_batch = batch
    else:  # non-finite intrinsics: NaN pixel coordinates through grid_sample (which crashed the CPU backward)
        good = trainer.process_batch
        bad_batch = dict(batch, K=batch["K"] * float("nan"))
    trainer.train_step(bad_batch)
    assert_unchanged(before, trainer)
    assert int(trainer.nonfinite_total) == 1 and int(trainer.nonfinite_streak) == 1
    trainer.process_batch = good
    trainer.train_step(batch)  # the next good step updates again and ends the streak
    assert not torch.equal(before[0]["depth.decoder.0.conv.conv.weight"],
                           trainer.models["depth"].decoder[0].conv.conv.weight)
    assert int(trainer.nonfinite_total) == 1 and int(trainer.nonfinite_streak) == 0


def test_nonfinite_steps_in_a_row_stop_the_run_with_one_line(kitti_tiny, tmp_path):
    trainer = tiny_trainer(kitti_tiny, tmp_path, "--max_nonfinite_steps", "3")
    trainer.set_train()
    batch = next(iter(trainer.train_loader))
    nan_loss(trainer)
    for _ in range(2):
        trainer.train_step(batch)
    with pytest.raises(TrainingError) as err:
        trainer.train_step(batch)
    message = str(err.value)
    assert "\n" not in message and "3 steps in a row" in message and "--learning_rate" in message


def test_a_checkpoint_with_a_nonfinite_tensor_is_never_written(tmp_path):
    torch.manual_seed(0)
    models = {"encoder": nn.Linear(3, 2), "depth": nn.Conv2d(2, 1, 1)}
    folder = checkpoint.save_weights_folder(tmp_path / "weights_0", models)
    good = torch.load(folder / "depth.pth", weights_only=True)
    with torch.no_grad():
        models["depth"].weight[0, 0] = float("inf")
    with pytest.raises(TrainingError, match=r"depth\.weight holds non-finite values"):
        checkpoint.save_weights_folder(folder, models)
    kept = torch.load(folder / "depth.pth", weights_only=True)
    assert all(torch.equal(good[k], kept[k]) for k in good)  # the previous checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights_0"]  # and no temporary folder is left


def test_nonfinite_pixel_coordinates_cannot_crash_grid_sample():
    """In a subprocess: NaN coordinates with border padding crash PyTorch's CPU grid_sample backward (exit 139)."""
    code = textwrap.dedent("""
        import torch
        from monodepth2_geopt.geometry import sample
        image = torch.rand(2, 3, 48, 160, requires_grad=True)
        pix = torch.rand(2, 48, 160, 2) * 40
        pix[0, :10] = float("nan")
        pix[1, :, :5, 0] = float("inf")
        pix.requires_grad_(True)
        out = sample(image, pix)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(image.grad).all()
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "ok" in run.stdout, (run.returncode, run.stderr[-1500:])


def test_broken_weights_give_an_error_not_a_nan_depth_map(tmp_path):
    torch.manual_seed(0)
    encoder = ResnetEncoder(18, False)
    folder = checkpoint.save_weights_folder(tmp_path / "weights_0",
                                            {"encoder": encoder, "depth": DepthDecoder(encoder.num_ch_enc)},
                                            encoder_meta={"height": 64, "width": 64, "use_stereo": False})
    state = torch.load(folder / "depth.pth", weights_only=True)
    state["decoder.10.conv.weight"] = torch.full_like(state["decoder.10.conv.weight"], float("nan"))  # a diverged run
    torch.save(state, folder / "depth.pth")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="non-finite values"):
        load_depth_model(folder).infer_image(image)


@pytest.mark.parametrize("flag, value", [("--learning_rate", "inf"), ("--learning_rate", "nan"),
                                         ("--learning_rate", "-1"), ("--batch_size", "0"), ("--num_epochs", "0"),
                                         ("--num_workers", "-1"), ("--log_frequency", "0"),
                                         ("--max_nonfinite_steps", "0")])
def test_numeric_options_are_refused_before_any_work(flag, value):
    for task in ("depth", "flow"):  # the loop checks them for every task, before the task's own checks
        opt = MonodepthOptions(task=task).parse(["--data_path", "/nonexistent", flag, value])
        with pytest.raises(InputError, match=rf"^{flag} {value}(\.0)?: must be"):
            validate_run_options(opt)
