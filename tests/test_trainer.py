"""Trainer on the tiny synthetic KITTI tree: M / S / MS runs, pose variants, ablations, LR schedule, resume."""
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from monodepth2_geopt.datasets import mono_dataset
from monodepth2_geopt import checkpoint
from monodepth2_geopt.batch import prepare_batch
from monodepth2_geopt.geometry import disp_to_depth
from monodepth2_geopt.model_loading import load_depth_model
from monodepth2_geopt.options import MonodepthOptions
from monodepth2_geopt.depth_task import depth_trainer
from tests.conftest import write_split

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


def base_args(kitti_tiny, log_dir, *extra):
    return ["--data_path", str(kitti_tiny.root), "--split", str(kitti_tiny.split), "--png",
            "--num_workers", "0", "--no_progress", "--log_dir", str(log_dir), "--weights_init", "scratch",
            "--batch_size", "2", "--num_epochs", "1", "--height", "64", "--width", "96", "--seed", "0",
            *extra]


def make_trainer(kitti_tiny, log_dir, *extra):
    return depth_trainer(MonodepthOptions().parse(base_args(kitti_tiny, log_dir, *extra)))


def first_batch(trainer, augment=True):
    batch = next(iter(trainer.train_loader))
    return prepare_batch(batch, trainer.device, 4, augment=augment, generator=trainer.aug_generator)


def one_step(trainer):
    """One optimisation step as train() does it; checks the loss and that every trainable tensor learns."""
    trainer.set_train()
    inputs = first_batch(trainer)
    outputs, losses = trainer.process_batch(inputs)
    assert math.isfinite(losses["loss"].item()) and losses["loss"].item() > 0
    trainer.model_optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    for name, model in trainer.models.items():
        for pname, p in model.named_parameters():
            if p.requires_grad:
                assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}.{pname} got no gradient"
            else:
                assert pname.startswith("encoder.fc."), f"{name}.{pname} is frozen"
    before = {k: v.detach().clone() for k, v in trainer.models["depth"].state_dict().items()}
    trainer.model_optimizer.step()
    after = trainer.models["depth"].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    return inputs, outputs, losses


def models_dir(log_dir, name="mdp"):
    return log_dir / name / "models"


@pytest.fixture(scope="module")
def mono_run(kitti_tiny, tmp_path_factory):
    """A complete one-epoch M run (default frames 0 -1 1, separate_resnet pose)."""
    log_dir = tmp_path_factory.mktemp("mono_run")
    trainer = make_trainer(kitti_tiny, log_dir)
    trainer.train()
    return log_dir, trainer


# --- complete runs write loadable checkpoints ----------------------------------------------------

def test_mono_run_writes_monodepth2_checkpoint(mono_run):
    log_dir, trainer = mono_run
    folder = models_dir(log_dir) / "weights_0"
    assert sorted(p.name for p in folder.iterdir()) == ["adam.pth", "depth.pth", "encoder.pth", "pose.pth",
                                                         "pose_encoder.pth", "trainer_state.pth"]  # + --resume's
    model = load_depth_model(folder)
    assert model.meta == {"height": 64, "width": 96, "use_stereo": False, "num_layers": 18}
    for name in ("pose_encoder", "pose"):
        checkpoint.load_into(trainer.models[name], folder / f"{name}.pth", name)  # strict
    with torch.no_grad():
        disp = model(torch.rand(1, 3, 64, 96))
    assert disp.shape == (1, 1, 64, 96)
    opt = json.loads((models_dir(log_dir) / "opt.json").read_text())
    assert opt["frame_ids"] == [0, -1, 1] and opt["height"] == 64 and opt["use_stereo"] is False
    assert (log_dir / "mdp" / "train").is_dir() and any((log_dir / "mdp" / "train").iterdir())
    assert any((log_dir / "mdp" / "val").iterdir())  # one validation batch was logged


def test_stereo_only_run(kitti_tiny, tmp_path):
    trainer = make_trainer(kitti_tiny, tmp_path, "--use_stereo", "--frame_ids", "0")
    assert not trainer.task.use_pose_net and trainer.task.frame_ids == [0, "s"]
    assert set(trainer.models) == {"encoder", "depth"}
    trainer.train()
    folder = models_dir(tmp_path) / "weights_0"
    assert sorted(p.name for p in folder.iterdir()) == ["adam.pth", "depth.pth", "encoder.pth", "trainer_state.pth"]
    assert load_depth_model(folder).use_stereo is True
    opt = json.loads((models_dir(tmp_path) / "opt.json").read_text())
    assert opt["frame_ids"] == [0] and opt["use_stereo"] is True


def test_mono_plus_stereo_run(kitti_tiny, tmp_path):
    trainer = make_trainer(kitti_tiny, tmp_path, "--use_stereo")
    assert trainer.task.frame_ids == [0, -1, 1, "s"] and trainer.opt.frame_ids == [0, -1, 1]  # options not mutated
    trainer.train()
    folder = models_dir(tmp_path) / "weights_0"
    written = {p.name for p in folder.iterdir()}
    assert {"encoder.pth", "depth.pth", "pose_encoder.pth", "pose.pth", "adam.pth"} <= written
    load_depth_model(folder)
    opt = json.loads((models_dir(tmp_path) / "opt.json").read_text())
    assert opt["frame_ids"] == [0, -1, 1] and opt["derived"]["frame_ids"] == [0, -1, 1, "s"]


def test_custom_intrinsics_and_baseline_reach_the_batch(kitti_tiny, tmp_path):
    trainer = make_trainer(kitti_tiny, tmp_path, "--use_stereo", "--intrinsics", "0.6", "1.8", "0.5", "0.5",
                           "--stereo_baseline", "0.54")
    inputs = first_batch(trainer, augment=False)
    torch.testing.assert_close(inputs[("K", 1)][:, 0, 0], torch.full((2,), 0.6 * 48))
    torch.testing.assert_close(inputs[("K", 1)][:, 1, 1], torch.full((2,), 1.8 * 32))
    assert sorted(inputs["stereo_T"][:, 0, 3].abs().tolist()) == pytest.approx([0.54, 0.54])


# --- pose models and ablations: one step each -----------------------------------------------------

@pytest.mark.parametrize("extra", [
    ["--pose_model_type", "shared"],
    ["--pose_model_type", "posecnn"],
    ["--pose_model_input", "all"],
    ["--pose_model_input", "all", "--pose_model_type", "shared"],
    ["--pose_model_input", "all", "--pose_model_type", "posecnn"],
], ids=["shared", "posecnn", "all", "all-shared", "all-posecnn"])
def test_pose_variants_one_step(kitti_tiny, tmp_path, extra):
    trainer = make_trainer(kitti_tiny, tmp_path, *extra)
    _, outputs, _ = one_step(trainer)
    for f in (-1, 1):
        T = outputs[("cam_T_cam", 0, f)]
        assert T.shape == (2, 4, 4)
        torch.testing.assert_close(T[:, 3], torch.tensor([0.0, 0, 0, 1]).expand(2, 4))
        assert outputs[("color", f, 0)].shape == (2, 3, 64, 96)


def test_all_mode_with_three_source_frames(kitti_tiny, tmp_path):
    """--pose_model_input all with frames 0 -1 1 2: the separate_resnet pose decoder predicts 3 poses.

    (Monodepth2 hard-codes 2 predicted frames there, which raised IndexError for a third source frame.)
    """
    # (--skip_missing: a validation line of the tiny tree has no frame +2)
    trainer = make_trainer(kitti_tiny, tmp_path, "--frame_ids", "0", "-1", "1", "2", "--pose_model_input", "all",
                           "--skip_missing")
    assert trainer.models["pose_encoder"].encoder.conv1.weight.shape[1] == 12
    _, outputs, _ = one_step(trainer)
    for f in (-1, 1, 2):
        assert outputs[("cam_T_cam", 0, f)].shape == (2, 4, 4)
        assert outputs[("color", f, 0)].shape == (2, 3, 64, 96)


def test_separate_resnet_pairs_feed_frames_in_temporal_order(kitti_tiny, tmp_path):
    """Frame -1 is fed as [-1, 0] and its transform inverted; frame 1 as [0, 1]."""
    trainer = make_trainer(kitti_tiny, tmp_path)
    trainer.set_eval()
    inputs = first_batch(trainer, augment=False)
    seen = []
    orig = trainer.nets["pose_encoder"].forward
    trainer.nets["pose_encoder"].forward = lambda x: (seen.append(x), orig(x))[1]
    with torch.no_grad():
        outputs = trainer.task.predict_poses(trainer.nets, inputs, {})
    c = {f: inputs[("color_aug", f, 0)] for f in (0, -1, 1)}
    assert torch.equal(seen[0], torch.cat([c[-1], c[0]], 1))
    assert torch.equal(seen[1], torch.cat([c[0], c[1]], 1))
    from monodepth2_geopt.geometry import transformation_from_parameters
    aa, t = outputs[("axisangle", 0, -1)], outputs[("translation", 0, -1)]
    torch.testing.assert_close(outputs[("cam_T_cam", 0, -1)],
                               transformation_from_parameters(aa[:, 0], t[:, 0], invert=True))


@pytest.mark.parametrize("extra", [
    ["--predictive_mask", "--disable_automasking"],
    ["--v1_multiscale"],
    ["--avg_reprojection"],
    ["--no_ssim"],
    ["--disable_automasking"],
    ["--use_stereo", "--pose_model_type", "shared", "--scales", "0", "2"],
], ids=["predictive_mask", "v1_multiscale", "avg_reprojection", "no_ssim", "no_automask", "ms-shared-scales"])
def test_ablations_one_step(kitti_tiny, tmp_path, extra):
    trainer = make_trainer(kitti_tiny, tmp_path, *extra)
    _, outputs, losses = one_step(trainer)
    scales = trainer.opt.scales
    assert sorted(k for k in losses if k.startswith("loss/")) == [f"loss/{s}" for s in scales]
    for s in scales:
        size = (64 // 2 ** s, 96 // 2 ** s) if "--v1_multiscale" in extra else (64, 96)
        assert outputs[("color", -1, s)].shape[-2:] == size
        assert outputs[("depth", 0, s)].shape[-2:] == size
        if "--disable_automasking" in extra:
            assert f"identity_selection/{s}" not in outputs
        else:
            assert outputs[f"identity_selection/{s}"].shape == (2, *size)
    if "--predictive_mask" in extra:
        assert "predictive_mask" in trainer.models
        assert outputs[("predictive_mask", "disp", 0)].shape == (2, 2, 64, 96)  # one channel per source frame


def test_automask_warmup_switches_auto_masking_on_at_the_given_step(kitti_tiny, tmp_path):
    """Before --automask_warmup steps the loss is the unmasked one (identical to --disable_automasking), from
    that step on it is Monodepth2's auto-masked one (never larger: a per-pixel min with one more candidate)."""
    trainer = make_trainer(kitti_tiny, tmp_path, "--automask_warmup", "3")
    plain = make_trainer(kitti_tiny, tmp_path / "plain", "--disable_automasking")
    for name, model in plain.models.items():
        model.load_state_dict(trainer.models[name].state_dict())
    trainer.set_eval()
    plain.set_eval()
    inputs = first_batch(trainer, augment=False)
    with torch.no_grad():
        losses = {}
        for step in (0, 2, 3, 10):
            trainer.step = step
            outputs, out_losses = trainer.process_batch(inputs)
            losses[step] = out_losses["loss"].item()
            assert ("identity_selection/0" in outputs) == (step >= 3), step
        unmasked = plain.process_batch(inputs)[1]["loss"].item()
    assert losses[0] == pytest.approx(unmasked, rel=1e-6) and losses[2] == pytest.approx(unmasked, rel=1e-6)
    assert losses[3] == pytest.approx(losses[10], rel=1e-4)
    assert losses[3] < losses[0]


def test_init_depth_sets_the_untrained_depth(kitti_tiny, tmp_path):
    """--init_depth D: with the heads' weights zeroed the depth is exactly D at every pixel and scale (the bias
    alone); with their random weights it is D at the median. Without it, Monodepth2's start: about 0.2."""
    def depths(trainer):
        inputs = first_batch(trainer, augment=False)
        with torch.no_grad():
            disps = trainer.models["depth"](trainer.models["encoder"](inputs[("color_aug", 0, 0)]))
        return [disp_to_depth(d, 0.1, 100.0)[1] for d in disps.values()]

    trainer = make_trainer(kitti_tiny, tmp_path, "--init_depth", "2.0")
    median = torch.cat([d.flatten() for d in depths(trainer)]).median().item()
    assert median == pytest.approx(2.0, rel=0.1)
    for s in range(4):
        trainer.models["depth"].decoder[10 + s].conv.weight.data.zero_()
    for d in depths(trainer):
        torch.testing.assert_close(d, torch.full_like(d, 2.0), rtol=1e-5, atol=0)
    default = make_trainer(kitti_tiny, tmp_path, "--model_name", "default")
    median = torch.cat([d.flatten() for d in depths(default)]).median().item()
    assert median == pytest.approx(0.2, rel=0.3)  # Monodepth2's start: about 2 x --min_depth


def test_true_depth_and_pose_reproduce_the_target_through_the_trainer(kitti_tiny, tmp_path, monkeypatch):
    """Dataset -> prepare_batch -> generate_images_pred sign chain on the planar scene (MS, random flips).

    Frame k's camera sits at x = k * t_x, so target->source is T[0, 3] = -k * t_x (sign reversed for a
    mirrored sample); the stereo frame uses the dataset's stereo_T as is.
    """
    trainer = make_trainer(kitti_tiny, tmp_path, "--use_stereo")
    coin = itertools.cycle([0.9, 0.1])  # the dataset flips when random() > 0.5: one mirrored sample, one not
    monkeypatch.setattr(mono_dataset.random, "random", lambda: next(coin))
    inputs = first_batch(trainer, augment=False)
    assert sorted(inputs["flip"].tolist()) == [False, True]
    d, (min_d, max_d) = kitti_tiny.depth, (trainer.opt.min_depth, trainer.opt.max_depth)
    disp = (1 / d - 1 / max_d) / (1 / min_d - 1 / max_d)   # inverse of disp_to_depth
    outputs = {("disp", s): torch.full((2, 1, 64 // 2 ** s, 96 // 2 ** s), disp) for s in range(4)}
    flip_sign = 1 - 2 * inputs["flip"].float()
    for f in (-1, 1):
        T = torch.eye(4).repeat(2, 1, 1)
        T[:, 0, 3] = -f * kitti_tiny.t_x * flip_sign
        outputs[("cam_T_cam", 0, f)] = T
    trainer.task.generate_images_pred(inputs, outputs)
    torch.testing.assert_close(outputs[("depth", 0, 0)], torch.full((2, 1, 64, 96), d))
    target = inputs[("color", 0, 0)]
    margin = math.ceil(0.58 * 96 * kitti_tiny.t_x / d) + 1
    for f in (-1, 1, "s"):
        for s in range(4):  # every scale's depth is upsampled to full resolution and warps full-res frames
            err = (outputs[("color", f, s)] - target)[..., margin:-margin].abs()
            assert err.max() < 0.03, (f, s, err.max())
        naive = (inputs[("color", f, 0)] - target)[..., margin:-margin].abs().mean()
        assert naive > 5 * err.mean(), f
    losses = trainer.task.compute_losses(inputs, outputs, trainer.step)
    assert losses["loss"].item() < 0.05


def test_loss_decreases_on_a_fixed_batch(kitti_tiny, tmp_path):
    """Six Adam steps at the default LR on one batch of the planar scene (seeded): the loss falls by half.

    Observed with --seed 0: 0.278, 0.258, 0.230, 0.190, 0.140, 0.083.
    """
    trainer = make_trainer(kitti_tiny, tmp_path)
    trainer.set_train()
    inputs = first_batch(trainer, augment=False)
    losses = []
    for _ in range(6):
        _, out = trainer.process_batch(inputs)
        trainer.model_optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        trainer.model_optimizer.step()
        losses.append(out["loss"].item())
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < 0.5 * first, losses
    assert all(math.isfinite(x) for x in losses)


# --- schedule, resume ----------------------------------------------------------------------------

def test_lr_schedule_keeps_step_size_epochs_at_initial_rate(kitti_tiny, tmp_path, monkeypatch):
    trainer = make_trainer(kitti_tiny, tmp_path, "--num_epochs", "5", "--scheduler_step_size", "3",
                           "--learning_rate", "2e-4")
    lrs = []
    def fake_epoch(max_steps):  # record the LR the epoch trains with; an (empty) optimiser step as in a real epoch
        lrs.append(trainer.model_optimizer.param_groups[0]["lr"])
        trainer.model_optimizer.step()
        return True

    monkeypatch.setattr(trainer, "run_epoch", fake_epoch)
    monkeypatch.setattr(trainer, "save_model", lambda *a, **k: None)
    trainer.train()
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4, 2e-5, 2e-5])


def test_resume_encoder_and_depth_only(mono_run, kitti_tiny, tmp_path):
    log_dir, _ = mono_run
    folder = models_dir(log_dir) / "weights_0"
    trainer = make_trainer(kitti_tiny, tmp_path, "--load_weights_folder", str(folder),
                           "--models_to_load", "encoder", "depth", "--seed", "1")
    for name in ("encoder", "depth"):
        saved, _ = checkpoint.load_state_file(folder / f"{name}.pth")
        own = trainer.models[name].state_dict()
        assert own.keys() == saved.keys()
        for k in own:
            assert torch.equal(own[k], saved[k]), f"{name}.{k}"
    saved_pose, _ = checkpoint.load_state_file(folder / "pose_encoder.pth")
    own_pose = trainer.models["pose_encoder"].state_dict()
    assert not torch.equal(own_pose["encoder.conv1.weight"], saved_pose["encoder.conv1.weight"])
    # the resumed run trains on
    one_step(trainer)


# --- the README's CPU smoke run on real KITTI frames ---------------------------------------------

@pytest.mark.slow
def test_cpu_smoke_run_on_real_kitti_frames(kitti_raw_mini, tmp_path):
    """python train.py --data_path ../shared/data/kitti_raw_mini --png --split <split> --height 96 --width 320
    --batch_size 2 --num_epochs 1 --weights_init scratch --num_workers 0 (plus --log_dir into tmp_path): the
    README's smoke run (on the synthetic world, which a clone can make) through the real-KITTI reading path."""
    drive = "2011_09_26/2011_09_26_drive_SFND_sync"
    split = write_split(tmp_path / "split", [f"{drive} {i} l" for i in (1, 2, 3)], [f"{drive} {i} l" for i in (2, 3)])
    args = ["--data_path", str(kitti_raw_mini), "--png", "--split", str(split), "--height", "96", "--width", "320",
            "--batch_size", "2", "--num_epochs", "1", "--weights_init", "scratch", "--num_workers", "0",
            "--log_dir", str(tmp_path / "log"), "--no_progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", TORCH_HOME=str(tmp_path / "torch_home"))
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    folder = tmp_path / "log" / "mdp" / "models" / "weights_0"
    model = load_depth_model(folder)
    assert model.meta == {"height": 96, "width": 320, "use_stereo": False, "num_layers": 18}
    for name in ("pose_encoder", "pose"):
        assert (folder / f"{name}.pth").is_file()
    with torch.no_grad():
        disp = model(torch.rand(1, 3, 96, 320))
    assert disp.shape == (1, 1, 96, 320) and torch.isfinite(disp).all()


def test_the_logged_time_left_counts_to_where_the_call_stops_not_to_num_epochs():
    """train(max_steps=200) on a run of --num_epochs 1000000 (tools.experiments' budget): 100 steps done in 600 s,
    100 to go -> 10 minutes left (it printed thousands of hours, counting to the end of --num_epochs)."""
    import time
    from types import SimpleNamespace

    from monodepth2_geopt.trainer import Trainer
    lines = []
    loop = SimpleNamespace(step=100, start_step=0, end_step=200, num_total_steps=63_000_000, epoch=1,
                           start_time=time.time() - 600, opt=SimpleNamespace(batch_size=4),
                           dist=SimpleNamespace(world_size=1), log=lines.append)
    Trainer.log_time(loop, 36, 0.25, 0.125)
    assert "time left: 00h10m00s" in lines[0] and "seen 400" in lines[0], lines[0]
