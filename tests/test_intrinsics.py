"""--learn_intrinsics (issue 14, part 1): the intrinsics head, the per-scale K of the warp, the checkpoint layout,
frame folders without calibration (--dataset video), evaluate_intrinsics.py and the refused flag combinations."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from monodepth2_geopt import intrinsics
from monodepth2_geopt.batch import prepare_batch
from monodepth2_geopt.depth_task import DepthTask
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.networks import IntrinsicsHead
from monodepth2_geopt.options import MonodepthOptions
from tests.conftest import render_plane, to_pil

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


def opts(*args):
    return MonodepthOptions().parse([str(a) for a in args])


def tiny_trainer(tmp_path, data, split, *extra):
    from monodepth2_geopt.tools.experiments import make_trainer
    torch.manual_seed(0)
    return make_trainer(["--data_path", data, "--split", split, "--height", 64, "--width", 96, "--batch_size", 2,
                         "--num_workers", 0, "--weights_init", "scratch", "--no_progress", "--no_cuda",
                         "--log_dir", tmp_path, "--model_name", "intr", "--seed", 0, "--num_layers", 18, *extra])


# ------------------------------------------------------------------------------------------------ the head
def test_head_starts_at_init_and_keeps_its_constraints():
    init = (0.7, 1.6, 0.45, 0.55)
    head = IntrinsicsHead(512, init)
    feats = torch.randn(3, 512, 2, 3)
    assert torch.allclose(head(feats), torch.tensor([init] * 3), atol=1e-6)
    with torch.no_grad():  # whatever the weights and features: focal > 0, principal point inside the image
        head.conv.weight.normal_(0, 100.0)
        head.bias.uniform_(-50, 50)
    k = head(100 * torch.randn(64, 512, 2, 3))
    assert torch.isfinite(k).all()
    assert (k[:, :2] > 0).all() and (k[:, 2:] > 0).all() and (k[:, 2:] < 1).all()
    with pytest.raises(ValueError):
        IntrinsicsHead(512, (0.5, -1.0, 0.5, 0.5))
    with pytest.raises(ValueError):
        IntrinsicsHead(512, (0.5, 1.0, 1.5, 0.5))


def test_head_running_statistics_follow_training_predictions_only():
    head = IntrinsicsHead(8, (0.6, 1.9, 0.5, 0.5))
    with torch.no_grad():
        head.bias.fill_(0.01)
    head.eval()
    head(torch.randn(4, 8, 1, 1))
    assert int(head.num_updates) == 0 and torch.allclose(head.running_mean, torch.tensor([0.6, 1.9, 0.5, 0.5]))
    head.train()
    k = head(torch.randn(4, 8, 1, 1))
    assert int(head.num_updates) == 1 and torch.allclose(head.running_mean, k.mean(0))


def test_square_pixels_tie_fy_to_fx_and_only_fx_learns():
    """fy/H = fx/W x (source width / height): one focal length in source pixels. The raw fy output gets no gradient
    (it is unused), fx gets fy's too; without an aspect the head is unchanged."""
    head = IntrinsicsHead(8, (0.6, 1.9, 0.45, 0.55))
    feats = torch.randn(3, 8, 2, 2)
    aspect = torch.tensor([1242 / 375, 4 / 3, 2.5])
    k = head(feats, aspect)
    assert torch.allclose(k[:, 1], 0.6 * aspect, atol=1e-6)  # 0.6 x 3.312 = 1.987: KITTI's fy/H of fx/W 0.6
    assert torch.allclose(k[:, [0, 2, 3]], torch.tensor([[0.6, 0.45, 0.55]] * 3), atol=1e-6)
    assert torch.allclose(head(feats), torch.tensor([[0.6, 1.9, 0.45, 0.55]] * 3), atol=1e-6)
    k[:, 1].sum().backward()  # a loss on fy alone
    assert head.bias.grad[0] > 0 and head.bias.grad[1] == 0 and head.bias.grad[2:].abs().sum() == 0
    # pixels in a 1242 x 375 frame resized to 640 x 192: fx and fy, in pixels of the file, are equal
    fx_px, fy_px = k[0, 0].item() * 1242, k[0, 1].item() * 375
    assert abs(fx_px - fy_px) < 1e-3 * fx_px


def yaw_displacement(fx_norm: torch.Tensor, raw_yaw: float, relative: bool, x: float, width: int = 100,
                     height: int = 40) -> torch.Tensor:
    """Horizontal image motion (pixels) of a far point (depth 1e6) seen at column offset ``x`` from the principal
    point, for a pose-network yaw output ``raw_yaw`` (rad) read plainly or with ``focal_relative_pose``."""
    initial = (0.5, 1.0, 0.5, 0.5)
    k = torch.stack([fx_norm, torch.tensor(1.0), torch.tensor(0.5), torch.tensor(0.5)])[None]
    axisangle, translation = torch.tensor([[[[0.0, raw_yaw, 0.0]]]]), torch.zeros(1, 1, 1, 3)
    if relative:
        axisangle, translation = intrinsics.focal_relative_pose(axisangle, translation, k, initial)
    from monodepth2_geopt import geometry
    T = geometry.transformation_from_parameters(axisangle[:, 0], translation[:, 0])
    K, inv_K = intrinsics.matrices(k, height, width)
    pix = geometry.rigid_pixels(torch.full((1, 1, height, width), 1e6), K, inv_K, T)
    col = int(round(width / 2 + x))
    return pix[0, height // 2, col, 0] - col


def test_focal_relative_pose_starts_as_the_plain_pose_and_leaves_roll_and_forward_motion_alone():
    axisangle, translation = torch.randn(3, 2, 1, 3), torch.randn(3, 2, 1, 3)
    initial = (0.58, 1.92, 0.5, 0.5)
    same = intrinsics.focal_relative_pose(axisangle, translation, torch.tensor([initial] * 3), initial)
    assert torch.equal(same[0], axisangle) and torch.equal(same[1], translation)
    k = torch.tensor([[0.29, 0.96, 0.5, 0.5], [1.16, 1.92, 0.5, 0.5], [0.58, 3.84, 0.5, 0.5]])
    a, t = intrinsics.focal_relative_pose(axisangle, translation, k, initial)
    gx, gy = torch.tensor([2.0, 0.5, 1.0]), torch.tensor([2.0, 1.0, 0.5])  # initial / learned, by hand
    assert torch.allclose(a[..., 0], axisangle[..., 0] * gy[:, None, None])  # pitch (about x) goes with fy
    assert torch.allclose(a[..., 1], axisangle[..., 1] * gx[:, None, None])  # yaw (about y) with fx
    assert torch.allclose(t[..., 0], translation[..., 0] * gx[:, None, None])
    assert torch.allclose(t[..., 1], translation[..., 1] * gy[:, None, None])
    assert torch.equal(a[..., 2], axisangle[..., 2]) and torch.equal(t[..., 2], translation[..., 2])


def test_focal_relative_pose_leaves_only_second_order_flow_to_train_the_focal_length():
    """A yaw moves the image by fx tan(w) at the principal point and by fx tan(atan(x / fx) + w) - x at column
    offset x. Read in focal units (w = raw x fx_init / fx), the motion at the centre barely depends on fx (it is
    fx0 raw to first order): the plain reading's depends on it fully; so the gradient reaching fx is the second
    order's, which grows with x^2."""
    raw = 0.02
    for relative, expect_centre_ratio in ((False, 1.4), (True, 1.0)):
        a = yaw_displacement(torch.tensor(0.7), raw, relative, 0.0)
        b = yaw_displacement(torch.tensor(0.5), raw, relative, 0.0)
        assert float(a / b) == pytest.approx(expect_centre_ratio, rel=2e-3)
    fx_px, x = 0.7 * 100, 30.0  # the analytic motion at the edge, focal-relative yaw w = raw x 0.5 / 0.7
    w = raw * 0.5 / 0.7
    analytic = fx_px * torch.tan(torch.atan(torch.tensor(x / fx_px)) + w) - x
    assert abs(float(yaw_displacement(torch.tensor(0.7), raw, True, x)) - abs(float(analytic))) < 1e-3
    grads = {}
    for relative in (False, True):
        for x in (0.0, 30.0):
            fx = torch.tensor(0.5, requires_grad=True)
            yaw_displacement(fx, raw, relative, x).backward()
            grads[relative, x] = abs(float(fx.grad))
    assert grads[True, 0.0] < 0.01 * grads[False, 0.0]  # first order: no gradient to fx any more
    assert grads[True, 30.0] > 10 * grads[True, 0.0]  # the second-order motion at the edge still trains it


def test_per_scale_matrices_match_prepare_batch_and_invert_exactly():
    k = torch.tensor([[0.58, 1.92, 0.5, 0.5], [0.9, 1.2, 0.3, 0.7]])
    h, w = 64, 160
    batch = {("color", 0): torch.zeros(2, 3, h, w, dtype=torch.uint8), "K": intrinsics.normalised_matrix(k)}
    ref = prepare_batch(batch, torch.device("cpu"), num_scales=4)
    for s in range(4):
        K, inv_K = intrinsics.matrices(k, h, w, s)
        assert torch.allclose(K, ref[("K", s)], atol=1e-5), s
        assert torch.allclose(inv_K, ref[("inv_K", s)], atol=1e-5), s
        assert torch.allclose(K @ inv_K, torch.eye(4).expand(2, 4, 4), atol=1e-6)


# ------------------------------------------------------------------------------------------------ training
def test_option_off_changes_nothing_and_on_adds_intrinsics_pth(kitti_tiny, tmp_path):
    base = ["--data_path", kitti_tiny.root, "--split", kitti_tiny.split, "--num_layers", 18, "--weights_init",
            "scratch"]
    off = DepthTask(opts(*base)).build_models()
    assert list(off) == ["encoder", "depth", "pose_encoder", "pose"]  # Monodepth2's files, as before
    on = DepthTask(opts(*base, "--learn_intrinsics")).build_models()
    assert list(on) == ["encoder", "depth", "pose_encoder", "pose", "intrinsics"]
    for name in off:  # the shared networks keep their state-dict layout: an M checkpoint loads either way
        assert {k: v.shape for k, v in off[name].state_dict().items()} == \
            {k: v.shape for k, v in on[name].state_dict().items()}, name
    trainer = tiny_trainer(tmp_path, kitti_tiny.root, kitti_tiny.split, "--png")
    files = sorted(p.name for p in trainer.save_model("check").iterdir())
    assert files == ["adam.pth", "depth.pth", "encoder.pth", "pose.pth", "pose_encoder.pth", "trainer_state.pth"]


def test_gradient_reaches_the_focal_length_and_kitti_calibration_is_ignored(kitti_tiny, tmp_path):
    trainer = tiny_trainer(tmp_path, kitti_tiny.root, kitti_tiny.split, "--png", "--learn_intrinsics",
                           "--intrinsics", 0.7, 1.6, 0.5, 0.5)
    batch = next(iter(trainer.train_loader))
    inputs = prepare_batch(batch, trainer.device, 4)
    outputs, losses = trainer.task.forward(trainer.nets, inputs, 0)
    k = outputs[("intrinsics", -1)]
    assert torch.allclose(k, torch.tensor([[0.7, 1.6, 0.5, 0.5]] * 2), atol=1e-5)  # not the dataset's 0.58, 1.92
    assert {"intrinsics/fx", "intrinsics/fy", "intrinsics/cx", "intrinsics/cy"} <= set(losses)
    losses["loss"].backward()
    head = trainer.models["intrinsics"]
    assert head.bias.grad is not None and (head.bias.grad[:2].abs() > 0).all()  # fx and fy
    assert head.conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("extra", [[], ["--focal_relative_pose"], ["--pose_model_input", "all"]],
                         ids=["plain", "focal_relative_pose", "all"])
def test_intrinsics_warmup_holds_the_guess_and_then_lets_the_gradient_through(kitti_tiny, tmp_path, extra):
    """--intrinsics_warmup N: before step N the head gets no gradient (its weights, at zero, keep predicting the
    guess) while the rest of the loss trains as usual; from step N on it is as without the option. The pose
    outputs are the same either way (the head's prediction is the same number; only its gradient is cut)."""
    trainer = tiny_trainer(tmp_path, kitti_tiny.root, kitti_tiny.split, "--png", "--learn_intrinsics",
                           "--intrinsics", 0.7, 1.6, 0.5, 0.5, "--intrinsics_warmup", 3, *extra)
    head, task = trainer.models["intrinsics"], trainer.task
    inputs = prepare_batch(next(iter(trainer.train_loader)), trainer.device, 4)
    grads = {}
    for step in (0, 2, 3, 10):
        trainer.model_optimizer.zero_grad(set_to_none=True)
        outputs, losses = task.forward(trainer.nets, inputs, step)
        assert torch.allclose(outputs[("intrinsics", -1)], torch.tensor([[0.7, 1.6, 0.5, 0.5]] * 2), atol=1e-5)
        losses["loss"].backward()
        grads[step] = head.bias.grad
        assert all(p.grad is not None for p in trainer.models["pose"].parameters())  # the pose still trains
    assert grads[0] is None and grads[2] is None  # held: nothing reaches the head
    assert grads[3] is not None and (grads[3][:2].abs() > 0).all() and grads[10] is not None
    held = task.predict(trainer.nets, inputs, 0)
    free = task.predict(trainer.nets, inputs, 3)
    for f in (-1, 1):
        assert torch.equal(held[("cam_T_cam", 0, f)], free[("cam_T_cam", 0, f)])


@pytest.mark.parametrize("extra", [[], ["--pose_model_input", "all"], ["--square_pixels"]],
                         ids=["pairs", "all", "square_pixels"])
def test_focal_relative_pose_scales_the_pose_outputs_by_initial_over_learned(kitti_tiny, tmp_path, extra):
    """With the head moved off its initial guess, each pose output is the plain reading times initial / learned:
    pitch and ty by fy's ratio (fx's with --square_pixels), yaw and tx by fx's, roll and tz by 1; gradient to fx."""
    from monodepth2_geopt import checkpoint
    from monodepth2_geopt.networks.intrinsics_head import GAIN
    trainer = tiny_trainer(tmp_path, kitti_tiny.root, kitti_tiny.split, "--png", "--learn_intrinsics",
                           "--focal_relative_pose", "--intrinsics", 0.7, 1.6, 0.5, 0.5, *extra)
    head = trainer.models["intrinsics"]
    with torch.no_grad():
        head.bias[:2] = torch.tensor([0.3, -0.2]) / GAIN  # fx and fy away from 0.7, 1.6 by different factors
    inputs = prepare_batch(next(iter(trainer.train_loader)), trainer.device, 4)
    task = trainer.task
    plain = task.predict(trainer.nets, inputs)
    task.focal_relative_pose = False
    try:
        raw = task.predict(trainer.nets, inputs)
    finally:
        task.focal_relative_pose = True
    k = plain[("intrinsics", -1)].detach()
    gx = 0.7 / k[:, 0]
    gy = gx if "--square_pixels" in extra else 1.6 / k[:, 1]
    assert (gx - 1).abs().min() > 0.05 and (gy - gx).abs().min() > 0.01 or "--square_pixels" in extra
    for f in (-1, 1):
        a, t = plain[("axisangle", 0, f)].detach(), plain[("translation", 0, f)].detach()
        a0, t0 = raw[("axisangle", 0, f)].detach(), raw[("translation", 0, f)].detach()
        shape = (-1,) + (1,) * (a.dim() - 2)
        assert torch.allclose(a[..., 0], a0[..., 0] * gy.reshape(shape), rtol=1e-4, atol=1e-9)
        assert torch.allclose(a[..., 1], a0[..., 1] * gx.reshape(shape), rtol=1e-4, atol=1e-9)
        assert torch.allclose(t[..., 0], t0[..., 0] * gx.reshape(shape), rtol=1e-4, atol=1e-9)
        assert torch.allclose(t[..., 1], t0[..., 1] * gy.reshape(shape), rtol=1e-4, atol=1e-9)
        assert torch.equal(a[..., 2], a0[..., 2]) and torch.equal(t[..., 2], t0[..., 2])
    outputs, losses = task.forward(trainer.nets, inputs, 0)
    losses["loss"].backward()
    assert head.bias.grad[0].abs() > 0
    _, meta = checkpoint.load_state_file(trainer.save_model("check") / "encoder.pth")
    assert meta.get("focal_relative_pose") is True


def test_square_pixels_run_ties_fy_to_the_frames_aspect(kitti_tiny, tmp_path):
    """--square_pixels on KITTI-layout frames: every item carries its file's width / height (the whole frame is
    resized to the input), the warp's fy follows fx by it, and the weights folder records the option."""
    from PIL import Image
    trainer = tiny_trainer(tmp_path, kitti_tiny.root, kitti_tiny.split, "--png", "--learn_intrinsics",
                           "--square_pixels", "--intrinsics", 0.7, 1.6, 0.5, 0.5)
    dataset = trainer.train_loader.dataset
    item = dataset[0]
    folder, frame, side = dataset.filenames[0].split()
    with Image.open(dataset.get_image_path(folder, int(frame), side)) as img:
        w, h = img.size
    assert item["source_aspect"].item() == pytest.approx(w / h, rel=1e-6)
    inputs = prepare_batch(next(iter(trainer.train_loader)), trainer.device, 4)
    outputs, _ = trainer.task.forward(trainer.nets, inputs, 0)
    k = outputs[("intrinsics", -1)]
    assert torch.allclose(k[:, 1], 0.7 * torch.full((2,), w / h), atol=1e-5)
    from monodepth2_geopt import checkpoint
    weights = trainer.save_model("check")
    _, meta = checkpoint.load_state_file(weights / "encoder.pth")
    assert meta["square_pixels"] is True
    # evaluate_intrinsics.py ties fy the same way: on 120x64 frames, whole (as this training) or cropped to 96:64
    frames = write_frame_folders(tmp_path / "frames", h=64, w=120)
    for whole, aspect in ((True, 120 / 64), (False, 96 / 64)):
        res = intrinsics.predict_sequences(weights, frames, whole_frame=whole)
        assert len(res) == 2
        for seq in res.values():
            assert seq["fy"]["mean"] == pytest.approx(seq["fx"]["mean"] * aspect, rel=1e-4), (whole, seq)
    plain = tiny_trainer(tmp_path / "plain", kitti_tiny.root, kitti_tiny.split, "--png", "--learn_intrinsics")
    assert "source_aspect" not in plain.train_loader.dataset[0]  # the items are unchanged without the option


def test_source_aspect_of_a_corrupt_or_missing_frame_is_a_one_line_error_naming_it(kitti_tiny, tmp_path):
    """The header read of --square_pixels fails as the image loader does: the file named, with the fix."""
    import shutil

    from monodepth2_geopt.datasets import KITTIRAWDataset
    root = Path(shutil.copytree(kitti_tiny.root, tmp_path / "data"))
    ds = KITTIRAWDataset(root, [f"{kitti_tiny.drive} 1 l"], 64, 96, [0], img_ext=".png")
    path = Path(ds.get_image_path(kitti_tiny.drive, 1, "l"))
    path.write_bytes(b"not a png")
    with pytest.raises(InputError, match=rf"image {path} is corrupt or not an image .*remove its line") as err:
        ds.source_aspect(kitti_tiny.drive, 1, "l")
    assert "\n" not in str(err.value)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=rf"image {path} does not exist \(check --data_path"):
        ds.source_aspect(kitti_tiny.drive, 1, "l")


def test_video_items_carry_the_crop_aspect(tmp_path):
    """Frame folders are cropped to the input's aspect ratio before resizing: the source region is W:H."""
    from monodepth2_geopt.datasets.video_depth_dataset import VideoDepthDataset
    frames = write_frame_folders(tmp_path / "frames", h=90, w=120)  # 4:3 frames, 96x64 input (3:2)
    ds = VideoDepthDataset(frames, ["clipA 2"], 64, 96, [0, -1, 1], is_train=True, intrinsics=(0.6, 0.9, 0.5, 0.5))
    assert "source_aspect" not in ds[0]
    ds.return_source_aspect = True
    assert ds[0]["source_aspect"].item() == pytest.approx(96 / 64, rel=0.02)  # a 120 x 80 crop, to whole pixels


def write_frame_folders(root: Path, videos=("clipA", "clipB"), n=8, h=48, w=120):
    """Two 'extract_frames.py' folders of the textured plane moving sideways, with train/val lists."""
    train, val = [], []
    for v, name in enumerate(videos):
        d = root / name
        d.mkdir(parents=True)
        for i in range(n):
            to_pil(render_plane(h, w, cam_x=0.15 * i + v)).save(d / f"{i:06d}.jpg", quality=95)
        train += [f"{name} {i}" for i in range(1, n - 2)]
        val += [f"{name} {n - 2}"]
    (root / "train_files.txt").write_text("\n".join(train) + "\n")
    (root / "val_files.txt").write_text("\n".join(val) + "\n")
    return root


@pytest.mark.slow  # train.py and evaluate_intrinsics.py on frame folders (about 9 s)
def test_video_folders_train_without_calibration_and_print_per_sequence(tmp_path):
    frames = write_frame_folders(tmp_path / "frames")
    trainer = tiny_trainer(tmp_path / "runs", frames, "eigen_zhou", "--dataset", "video", "--learn_intrinsics")
    assert len(trainer.train_loader.dataset) == 10
    from monodepth2_geopt.tools.experiments import train_steps
    stats = train_steps(trainer, 2)
    weights = Path(stats["weights"])
    assert (weights / "intrinsics.pth").is_file()
    state = torch.load(weights / "intrinsics.pth", weights_only=True)
    assert int(state["num_updates"]) == 4  # 2 steps x 2 pairs: the running mean of the predictions is saved
    out = subprocess.run([sys.executable, str(ROOT / "evaluate_intrinsics.py"), "--load_weights_folder", weights,
                          "--data_path", frames, "--json", tmp_path / "k.json", "--no_cuda"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(ln.startswith("clipA") for ln in lines) and any(ln.startswith("clipB") for ln in lines)
    import json
    res = json.loads((tmp_path / "k.json").read_text())
    assert res["clipA"]["pairs"] == 7 and 0 < res["clipA"]["cx"]["mean"] < 1


@pytest.mark.parametrize("flags, words", [
    (["--learn_intrinsics", "--use_stereo"], "drop --use_stereo"),
    (["--dataset", "video", "--use_stereo", "--intrinsics", 0.5, 1, 0.5, 0.5], "no stereo pairs"),
    (["--dataset", "video"], "no calibration"),
    (["--learn_intrinsics", "--pose_model_type", "posecnn"], "separate_resnet"),
    (["--learn_intrinsics", "--intrinsics", 0.5, 1.0, 1.2, 0.5], "inside (0, 1)"),
    (["--square_pixels"], "needs --learn_intrinsics"),
    (["--focal_relative_pose"], "needs --learn_intrinsics"),
    (["--intrinsics_warmup", 100], "needs --learn_intrinsics"),
    (["--learn_intrinsics", "--intrinsics_warmup", -1], "must be >= 0"),
])
def test_bad_flag_combinations_are_refused_in_one_line(flags, words):
    with pytest.raises(InputError) as err:
        DepthTask(opts(*flags)).validate_options()
    assert words in str(err.value) and "\n" not in str(err.value)


def test_train_py_refuses_stereo_with_learned_intrinsics_in_one_line(tmp_path, capsys):
    from tests.conftest import run_script
    code, err = run_script(capsys, "train.py", "--learn_intrinsics", "--use_stereo", "--log_dir", tmp_path)
    assert code == 2
    assert err.strip().count("\n") == 0 and "--learn_intrinsics" in err


@pytest.mark.slow
def test_short_synthetic_run_brings_fx_down_from_a_guess_above_the_truth(mono_world, tmp_path):
    """From a guess above the truth (fx/W 0.70, fy/H 1.60; truth 0.58, 1.92) 100 M steps on the synthetic world
    bring fx closer to it (benchmarks/bench_intrinsics.py: +20.7 % -> +14.7 % at 100 steps, +8.3 % at 200): the
    issue's "short synthetic run whose focal error falls", and proof that the focal length trains through the warp.
    Not proof that it is *learned*: RESULTS.md's two-sided control shows focal lengths shrinking from a guess below
    the truth as well (-21 % -> -33 % in 400 steps), a drift this test cannot tell from learning."""
    from monodepth2_geopt.tools.experiments import train_steps
    from tests.conftest import MONO_AUTOMASK_WARMUP, synthetic_trainer
    trainer = synthetic_trainer(mono_world, tmp_path, "learn_k", "M", extra=[
        "--learn_intrinsics", "--intrinsics", 0.70, 1.60, 0.5, 0.5, "--automask_warmup", MONO_AUTOMASK_WARMUP])
    train_steps(trainer, 100)
    fx, fy, cx, cy = trainer.models["intrinsics"].running_mean.tolist()
    assert abs(fx - 0.58) < 0.8 * abs(0.70 - 0.58), fx
    assert 0 < fy and 0.4 < cx < 0.6 and 0.4 < cy < 0.6
