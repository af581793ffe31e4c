"""Flow pretraining (flow_task.FlowTask in the training loop) end to end on CPU: a short pretraining on the synthetic world (with exact flow ground truth)
lowers the photometric loss and the EPE; its weights folder loads into Monodepth2 (train.py --geopt_weights /
--geopt_pose), resumes, evaluates; bad transfers give clear InputErrors."""
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from monodepth2_geopt import checkpoint, networks
from monodepth2_geopt.tools import synthetic
from monodepth2_geopt.batch import prepare_batch
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.flow import find_flow_pairs
from monodepth2_geopt.flow_diagnostics import evaluate_flow, evaluate_flow_model
from monodepth2_geopt.geopt import load_geopt_encoder, load_geopt_pose_encoder
from monodepth2_geopt.options import MonodepthOptions
from monodepth2_geopt.networks.motion_encoder import build_motion_encoder

H, W = 64, 128
# Measured on the 64x128 synthetic world (pairs, no auto-masking, lr 3e-4): EPE 2.87 px -> 2.24 after 20 steps,
# 1.42 after 40 (zero flow: 2.87). With triplets the prev/next flows pull the shared decoder in opposite
# directions until the motion encoder tells them apart, which takes far longer than a unit test.
STEPS, BATCH, LR = 24, 4, 3e-4


def flow_options(data, log_dir, *extra):
    return MonodepthOptions(task="flow").parse([
        "--data_path", str(data), "--model_name", "geopt", "--log_dir", str(log_dir), "--height", str(H),
        "--width", str(W), "--batch_size", str(BATCH), "--num_epochs", "1", "--weights_init", "scratch",
        "--num_workers", "0", "--no_progress", "--seed", "0", *extra])


@torch.no_grad()
def photometric_loss(trainer, batch):
    trainer.set_eval()
    inputs = prepare_batch(batch, trainer.device, 4)
    _, losses = trainer.process_batch(inputs)
    trainer.set_train()
    return float(losses["loss"])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """One short pretraining run; returns what the tests below inspect."""
    from monodepth2_geopt.datasets.video_dataset import UncalibratedVideoDataset
    from monodepth2_geopt.flow_task import flow_trainer

    base = tmp_path_factory.mktemp("geopt")
    info = synthetic.generate_dataset(base / "world", num_drives=1, frames_per_drive=10, width=W, height=H, seed=0,
                                      velodyne=False)
    root = info["root"]
    torch.manual_seed(0)
    # The world's drive folder also holds ground-truth PNG folders: train on its split (image_02/03 frames).
    opt = flow_options(root, base / "runs", "--learning_rate", str(LR), "--flow_epoch_size", str(STEPS * BATCH),
                       "--flow_split", info["splits"]["train"], "--frame_ids", "0", "1",
                       "--flow_eval_path", root, "--log_frequency", "1000",
                       "--motion_encoder", "resnet")  # the ResNet motion encoder, which --geopt_pose transfers
    trainer = flow_trainer(opt)
    fixed = UncalibratedVideoDataset(root, info["splits"]["train"], H, W, (0, 1), is_train=False)
    batch = default_collate([fixed[i] for i in range(0, len(fixed), max(1, len(fixed) // 8))])
    pairs = find_flow_pairs(root)
    trainer.set_eval()
    before = evaluate_flow(trainer.models["encoder"], trainer.models["motion_encoder"], trainer.models["flow"],
                           pairs, H, W)
    loss_before = photometric_loss(trainer, batch)
    trainer.set_train()
    trainer.train()
    folder = base / "runs" / "geopt" / "models" / "weights_0"
    return {"root": root, "base": base, "trainer": trainer, "folder": folder, "before": before,
            "loss_before": loss_before, "loss_after": photometric_loss(trainer, batch),
            "after": evaluate_flow_model(folder, root), "opt": opt}


@pytest.mark.slow  # uses the 24-step pretraining
def test_pretraining_lowers_photometric_loss_and_epe(pretrained):
    before, after = pretrained["before"], pretrained["after"]
    print(f"photometric loss {pretrained['loss_before']:.4f} -> {pretrained['loss_after']:.4f}; "
          f"EPE {before['epe']:.3f} -> {after['epe']:.3f} px (zero flow {after['zero_epe']:.3f}); "
          f"Fl-all {before['fl_all']:.1f} -> {after['fl_all']:.1f} %")
    assert after["num_pairs"] == before["num_pairs"] == 9
    assert pretrained["loss_after"] < pretrained["loss_before"], (pretrained["loss_before"], pretrained["loss_after"])
    assert after["epe"] < before["epe"], (before, after)
    assert after["epe"] < after["zero_epe"], after  # it learnt motion, not just to undo its initial noise


@pytest.mark.slow  # uses the 24-step pretraining
def test_weights_folder_layout_and_strict_encoder(pretrained):
    folder = pretrained["folder"]
    assert sorted(p.name for p in folder.iterdir()) == ["adam.pth", "encoder.pth", "flow.pth", "motion_encoder.pth",
                                                         "trainer_state.pth"]  # + what --resume needs
    assert (folder.parent / "opt.json").is_file()
    encoder = networks.ResnetEncoder(18, False)
    meta = checkpoint.load_into(encoder, folder / "encoder.pth", "encoder")  # strict
    assert meta == {"height": H, "width": W, "use_stereo": False}
    state = torch.load(folder / "motion_encoder.pth", weights_only=True)
    assert any(k.startswith("backbone.encoder.conv1") for k in state)
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in state)


def depth_options(kitti_tiny, log_dir, *extra):
    return MonodepthOptions().parse([
        "--data_path", str(kitti_tiny.root), "--split", str(kitti_tiny.split), "--png", "--height", "64",
        "--width", "96", "--batch_size", "2", "--num_epochs", "1", "--weights_init", "scratch", "--num_workers", "0",
        "--log_dir", str(log_dir), "--model_name", "depth", "--no_progress", *extra])


@pytest.mark.slow  # uses the 24-step pretraining
def test_train_py_geopt_weights_initialise_the_depth_encoder(pretrained, kitti_tiny, tmp_path):
    from monodepth2_geopt.depth_task import depth_trainer

    folder = pretrained["folder"]
    fresh = networks.ResnetEncoder(18, False)
    assert load_geopt_encoder(fresh, str(folder)) == len(fresh.state_dict())
    trainer = depth_trainer(depth_options(kitti_tiny, tmp_path, "--geopt_weights", str(folder), "--geopt_pose"))
    pretrained_enc = pretrained["trainer"].models["encoder"].state_dict()
    for name, value in trainer.models["encoder"].state_dict().items():
        assert torch.equal(value.cpu(), pretrained_enc[name].cpu()), name
        assert torch.equal(value.cpu(), fresh.state_dict()[name]), name
    motion = pretrained["trainer"].models["motion_encoder"].backbone.state_dict()
    for name, value in trainer.models["pose_encoder"].state_dict().items():
        assert torch.equal(value.cpu(), motion[name].cpu()), name


@pytest.mark.slow  # uses the 24-step pretraining
def test_bad_geopt_transfers_give_clear_input_errors(pretrained, tmp_path):
    encoder18 = networks.ResnetEncoder(18, False)
    # a pose checkpoint instead of an encoder
    pose_dir = tmp_path / "pose_run"
    checkpoint.save_weights_folder(pose_dir, {"pose": networks.PoseDecoder([64, 64, 128, 256, 512], 1, 2)})
    with pytest.raises(InputError, match="not an encoder checkpoint"):
        load_geopt_encoder(encoder18, str(pose_dir / "pose.pth"))
    # a ResNet-50 structure encoder into an 18-layer run
    r50_dir = tmp_path / "r50"
    checkpoint.save_weights_folder(r50_dir, {"encoder": networks.ResnetEncoder(50, False)},
                                   encoder_meta={"height": H, "width": W, "use_stereo": False})
    with pytest.raises(InputError, match="ResNet-50.*ResNet-18.*--num_layers 50"):
        load_geopt_encoder(encoder18, str(r50_dir))
    # an empty folder
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="has no encoder.pth .found: nothing"):
        load_geopt_encoder(encoder18, str(empty))
    # --geopt_pose into a pose encoder of another depth
    with pytest.raises(InputError, match="--motion_num_layers"):
        load_geopt_pose_encoder(networks.ResnetEncoder(34, False, 2), str(pretrained["folder"]))
    # --geopt_pose from the default correlation motion encoder, which has no ResNet
    corr_dir = tmp_path / "corr"
    checkpoint.save_weights_folder(corr_dir, {"motion_encoder": build_motion_encoder("corr")})
    with pytest.raises(InputError, match="--motion_encoder resnet"):
        load_geopt_pose_encoder(networks.ResnetEncoder(18, False, 2), str(corr_dir))


@pytest.mark.slow  # uses the 24-step pretraining
def test_resume_from_weights_folder(pretrained, tmp_path):
    from monodepth2_geopt.flow_task import flow_trainer

    folder = pretrained["folder"]
    resumed = flow_trainer(flow_options(pretrained["root"], tmp_path, "--load_weights_folder", str(folder),
                                       "--motion_encoder", "resnet"))
    for name in ("encoder", "motion_encoder", "flow"):
        saved = pretrained["trainer"].models[name].state_dict()
        for key, value in resumed.models[name].state_dict().items():
            assert torch.equal(value, saved[key]), f"{name}.{key}"
    assert resumed.model_optimizer.state_dict()["state"], "adam.pth was not loaded"
    with pytest.raises(InputError, match="has no motion_encoder.pth"):
        bad = tmp_path / "partial"
        bad.mkdir()
        (bad / "encoder.pth").write_bytes((folder / "encoder.pth").read_bytes())
        flow_trainer(flow_options(pretrained["root"], tmp_path, "--load_weights_folder", str(bad)))


@pytest.mark.slow  # uses the 24-step pretraining
def test_scripts_report_bad_input_in_one_line(pretrained, tmp_path, monkeypatch, capsys):
    import evaluate_flow
    import pretrain_flow
    from monodepth2_geopt.errors import run_cli

    monkeypatch.setattr(sys, "argv", ["pretrain_flow.py", "--data_path", str(tmp_path / "missing"),
                                      "--log_dir", str(tmp_path), "--height", "64", "--width", "128"])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(pretrain_flow.main)
    assert exit_info.value.code == 2
    assert "--data_path" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["evaluate_flow.py", "--load_weights_folder", str(pretrained["folder"]),
                                      "--flow_eval_path", pretrained["root"]])
    run_cli(evaluate_flow.main)
    out = capsys.readouterr().out
    assert "9 images from" in out and "EPE t->t+1 (px)" in out and "Fl-all" in out and "latent sensitivity" in out


@pytest.mark.slow  # uses the 24-step pretraining
def test_flow_data_sources_mix_with_weights(pretrained, tmp_path):
    from monodepth2_geopt.flow_task import flow_trainer, parse_flow_sources

    assert parse_flow_sources("a", ["b:2", "c", "d:x"]) == [("a", 1.0), ("b", 2.0), ("c", 1.0), ("d:x", 1.0)]
    with pytest.raises(InputError, match="weight"):
        parse_flow_sources("a", ["b:-1"])
    video = synthetic.generate_video(tmp_path / "video", num_sequences=1, frames=6, width=W, height=H)
    trainer = flow_trainer(flow_options(pretrained["root"], tmp_path, "--flow_data", f"{tmp_path / 'video'}:3",
                                       "--flow_epoch_size", "8", "--flow_automask"))
    assert trainer.task.source_sizes[1] == 4 and len(trainer.train_loader) == 8 // BATCH
    assert video and trainer.task.loss_cfg.automask and not pretrained["trainer"].task.loss_cfg.automask


def _fake_kitti(root, drives, frames=4, size=(64, 32)):
    from PIL import Image
    rng = np.random.default_rng(0)
    for drive in drives:
        d = root / drive[:10] / drive / "image_02" / "data"
        d.mkdir(parents=True)
        for i in range(frames):
            Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(d / f"{i:010d}.png")


def test_kitti_test_drives_are_excluded_from_pretraining(tmp_path, capsys):
    from monodepth2_geopt.flow_task import flow_trainer
    from monodepth2_geopt.splits import EIGEN_TEST_DRIVES

    assert len(EIGEN_TEST_DRIVES) == 28 and "2011_09_26_drive_0002_sync" in EIGEN_TEST_DRIVES
    root = tmp_path / "kitti"
    _fake_kitti(root, ["2011_09_26_drive_0001_sync", "2011_09_26_drive_0002_sync", "2011_10_03_drive_0047_sync"])
    opts = ["--data_path", str(root), "--log_dir", str(tmp_path / "runs"), "--height", "32", "--width", "64",
            "--batch_size", "2", "--num_workers", "0", "--no_progress"]
    trainer = flow_trainer(MonodepthOptions(task="flow").parse(opts))
    assert trainer.task.source_sizes == [2]  # frames 1 and 2 of the one training drive
    assert "excluded 4 triplets of KITTI Eigen / Eigen-benchmark test drives" in capsys.readouterr().out
    keep = flow_trainer(MonodepthOptions(task="flow").parse(opts + ["--flow_include_test_drives",
                                                                    "--model_name", "keep"]))
    assert keep.task.source_sizes == [6]
    only_test = tmp_path / "only_test"
    _fake_kitti(only_test, ["2011_09_26_drive_0002_sync"])
    with pytest.raises(InputError, match="--flow_include_test_drives"):
        flow_trainer(MonodepthOptions(task="flow").parse(opts[:1] + [str(only_test)] + opts[2:] +
                                                        ["--model_name", "only"]))


def test_pretraining_uses_extract_frames_lists_and_validates_on_held_out_frames(tmp_path, capsys):
    from monodepth2_geopt.flow_task import flow_trainer
    from monodepth2_geopt.tools.video import write_split_files

    video = synthetic.generate_video(tmp_path / "frames", num_sequences=1, frames=24, width=W, height=H)
    train, val = write_split_files(tmp_path / "frames", [("seq_000", 24)], val_fraction=0.2)
    trainer = flow_trainer(flow_options(tmp_path / "frames", tmp_path / "runs"))
    assert video and len(trainer.train_dataset) == len(train) and trainer.task.val_batch is not None
    assert len(trainer.task.val_frames) == min(8, len(val)) and trainer.task.val_kind == "reference"
    out = capsys.readouterr().out
    assert "train_files.txt" in out and "held-out triplets" in out and "TV-L1" in out
