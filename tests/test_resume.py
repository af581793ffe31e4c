"""Exact resume, run-folder protection and interrupted saves (issue 13): the training loop of train.py and
pretrain_flow.py alike.

The acceptance test kills ``train.py`` with SIGKILL at a random step and resumes it with ``--resume last``: its
final weights must be bit-identical to an uninterrupted run (CPU, fixed seed, --num_workers 0), and the learning
rate per step the same.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from monodepth2_geopt import checkpoint
from monodepth2_geopt.depth_task import depth_trainer
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.tools.experiments import prepare_synthetic
from monodepth2_geopt.flow_task import flow_trainer
from monodepth2_geopt.options import MonodepthOptions

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 7  # 14 training frames of the world below, batch 2


@pytest.fixture(autouse=True)
def _free_the_checkpoints(tmp_path):
    """Each test here writes several ResNet-18 checkpoint folders (~0.3 GB each): delete them when it passes."""
    yield
    import shutil
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """2 drives x 10 frames at 96x64: 14 training items, 2 validation items (with GT), a test drive."""
    return prepare_synthetic(tmp_path_factory.mktemp("resume_world"), 96, 64, drives=2, frames=10, seed=0)


def depth_args(world, log_dir, *extra) -> list[str]:
    data, split = world
    return ["--data_path", str(data), "--split", str(split), "--png", "--height", "64", "--width", "96",
            "--batch_size", "2", "--num_workers", "0", "--weights_init", "scratch", "--no_progress", "--seed", "0",
            "--log_dir", str(log_dir), "--no_cuda", "--num_epochs", "2", "--log_frequency", "4",
            "--save_every_steps", "3", *[str(e) for e in extra]]


def flow_args(world, log_dir, *extra) -> list[str]:
    data, _ = world
    return ["--data_path", str(data), "--height", "64", "--width", "96", "--batch_size", "2", "--num_workers", "0",
            "--no_progress", "--seed", "0", "--log_dir", str(log_dir), "--no_cuda", "--num_epochs", "2",
            "--log_frequency", "4", "--save_every_steps", "3", "--frame_ids", "0", "-1", "1", "--scales", "0", "1",
            *[str(e) for e in extra]]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return checkpoint.folder_tensors(folder)


def assert_bit_identical(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and len(wa) > 100
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def run_in_process(make, args, max_steps=None):
    opt = MonodepthOptions(task="flow" if make is flow_trainer else "depth").parse(args)
    trainer = make(opt)
    trainer.train(max_steps=max_steps, save_at_stop=False)
    return trainer


# ---------------------------------------------------------------------------------------------------- in process
@pytest.mark.parametrize("make,stop,epochs", [
    pytest.param(depth_trainer, 4, 1, marks=pytest.mark.slow),
    pytest.param(depth_trainer, 5, 2, marks=pytest.mark.slow),
    pytest.param(depth_trainer, STEPS_PER_EPOCH, 2, marks=pytest.mark.slow),
    pytest.param(flow_trainer, 4, 2, marks=pytest.mark.slow)],
    ids=["depth-mid-epoch", "depth-mid-epoch-then-next-epoch", "depth-epoch-boundary", "flow-mid-epoch"])
def test_resume_continues_bit_for_bit(world, tmp_path, make, stop, epochs):
    """A run stopped after ``stop`` steps (models/last written there) and resumed in a new Trainer ends with the
    same weights and Adam state, bit for bit, as the run that never stopped; the LR schedule is the same."""
    args = flow_args if make is flow_trainer else depth_args
    common = ["--model_name", "run", "--num_epochs", epochs]
    full = run_in_process(make, args(world, tmp_path / "full", *common))
    stopped = run_in_process(make, args(world, tmp_path / "cut", *common, "--save_every_steps", stop), max_steps=stop)
    assert stopped.step == stop
    del stopped
    torch.manual_seed(1234)  # the resumed run must not depend on the RNG state it starts in
    resumed = run_in_process(make, args(world, tmp_path / "cut", *common, "--save_every_steps", stop, "--resume",
                                        "last"))
    assert resumed.step == full.step == epochs * full.num_steps_per_epoch
    assert resumed.model_lr_scheduler.state_dict() == full.model_lr_scheduler.state_dict()
    last = f"weights_{epochs - 1}"
    assert_bit_identical(tmp_path / "full/run/models" / last, tmp_path / "cut/run/models" / last)


@pytest.mark.slow
def test_negative_control_a_fresh_start_is_not_identical(world, tmp_path):
    """The comparison above can fail: restarting from the same weights without the trainer state (a new RNG and
    data order, Monodepth2's --load_weights_folder) does not reproduce the uninterrupted run."""
    run_in_process(depth_trainer, depth_args(world, tmp_path / "full", "--model_name", "run"))
    run_in_process(depth_trainer, depth_args(world, tmp_path / "cut", "--model_name", "run", "--num_epochs", "1"))
    run_in_process(depth_trainer, depth_args(world, tmp_path / "cut", "--model_name", "again", "--num_epochs", "1",
                                             "--load_weights_folder", tmp_path / "cut/run/models/weights_0"))
    wa, wb = weights(tmp_path / "full/run/models/weights_1"), weights(tmp_path / "cut/again/models/weights_0")
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_lr_per_step_matches_after_resume_across_the_schedule_step(world, tmp_path):
    """--scheduler_step_size 1: the LR drops after epoch 0; a run resumed mid-epoch 1 trains at the dropped LR,
    as the uninterrupted run does (Monodepth2's StepLR rebuilt from scratch would restart at the initial LR)."""
    extra = ["--model_name", "run", "--scheduler_step_size", "1", "--learning_rate", "1e-4", "--save_every_steps", "10"]
    full = run_in_process(depth_trainer, depth_args(world, tmp_path / "a", *extra))
    run_in_process(depth_trainer, depth_args(world, tmp_path / "b", *extra), max_steps=STEPS_PER_EPOCH + 3)
    resumed = depth_trainer(MonodepthOptions().parse(depth_args(world, tmp_path / "b", *extra, "--resume", "last")))
    assert resumed.epoch == 1 and resumed.step == STEPS_PER_EPOCH + 3
    assert resumed.model_optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    resumed.train()
    assert resumed.model_optimizer.param_groups[0]["lr"] == full.model_optimizer.param_groups[0]["lr"] == \
        pytest.approx(1e-6)


# ---------------------------------------------------------------------------------------------------- run folders
@pytest.mark.slow  # two 1-epoch trainings (about 20 s)
def test_a_run_folder_with_checkpoints_is_never_started_into_again(world, tmp_path):
    args = depth_args(world, tmp_path, "--model_name", "run", "--num_epochs", "1")
    run_in_process(depth_trainer, args)
    before = weights(tmp_path / "run/models/weights_0")
    with pytest.raises(InputError, match=r"already holds checkpoints \(weights_0.*--resume last.*--overwrite"):
        depth_trainer(MonodepthOptions().parse(args))
    after = weights(tmp_path / "run/models/weights_0")
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # refused, and nothing touched
    trainer = depth_trainer(MonodepthOptions().parse(args + ["--overwrite"]))
    assert not (tmp_path / "run/models/weights_0").exists()  # the old run is gone, as --overwrite says
    trainer.train()
    assert (tmp_path / "run/models/weights_0/trainer_state.pth").is_file()


def test_resume_refuses_changed_options_and_missing_checkpoints(world, tmp_path):
    with pytest.raises(InputError, match=r"--resume last: no resumable checkpoint"):
        depth_trainer(MonodepthOptions().parse(depth_args(world, tmp_path, "--model_name", "none", "--resume", "last")))
    run_in_process(depth_trainer, depth_args(world, tmp_path, "--model_name", "run"), max_steps=3)
    with pytest.raises(InputError, match=r"started with other options \(--batch_size 2 -> 1"):
        depth_trainer(MonodepthOptions().parse(depth_args(world, tmp_path, "--model_name", "run", "--resume", "last",
                                                          "--batch_size", "1")))
    with pytest.raises(InputError, match="it is a depth run"):
        flow_trainer(MonodepthOptions(task="flow").parse(flow_args(world, tmp_path, "--model_name", "run",
                                                                   "--resume", "last")))
    with pytest.raises(InputError, match="pass one of them"):
        depth_trainer(MonodepthOptions().parse(depth_args(world, tmp_path, "--model_name", "run", "--resume", "last",
                                                          "--overwrite")))
    # a Monodepth2 weights folder (no trainer state) is for --load_weights_folder, not --resume
    folder = tmp_path / "run/models/last"
    (folder / "trainer_state.pth").unlink()
    with pytest.raises(InputError, match="no resumable checkpoint"):
        depth_trainer(MonodepthOptions().parse(depth_args(world, tmp_path, "--model_name", "run", "--resume",
                                                          str(folder))))


def test_a_second_run_on_the_same_folder_is_locked_out_and_a_stale_lock_is_taken_over(world, tmp_path):
    args = depth_args(world, tmp_path, "--model_name", "run", "--num_epochs", "1")
    lock = tmp_path / "run/run.lock"
    lock.parent.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket
        lock.write_text(f"{sleeper.pid}\n{socket.gethostname()}\n2026-11-30 00:00:00\n")
        with pytest.raises(InputError, match=rf"in use by another run \(pid {sleeper.pid}"):
            depth_trainer(MonodepthOptions().parse(args))
    finally:
        sleeper.kill()
        sleeper.wait()
    trainer = depth_trainer(MonodepthOptions().parse(args))  # that process is gone: its lock is stale
    assert lock.read_text().split()[0] == str(os.getpid())
    trainer.train(max_steps=2)
    assert not lock.exists()  # released at the end, also when a step budget ends the call


def test_an_interrupted_save_is_repaired_at_the_next_start(world, tmp_path):
    """A kill between save_weights_folder's two renames leaves only ``.last.old``: the next start puts it back,
    and removes unfinished temporary folders."""
    args = depth_args(world, tmp_path, "--model_name", "run")
    run_in_process(depth_trainer, args, max_steps=3)
    models = tmp_path / "run/models"
    os.replace(models / "last", models / ".last.old")
    (models / ".weights_0.abc123").mkdir()
    (models / ".weights_0.abc123" / "encoder.pth").write_bytes(b"half")
    resumed = depth_trainer(MonodepthOptions().parse(args + ["--resume", "last"]))
    assert resumed.step == 3 and (models / "last").is_dir()
    assert not (models / ".last.old").exists() and not (models / ".weights_0.abc123").exists()


# ---------------------------------------------------------------------------------------------------- processes
def _train_py(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _last_step(run_dir: Path) -> int:
    try:
        return int(checkpoint.read_trainer_state(run_dir / "models" / "last")["step"])
    except (InputError, OSError, RuntimeError, KeyError):
        return -1


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_at_a_random_step_then_resume_is_bit_identical(world, tmp_path, seed):
    """train.py killed with SIGKILL at a random step (some kills fall inside a save), resumed with --resume last
    (once more killed and resumed), ends bit-identical to the uninterrupted run."""
    rng = random.Random(seed)
    args = depth_args(world, tmp_path, "--save_every_steps", "2")
    full = _train_py(args + ["--model_name", "full"])
    out, _ = full.communicate(timeout=600)
    assert full.returncode == 0, out
    kills = 0
    proc = _train_py(args + ["--model_name", "cut"])
    for _ in range(2):  # kill twice at random moments once a 'last' exists, resume each time
        target = rng.randint(2, 2 * STEPS_PER_EPOCH - 2)
        deadline = time.time() + 300
        while proc.poll() is None and _last_step(tmp_path / "cut") < target and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
        proc = _train_py(args + ["--model_name", "cut", "--resume", "last"])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert kills >= 1
    assert_bit_identical(tmp_path / "full/models/weights_1", tmp_path / "cut/models/weights_1")


@pytest.mark.slow
def test_sigterm_saves_last_and_prints_the_resume_command(world, tmp_path):
    args = depth_args(world, tmp_path, "--model_name", "run", "--save_every_steps", "0", "--num_epochs", "3")
    proc = _train_py(args)
    deadline = time.time() + 300
    while not (tmp_path / "run/models/weights_0").is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "SIGTERM: saved" in out and "--resume last" in out
    state = checkpoint.read_trainer_state(tmp_path / "run/models/last")
    assert state["step"] > STEPS_PER_EPOCH - 1
    command = out.split("Continue with:")[1].strip().splitlines()[0]
    assert command.startswith("python train.py") and command.endswith("--resume last")
    resumed = _train_py(command.split()[2:])
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0 and "resuming from" in out, out
    assert (tmp_path / "run/models/weights_2").is_dir()


def test_a_checkpoint_older_than_an_option_resumes_with_its_default(world, tmp_path):
    """trainer_state.pth saved before an option existed: the option counts as its default (what that version did)
    and the run resumes; a non-default value of it is a changed option and refused."""
    args = depth_args(world, tmp_path, "--model_name", "run")
    run_in_process(depth_trainer, args, max_steps=3)
    path = tmp_path / "run/models/last/trainer_state.pth"
    state = torch.load(path, weights_only=True)
    for newer in ("skip_missing", "skip_bad_images", "learn_intrinsics"):
        state["options"].pop(newer, None)
    torch.save(state, path)
    assert depth_trainer(MonodepthOptions().parse(args + ["--resume", "last"])).step == 3
    with pytest.raises(InputError, match="--skip_missing"):
        depth_trainer(MonodepthOptions().parse(args + ["--resume", "last", "--skip_missing"]))
