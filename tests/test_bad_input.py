"""Bad input gives one clear line naming the problem: in-process errors and `python train.py` exit code 2."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from monodepth2_geopt.errors import InputError, one_line, run_cli
from monodepth2_geopt.options import MonodepthOptions
from monodepth2_geopt.depth_task import depth_trainer
from monodepth2_geopt.networks import ResnetEncoder
from tests.conftest import write_split

REPO_ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def args_for(kitti_tiny, log_dir, *extra, split=None, data_path=None):
    return ["--data_path", str(data_path or kitti_tiny.root), "--split", str(split or kitti_tiny.split), "--png",
            "--num_workers", "0", "--no_progress", "--log_dir", str(log_dir), "--weights_init", "scratch",
            "--batch_size", "2", "--num_epochs", "1", "--height", "64", "--width", "96", *extra]


def trainer_error(kitti_tiny, tmp_path, *extra, exc=InputError, **kw):
    with pytest.raises(exc) as err:
        depth_trainer(MonodepthOptions().parse(args_for(kitti_tiny, tmp_path / "log", *extra, **kw))).train()
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def run_train(args, tmp_path, **env):
    environment = dict(os.environ, OMP_NUM_THREADS="1", TORCH_HOME=str(tmp_path / "torch_home"), **env)
    return subprocess.run([sys.executable, "train.py", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=environment, timeout=300, check=False)


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# --- `python train.py`: exit code 2, one line, no traceback --------------------------------------

@pytest.mark.slow  # a script in a subprocess
def test_cli_height_not_multiple_of_32(kitti_tiny, tmp_path):
    proc = run_train(args_for(kitti_tiny, tmp_path, "--height", "100"), tmp_path)
    assert_one_line_error(proc, "--height 100", "multiple")


@pytest.mark.slow  # a script in a subprocess
def test_cli_missing_split_file_names_path(kitti_tiny, tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    (split / "train_files.txt").write_text(f"{kitti_tiny.drive} 1 l\n{kitti_tiny.drive} 2 l\n")
    proc = run_train(args_for(kitti_tiny, tmp_path, split=split), tmp_path)
    assert_one_line_error(proc, str(split / "val_files.txt"))


# --- options -------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra,needle", [
    (["--width", "100"], "multiples of 32"),
    (["--frame_ids", "-1", "0", "1"], "must start with 0"),
    (["--frame_ids", "0", "1", "1"], "duplicates"),
    (["--frame_ids", "0"], "--use_stereo"),
    (["--scales", "0", "4"], "--scales"),
    (["--predictive_mask"], "--disable_automasking"),
    (["--automask_warmup", "-1"], "--automask_warmup"),
    (["--automask_warmup", "5", "--disable_automasking"], "--automask_warmup"),
    (["--init_depth", "0.05"], "--init_depth"),
    (["--init_depth", "150"], "--init_depth"),
])
def test_bad_options(kitti_tiny, tmp_path, extra, needle):
    assert needle in trainer_error(kitti_tiny, tmp_path, *extra)


# --- split files ---------------------------------------------------------------------------------

def test_unknown_split_name(kitti_tiny, tmp_path):
    msg = trainer_error(kitti_tiny, tmp_path, split="no_such_split", exc=FileNotFoundError)
    assert "no_such_split" in msg


def test_missing_split_file_names_the_path(kitti_tiny, tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    (split / "val_files.txt").write_text(f"{kitti_tiny.drive} 3 l\n")
    msg = trainer_error(kitti_tiny, tmp_path, split=split, exc=FileNotFoundError)
    assert str(split / "train_files.txt") in msg


def test_empty_split_names_the_file(kitti_tiny, tmp_path):
    split = write_split(tmp_path / "split", [], [f"{kitti_tiny.drive} 3 l"])
    msg = trainer_error(kitti_tiny, tmp_path, split=split)
    assert str(split / "train_files.txt") in msg and "empty" in msg


def test_malformed_split_line_is_named(kitti_tiny, tmp_path):
    split = write_split(tmp_path / "split", [f"{kitti_tiny.drive} 1 l", f"{kitti_tiny.drive} one l"],
                        [f"{kitti_tiny.drive} 3 l"])
    msg = trainer_error(kitti_tiny, tmp_path, split=split)
    assert "'one'" in msg and f"{kitti_tiny.drive} one l" in msg


def test_split_smaller_than_a_batch(kitti_tiny, tmp_path):
    split = write_split(tmp_path / "split", [f"{kitti_tiny.drive} 1 l"], [f"{kitti_tiny.drive} 3 l"])
    assert "--batch_size 2" in trainer_error(kitti_tiny, tmp_path, split=split)


def test_stereo_with_sideless_split_lines(kitti_tiny, tmp_path):
    split = write_split(tmp_path / "split", [f"{kitti_tiny.drive} 1", f"{kitti_tiny.drive} 2"],
                        [f"{kitti_tiny.drive} 3"])
    msg = trainer_error(kitti_tiny, tmp_path, "--use_stereo", split=split, exc=(InputError, FileNotFoundError))
    assert "side" in msg


# --- images --------------------------------------------------------------------------------------

def test_missing_first_image_names_the_path(kitti_tiny, tmp_path):
    split = write_split(tmp_path / "split", [f"{kitti_tiny.drive} 1 l", f"{kitti_tiny.drive} 2 l"],
                        [f"{kitti_tiny.drive} 3 l"])
    (tmp_path / "nowhere").mkdir()  # a data folder without the frames (a missing folder: test_first_hour.py)
    msg = trainer_error(kitti_tiny, tmp_path, split=split, data_path=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / kitti_tiny.drive / "image_02" / "data" / "0000000001.png") in msg


def test_missing_neighbour_frame_names_the_path(kitti_tiny, tmp_path):
    """Frame 6 (the +1 neighbour of line '5') does not exist: refused before the first step, with its path, the
    line and the count; --skip_missing drops the line instead and trains on the rest."""
    split = write_split(tmp_path / "split", [f"{kitti_tiny.drive} 5 l", f"{kitti_tiny.drive} 2 l",
                                             f"{kitti_tiny.drive} 3 l"], [f"{kitti_tiny.drive} 3 l"])
    msg = trainer_error(kitti_tiny, tmp_path, split=split)
    assert "0000000006.png" in msg and "1 of 3 lines" in msg and "line 1" in msg and "--skip_missing" in msg
    trainer = depth_trainer(MonodepthOptions().parse(args_for(kitti_tiny, tmp_path / "log2", "--skip_missing",
                                                              split=split)))
    assert trainer.train_dataset.filenames == [f"{kitti_tiny.drive} 2 l", f"{kitti_tiny.drive} 3 l"]


def test_corrupt_image_names_the_file(kitti_tiny, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(kitti_tiny.root, data)
    bad = data / kitti_tiny.drive / "image_02" / "data" / "0000000001.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated PNG
    msg = trainer_error(kitti_tiny, tmp_path, data_path=data)
    assert str(bad) in msg and "corrupt" in msg


# --- weights -------------------------------------------------------------------------------------

def test_resnet50_weights_into_resnet18_run(kitti_tiny, tmp_path):
    folder = tmp_path / "weights_0"
    folder.mkdir()
    torch.save(dict(ResnetEncoder(50, False).state_dict(), height=64, width=96, use_stereo=False),
               folder / "encoder.pth")
    msg = trainer_error(kitti_tiny, tmp_path, "--load_weights_folder", str(folder))
    assert "--num_layers 50" in msg and str(folder / "encoder.pth") in msg


def test_load_weights_folder_missing_or_incomplete(kitti_tiny, tmp_path):
    msg = trainer_error(kitti_tiny, tmp_path, "--load_weights_folder", str(tmp_path / "nope"))
    assert str(tmp_path / "nope") in msg
    folder = tmp_path / "weights_0"
    folder.mkdir()
    torch.save(dict(ResnetEncoder(18, False).state_dict(), height=64, width=96, use_stereo=False),
               folder / "encoder.pth")
    msg = trainer_error(kitti_tiny, tmp_path, "--load_weights_folder", str(folder))
    assert "depth.pth" in msg and "--models_to_load" in msg


def test_pretrained_without_cache_suggests_scratch(kitti_tiny, tmp_path, monkeypatch):
    """The default --weights_init pretrained with an empty torch cache fails clearly (no download attempted)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    args = [a for a in args_for(kitti_tiny, tmp_path / "log") if a not in ("--weights_init", "scratch")]
    with pytest.raises(InputError, match="--weights_init scratch"):
        depth_trainer(MonodepthOptions().parse(args))


# --- errors raised inside DataLoader workers ------------------------------------------------------

def tree_with_corrupt_frame_4(kitti_tiny, tmp_path):
    """A copy of the tiny tree whose left frame 4 is a truncated PNG, and a split in which only the second
    training line ('3 l', frames 2-4) reads it: (data path, the corrupt file, split folder)."""
    data = tmp_path / "data"
    shutil.copytree(kitti_tiny.root, data)
    bad = data / kitti_tiny.drive / "image_02" / "data" / "0000000004.png"
    bad.write_bytes(bad.read_bytes()[:40])
    split = write_split(tmp_path / "split", [f"{kitti_tiny.drive} 1 l", f"{kitti_tiny.drive} 3 l"],
                        [f"{kitti_tiny.drive} 2 l"])
    return data, bad, split


def test_worker_errors_reach_the_cli_as_one_line(kitti_tiny, tmp_path, capsys):
    """With workers (the default), an unreadable frame is re-raised by PyTorch with the worker's traceback in
    the message; run_cli still prints one line naming the file and exits with 2. (Frame 4 is corrupt: only the
    second line reads it, so the start-up checks pass and the error comes from a worker.)"""
    data, bad, split = tree_with_corrupt_frame_4(kitti_tiny, tmp_path)
    args = args_for(kitti_tiny, tmp_path / "log", "--num_workers", "1", split=split, data_path=data)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: depth_trainer(MonodepthOptions().parse(args)).train())
    assert exit_info.value.code == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: image ") and "0000000004.png" in lines[0], lines
    assert "Traceback" not in lines[0]


@pytest.mark.slow  # a training run through train.py (about 10 s)
def test_skip_bad_images_reports_and_replaces_an_unreadable_item(kitti_tiny, tmp_path, capsys):
    data, bad, split = tree_with_corrupt_frame_4(kitti_tiny, tmp_path)
    trainer = depth_trainer(MonodepthOptions().parse(args_for(kitti_tiny, tmp_path / "log", "--skip_bad_images",
                                                              split=split, data_path=data)))
    item = trainer.train_dataset[1]  # line '3 l' reads frame 4: replaced by the next item (line '1 l')
    assert int(item["index"]) == 0
    out = capsys.readouterr().out
    assert f"skipping split line '{kitti_tiny.drive} 3 l' (--skip_bad_images)" in out and str(bad) in out


def test_one_line_keeps_plain_messages():
    assert one_line(InputError("--height 100 must be a multiple of 32: e.g. 96")) == (
        "--height 100 must be a multiple of 32: e.g. 96")
    wrapped = FileNotFoundError("Caught FileNotFoundError in DataLoader worker process 0.\n"
                                "Original Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                                "monodepth2_geopt.errors.InputError: image /a/b.png is corrupt: bad")
    assert one_line(wrapped) == "image /a/b.png is corrupt: bad"


def test_log_dir_that_is_a_file_is_one_line(kitti_tiny, tmp_path):
    """--log_dir that is a file: refused before any work, naming the flag. (A folder without write permission takes
    the same path; it cannot be tested as root, which writes anyway.)"""
    log_dir = tmp_path / "a_file"
    log_dir.write_text("not a folder")
    with pytest.raises(InputError, match=r"^--log_dir .*cannot write the run folder"):
        depth_trainer(MonodepthOptions().parse(args_for(kitti_tiny, log_dir)))
