"""Pseudo-label distillation (issue 14 parts 2 and 4): the scale-and-shift-invariant loss on hand-built cases, the
label files (encoding, resizing like the images, flips), make_pseudo_labels.py (teachers, manifest, resume,
refusals), train.py --pseudo_label_path in M / S / MS / --learn_intrinsics / --dataset video, and
evaluate_depth.py (--align lsqr) and test_simple.py on a model trained with --learn_intrinsics."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from monodepth2_geopt import pseudo_labels as pl
from monodepth2_geopt.batch import prepare_batch
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.losses import ssi_disparity_loss
from tests.conftest import DRIVE, render_plane, run_script, to_pil

pytestmark = pytest.mark.usefixtures("one_thread")
ALIGNS = ("median", "lsq")


# ------------------------------------------------------------------------------------------------ the loss
def as_map(values, h=1):
    return torch.tensor(values, dtype=torch.float32).reshape(1, 1, h, -1)


def test_loss_by_hand():
    # target 0 1 2 3: (lower) median 1, mean |deviation| (1 + 0 + 1 + 2) / 4 = 1 -> -1 0 1 2
    # pred   0 1 2 4: median 1, deviation (1 + 0 + 1 + 3) / 4 = 1.25 -> -0.8 0 0.8 2.4; L1 (0.2 + 0 + 0.2 + 0.4) / 4
    loss = ssi_disparity_loss(as_map([0, 1, 2, 4]), as_map([0, 1, 2, 3]), eps=0.0)
    assert loss.item() == pytest.approx(0.2, abs=1e-7)


@pytest.mark.parametrize("align", ALIGNS)
def test_loss_is_zero_at_the_optimum_and_invariant_to_scale_and_shift(align):
    torch.manual_seed(0)
    target = torch.rand(3, 1, 6, 10) + 0.05
    assert ssi_disparity_loss(target, target, align=align).item() < 1e-6
    assert ssi_disparity_loss(target, target, align="median", eps=0.0).item() == 0.0  # exactly
    for a, b in ((3.0, 1.0), (0.5, -5.0), (250.0, 0.0)):  # any positive scale and any shift of the prediction
        # (eps = 1e-6 in the deviations leaves about eps / deviation: 1e-5 for the smallest scale here)
        assert ssi_disparity_loss(a * target + b, target, align=align).item() < 3e-5, (a, b)
        assert ssi_disparity_loss(a * target + b, target, align=align, eps=0.0).item() < 2e-6, (a, b)
    pred = torch.rand(3, 1, 6, 10)
    ref = ssi_disparity_loss(pred, target, align=align).item()
    assert ref > 0.3
    for a, b in ((3.0, 1.0), (0.2, -0.7)):
        assert ssi_disparity_loss(a * pred + b, target, align=align).item() == pytest.approx(ref, rel=1e-4)
        assert ssi_disparity_loss(pred, a * target + b, align=align).item() == pytest.approx(ref, rel=1e-4)


@pytest.mark.parametrize("align", ALIGNS)
def test_negative_controls_give_a_large_loss(align):
    torch.manual_seed(1)
    x = torch.linspace(0.1, 1.0, 16)
    target = (x[None, :] + 0.3 * torch.rand(8, 16)).reshape(1, 1, 8, 16)  # disparity rising left to right
    good = ssi_disparity_loss(2 * target + 1, target, align=align).item()
    noisy = ssi_disparity_loss(target + 0.1 * torch.randn_like(target), target, align=align).item()
    unrelated = ssi_disparity_loss(torch.rand_like(target), target, align=align).item()
    assert good < 1e-5 < noisy < 0.4 and unrelated > 0.9  # measured: 0, 0.32 / 0.29, 1.50 / 0.99
    wrong = {"mirrored": target.flip(-1),  # a left-right flip forgotten
             "inverted": 1 / target,  # depth given for disparity
             "negated": -target}  # near and far swapped
    losses = {k: ssi_disparity_loss(v, target, align=align).item() for k, v in wrong.items()}
    if align == "median":  # each is worse than an unrelated prediction (measured 1.98, 2.0, 2.0)
        assert min(losses.values()) > unrelated, losses
    else:  # least squares fits a negative scale, so it forgives part or all of these (0.36, 0.51, 0): the
        # reason NimbleD's median normalisation is the default
        assert losses["negated"] < 1e-5 and losses["mirrored"] > noisy, losses


@pytest.mark.parametrize("align", ALIGNS)
def test_masked_pixels_do_not_change_the_loss_or_get_a_gradient(align):
    torch.manual_seed(2)
    target = torch.rand(2, 1, 8, 8) + 0.1
    pred = torch.rand(2, 1, 8, 8)
    valid = torch.rand(2, 1, 8, 8) > 0.3
    loss = ssi_disparity_loss(pred, target, valid, align=align)
    changed_pred = torch.where(valid, pred, 100 * torch.rand_like(pred))
    changed_target = torch.where(valid, target, -50.0)
    assert ssi_disparity_loss(changed_pred, changed_target, valid, align=align).item() == pytest.approx(loss.item(),
                                                                                                        rel=1e-5)
    nan_target = torch.where(valid, target, torch.nan)  # NaN in the label = no label
    assert ssi_disparity_loss(pred, nan_target, align=align).item() == pytest.approx(loss.item(), rel=1e-5)
    p = pred.clone().requires_grad_(True)
    ssi_disparity_loss(p, nan_target, align=align).backward()
    assert torch.isfinite(p.grad).all() and p.grad[valid].abs().sum() > 0
    assert (p.grad[~valid] == 0).all()
    empty = ssi_disparity_loss(pred, torch.full_like(target, torch.nan), align=align)
    assert empty.item() == 0.0  # an image without labels adds nothing (and no NaN)
    half = nan_target.clone()
    half[1] = torch.nan  # the second image unlabelled: the mean is over labelled images only
    first = ssi_disparity_loss(pred[:1], nan_target[:1], align=align).item()
    assert ssi_disparity_loss(pred, half, align=align).item() == pytest.approx(first, rel=1e-5)


# ------------------------------------------------------------------------------------------------ label files
def test_png_encoding_round_trip_keeps_range_sign_and_holes(tmp_path):
    rng = np.random.default_rng(0)
    disp = rng.uniform(-0.3, 7.0, (12, 20)).astype(np.float32)  # an affine-invariant teacher may go negative
    disp[2, 3] = np.nan
    disp[5, 5] = np.inf
    pl.write_label(tmp_path / "a.png", disp, "png")
    back = pl.read_label(tmp_path / "a.png")
    valid = np.isfinite(disp)
    assert (np.isnan(back) == ~valid).all()
    step = (disp[valid].max() - disp[valid].min()) / pl.PNG_LEVELS
    assert np.abs(back[valid] - disp[valid]).max() <= 0.5 * step + 1e-6
    assert back[valid].min() == pytest.approx(disp[valid].min())
    assert back[valid].max() == pytest.approx(disp[valid].max())
    pl.write_label(tmp_path / "c.png", np.full((4, 5), 0.25, np.float32), "png")  # a constant map
    assert np.allclose(pl.read_label(tmp_path / "c.png"), 0.25)
    pl.write_label(tmp_path / "a.npy", disp, "npy")
    back16 = pl.read_label(tmp_path / "a.npy")
    assert np.load(tmp_path / "a.npy").dtype == np.float16
    assert np.allclose(back16[valid], disp[valid], rtol=1e-3, atol=1e-3) and (np.isnan(back16) == ~valid).all()
    with pytest.raises(InputError, match="--format png"):
        pl.write_label(tmp_path / "big.npy", np.full((2, 2), 1e6, np.float32), "npy")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="bad.png"):
        pl.read_label(tmp_path / "bad.png")


def test_labels_follow_the_crop_resize_and_flip_of_their_images(tmp_path):
    """Frames whose red channel rises left to right, labels equal to the column: after the datasets' random crop
    (video), resize and flip, the label still rises where the image does."""
    from monodepth2_geopt.datasets import KITTIRAWDataset
    from monodepth2_geopt.datasets.video_depth_dataset import VideoDepthDataset
    from PIL import Image
    h, w = 40, 120
    ramp = np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))
    img = Image.fromarray((np.stack([ramp, 0 * ramp, 0 * ramp], -1) * 255).round().astype(np.uint8))
    frames, labels = tmp_path / "frames", tmp_path / "labels"
    for folder in (frames / "clip", frames / DRIVE / "image_02" / "data"):
        folder.mkdir(parents=True)
        for i in range(4):
            img.save(folder / f"{i:010d}.png")
            pl.write_label(pl.label_path(labels, frames, folder / f"{i:010d}.png", "png"), ramp, "png")
    store = pl.PseudoLabelStore(labels)
    video = VideoDepthDataset(frames, ["clip 1", "clip 2"], 32, 64, [0, -1, 1], is_train=True,
                              intrinsics=(0.58, 1.92, 0.5, 0.5))
    kitti = KITTIRAWDataset(str(frames), [f"{DRIVE} 1 l", f"{DRIVE} 2 l"], 32, 64, [0, -1, 1], is_train=True,
                            img_ext=".png")
    for ds in (video, kitti):
        ds.pseudo_labels = store
        flips = set()
        for trial in range(12):
            item = ds[trial % 2]
            red = item[("color", 0)][0].float().numpy() / 255
            label = item["pseudo_disp"][0].numpy()
            assert label.shape == (32, 64) and np.isfinite(label).all()
            assert np.abs(label - red).mean() < 0.02, (type(ds).__name__, bool(item["flip"]))
            flips.add(bool(item["flip"]))
        assert flips == {True, False}


# ------------------------------------------------------------------------------------------------ make_pseudo_labels.py
TEACHER_SOURCE = '''
import numpy as np
CALLS = []
def disp(rgb):
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    CALLS.append(rgb.shape)
    return rgb[::2, ::2, 0].astype(np.float32) / 255 + 0.1   # half resolution: resized by the caller
def depth(rgb):
    d = 1.0 / (rgb[:, :, 0].astype(np.float32) / 255 + 0.1)
    d[0, 0] = 0.0    # no depth -> no label
    return d[None]   # leading singleton dimensions are dropped
def broken(rgb):
    return np.zeros((3, 4, 5))
'''


@pytest.fixture
def frame_folder(tmp_path):
    """extract_frames.py's layout: two clips of 6 frames (48x120 JPEG) and their split lists."""
    root = tmp_path / "frames"
    for v, name in enumerate(("clipA", "clipB")):
        (root / name).mkdir(parents=True)
        for i in range(6):
            to_pil(render_plane(48, 120, cam_x=0.15 * i + v)).save(root / name / f"{i:06d}.jpg", quality=95)
    (root / "train_files.txt").write_text("".join(f"{c} {i}\n" for c in ("clipA", "clipB") for i in (1, 2, 3)))
    (root / "val_files.txt").write_text("clipA 4\nclipB 4\n")
    (tmp_path / "teacher.py").write_text(TEACHER_SOURCE)
    return root


def test_callable_teacher_labels_a_frame_folder_resumably(frame_folder, tmp_path, capsys):
    out = tmp_path / "labels"
    teacher = f"{tmp_path / 'teacher.py'}:disp"
    code, err = run_script(capsys, "make_pseudo_labels.py", "--teacher", teacher, "--data_path", frame_folder,
                           "--out_dir", out, "--no_progress")
    assert code == 0, err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == [f"{c}/{i:06d}.png" for c in ("clipA", "clipB") for i in range(6)]  # the image tree
    manifest = json.loads((out / pl.MANIFEST_NAME).read_text())
    assert manifest["teacher"] == teacher and manifest["format"] == "png" and manifest["teacher_output"] == "disp"
    from PIL import Image
    rgb = np.asarray(Image.open(frame_folder / "clipA" / "000002.jpg"))
    label = pl.read_label(out / "clipA" / "000002.png")
    assert label.shape == rgb.shape[:2]  # at the image's size
    assert np.corrcoef(label.ravel(), rgb[:, :, 0].ravel())[0, 1] > 0.95
    stamp = (out / "clipA" / "000002.png").stat().st_mtime_ns
    (out / "clipB" / "000005.png").unlink()  # an interrupted run: only the missing label is written again
    code, _ = run_script(capsys, "make_pseudo_labels.py", "--teacher", teacher, "--data_path", frame_folder,
                         "--out_dir", out, "--no_progress")
    assert code == 0 and (out / "clipB" / "000005.png").is_file()
    assert (out / "clipA" / "000002.png").stat().st_mtime_ns == stamp
    # another teacher into the same folder: refused in one line, then allowed with --overwrite
    other = f"{tmp_path / 'teacher.py'}:depth"
    args = ["--teacher", other, "--teacher_output", "depth", "--data_path", frame_folder, "--out_dir", out,
            "--no_progress"]
    code, err = run_script(capsys, "make_pseudo_labels.py", *args)
    assert code == 2 and err.count("\n") == 1 and "--overwrite" in err and "teacher" in err
    code, err = run_script(capsys, "make_pseudo_labels.py", *args, "--overwrite", "--format", "npy")
    assert code == 0, err
    depth_label = pl.read_label(out / "clipA" / "000002.npy")
    assert np.isnan(depth_label[0, 0]) and np.isfinite(depth_label[1:, 1:]).all()  # depth 0 -> no label
    assert np.allclose(depth_label[1:, 1:], rgb[1:, 1:, 0] / 255 + 0.1, atol=2e-3)  # 1 / depth


def test_split_mode_labels_only_the_target_frames(kitti_tiny, tmp_path, capsys):
    (tmp_path / "teacher.py").write_text(TEACHER_SOURCE)
    out = tmp_path / "labels"
    code, err = run_script(capsys, "make_pseudo_labels.py", "--teacher", f"{tmp_path / 'teacher.py'}:disp",
                           "--data_path", kitti_tiny.root, "--split", kitti_tiny.split, "--png", "--out_dir", out,
                           "--no_progress")
    assert code == 0, err
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    expected = sorted(f"{DRIVE}/image_0{2 if side == 'l' else 3}/data/{i:010d}.png"
                      for i, side in ((1, "l"), (2, "r"), (3, "l"), (4, "r")))  # train + val lines, frame 0 only
    assert found == expected


@pytest.mark.parametrize("teacher,word", [
    ("{tmp}/no_such_weights", "no such weights folder"),
    ("no_such_module_xyz:predict", "cannot import"),
    ("json:no_such_function", "no callable"),
    ("{tmp}/missing.py:predict", "does not exist"),
    ("{tmp}/teacher.py:broken", "one [H, W] map"),
])
def test_bad_teachers_are_one_line_errors(frame_folder, tmp_path, capsys, teacher, word):
    code, err = run_script(capsys, "make_pseudo_labels.py", "--teacher", teacher.format(tmp=tmp_path),
                           "--data_path", frame_folder, "--out_dir", tmp_path / "labels", "--no_progress")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and word in lines[0], lines


def test_bad_paths_are_one_line_errors(frame_folder, tmp_path, capsys):
    teacher = f"{tmp_path / 'teacher.py'}:disp"
    for args, word in ((["--data_path", tmp_path / "nowhere"], "nowhere"),
                       (["--data_path", frame_folder, "--split", tmp_path / "nosplit"], "nosplit"),
                       (["--data_path", tmp_path, "--split", frame_folder, "--dataset", "video"], "not found")):
        code, err = run_script(capsys, "make_pseudo_labels.py", "--teacher", teacher, *args, "--out_dir",
                               tmp_path / "labels", "--no_progress")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and word in lines[0], lines
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")  # a folder of something else: never written into
    code, err = run_script(capsys, "make_pseudo_labels.py", "--teacher", teacher, "--data_path", frame_folder,
                           "--out_dir", tmp_path / "other", "--no_progress")
    assert code == 2 and "--overwrite" in err and not list((tmp_path / "other").rglob("*.png"))


# ------------------------------------------------------------------------------------------------ training
def tiny_trainer(tmp_path, data, split, *extra, name="pl"):
    from monodepth2_geopt.tools.experiments import make_trainer
    torch.manual_seed(0)
    return make_trainer(["--data_path", data, "--split", split, "--height", 64, "--width", 96, "--batch_size", 2,
                         "--num_workers", 0, "--weights_init", "scratch", "--no_progress", "--no_cuda",
                         "--log_dir", tmp_path / "runs", "--model_name", name, "--seed", 0, *extra])


@pytest.fixture
def kitti_labels(kitti_tiny, tmp_path):
    """Labels of the target frames of kitti_tiny's split: the exact plane depth's disparity with a gradient, so
    that the term is not trivially zero."""
    out = tmp_path / "kitti_labels"
    for i, side in ((1, "l"), (2, "r"), (3, "l"), (4, "r")):
        image = kitti_tiny.root / DRIVE / f"image_0{2 if side == 'l' else 3}" / "data" / f"{i:010d}.png"
        disp = np.tile(np.linspace(0.2, 0.8, kitti_tiny.width, dtype=np.float32), (kitti_tiny.height, 1))
        pl.write_label(pl.label_path(out, kitti_tiny.root, image, "png"), disp, "png")
    return out


@pytest.mark.parametrize("mode", [[], ["--use_stereo", "--frame_ids", "0"], ["--use_stereo"], ["--learn_intrinsics"]],
                         ids=["M", "S", "MS", "M-learn_intrinsics"])
def test_the_term_is_added_in_every_mode_and_reaches_the_depth_network(kitti_tiny, kitti_labels, tmp_path, mode):
    trainer = tiny_trainer(tmp_path, kitti_tiny.root, kitti_tiny.split, "--png", "--pseudo_label_path",
                           kitti_labels, "--pseudo_label_weight", 0.5, *mode)
    assert trainer.val_loader.dataset.pseudo_labels is not None  # val labels exist: the val loss has the term
    batch = next(iter(trainer.train_loader))
    assert batch["pseudo_disp"].shape == (2, 1, 64, 96)
    inputs = prepare_batch(batch, trainer.device, 4)
    outputs, losses = trainer.task.forward(trainer.nets, inputs, 0)
    pseudo = losses["loss/pseudo_label"]  # logged to TensorBoard with the other loss terms
    assert torch.isfinite(pseudo) and pseudo.item() > 0.01
    ssl = sum(losses[f"loss/{s}"] for s in range(4)) / 4
    assert losses["loss"].item() == pytest.approx(ssl.item() + 0.5 * pseudo.item(), rel=1e-5)
    trainer.models["depth"].zero_grad()
    pseudo.backward()
    grads = [p.grad for p in trainer.models["depth"].parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0


def test_missing_labels_are_named_before_training_or_skipped(kitti_tiny, kitti_labels, tmp_path):
    gone = pl.label_path(kitti_labels, kitti_tiny.root, kitti_tiny.root / DRIVE / "image_03" / "data" /
                         "0000000002.png", "png")
    gone.unlink()
    with pytest.raises(InputError, match=r"1 of 2 training items.*0000000002\.png.*make_pseudo_labels\.py"):
        tiny_trainer(tmp_path, kitti_tiny.root, kitti_tiny.split, "--png", "--pseudo_label_path", kitti_labels)
    trainer = tiny_trainer(tmp_path, kitti_tiny.root, kitti_tiny.split, "--png", "--pseudo_label_path", kitti_labels,
                           "--skip_missing", "--batch_size", 1, "--overwrite", name="pl2")
    assert trainer.train_dataset.filenames == [f"{DRIVE} 1 l"]
    with pytest.raises(InputError, match="pseudo_label_path"):
        tiny_trainer(tmp_path, kitti_tiny.root, kitti_tiny.split, "--png", "--pseudo_label_path",
                     tmp_path / "nowhere", name="pl3")
    with pytest.raises(InputError, match="pseudo_label_weight"):
        tiny_trainer(tmp_path, kitti_tiny.root, kitti_tiny.split, "--png", "--pseudo_label_path", kitti_labels,
                     "--pseudo_label_weight", "nan", name="pl4")


@pytest.mark.slow  # make_pseudo_labels.py, then train.py on frame folders
def test_video_frames_train_with_learned_intrinsics_and_labels_from_the_script(frame_folder, tmp_path, capsys):
    labels = tmp_path / "labels"
    code, err = run_script(capsys, "make_pseudo_labels.py", "--teacher", f"{tmp_path / 'teacher.py'}:disp",
                           "--data_path", frame_folder, "--out_dir", labels, "--no_progress")
    assert code == 0, err
    trainer = tiny_trainer(tmp_path, frame_folder, "eigen_zhou", "--dataset", "video", "--learn_intrinsics",
                           "--pseudo_label_path", labels)
    assert len(trainer.train_dataset) == 6 and trainer.train_dataset.pseudo_labels is not None
    trainer.loss_history = []
    weights = trainer.train(max_steps=2)
    assert weights is not None and (Path(weights) / "intrinsics.pth").is_file()
    assert len(trainer.loss_history) == 2 and all(torch.isfinite(v) for v in trainer.loss_history)


# ------------------------------------------------------------------------------------------------ part 4
@pytest.fixture(scope="module")
def learned_k_model(tmp_path_factory):
    """A model trained 2 steps with --learn_intrinsics on a plane seen by a moving camera (KITTI layout), a test
    split over its frames with the plane's exact depth as ground truth, and the data root."""
    from monodepth2_geopt.gt_depth import save_gt_depths
    from monodepth2_geopt.splits import sha256_file
    from monodepth2_geopt.tools.experiments import make_trainer
    from tests.conftest import write_kitti_raw, write_split
    base = tmp_path_factory.mktemp("learned_k")
    root = write_kitti_raw(base / "data", exts=(".png",))
    split = write_split(base / "split", [f"{DRIVE} 1 l", f"{DRIVE} 2 l"], [f"{DRIVE} 3 l", f"{DRIVE} 4 l"])
    (split / "test_files.txt").write_text(f"{DRIVE} 2 l\n{DRIVE} 3 l\n")
    # ground truth: the plane at 2 m with a ramp of depth (so that lsqr has something to fit)
    gt = np.tile(np.linspace(2.0, 6.0, 96, dtype=np.float32), (64, 1))
    save_gt_depths(split / "gt_depths.npz", [gt, gt], sha256_file(split / "test_files.txt"))
    torch.manual_seed(0)
    trainer = make_trainer(["--data_path", root, "--split", split, "--png", "--height", 64, "--width", 96,
                            "--batch_size", 2, "--num_workers", 0, "--weights_init", "scratch", "--no_progress",
                            "--no_cuda", "--log_dir", base / "runs", "--model_name", "learned_k", "--seed", 0,
                            "--learn_intrinsics"])
    weights = Path(trainer.train(max_steps=2))
    assert (weights / "intrinsics.pth").is_file()
    return weights, split, root


def test_evaluation_inference_and_finetuning_need_nothing_new_after_learned_intrinsics(learned_k_model, tmp_path,
                                                                                       capsys):
    weights, split, root = learned_k_model
    for align in ("median", "lsqr"):
        out = tmp_path / align
        code, err = run_script(capsys, "evaluate_depth.py", "--load_weights_folder", weights, "--eval_mono",
                               "--align", align, "--eval_split", split, "--data_path", root, "--png",
                               "--num_workers", 0, "--no_cuda", "--eval_out_dir", out)
        assert code == 0, err
        metrics = json.loads((out / f"metrics_split_{align}.json").read_text())
        assert all(np.isfinite(metrics[k]) for k in ("abs_rel", "rmse", "a1"))
        assert ("lsqr" in metrics["protocol"]) == (align == "lsqr")
    image = root / DRIVE / "image_02" / "data" / "0000000002.png"
    code, err = run_script(capsys, "test_simple.py", "--image_path", image, "--load_weights_folder", weights,
                           "--ext", "png", "--no_cuda", "--out_dir", tmp_path / "simple")
    assert code == 0, err
    disp = np.load(tmp_path / "simple" / "0000000002_disp.npy")
    assert disp.shape == (1, 1, 64, 96) and np.isfinite(disp).all()
    assert (tmp_path / "simple" / "0000000002_disp.jpeg").is_file()
    # KITTI fine-tuning from it, with the calibration: the shared networks load, the intrinsics head stays behind
    from monodepth2_geopt.tools.experiments import make_trainer
    trainer = make_trainer(["--data_path", root, "--split", split, "--png", "--height", 64, "--width", 96,
                            "--batch_size", 2, "--num_workers", 0, "--weights_init", "scratch", "--no_progress",
                            "--no_cuda", "--log_dir", tmp_path / "runs", "--model_name", "ft",
                            "--load_weights_folder", weights])
    assert "intrinsics" not in trainer.models
    encoder = torch.load(weights / "encoder.pth", weights_only=True)
    assert torch.equal(trainer.models["encoder"].state_dict()["encoder.conv1.weight"], encoder["encoder.conv1.weight"])


def test_a_project_model_is_a_teacher(learned_k_model, tmp_path, capsys):
    weights, split, root = learned_k_model
    out = tmp_path / "labels"
    code, err = run_script(capsys, "make_pseudo_labels.py", "--teacher", weights, "--data_path", root, "--split",
                           split / "test_files.txt", "--png", "--out_dir", out, "--no_cuda", "--no_progress")
    assert code == 0, err
    manifest = json.loads((out / pl.MANIFEST_NAME).read_text())
    assert manifest["kind"] == "weights_folder" and set(manifest["sha256"]) == {"encoder.pth", "depth.pth"}
    label = pl.read_label(out / DRIVE / "image_02" / "data" / "0000000002.png")
    from monodepth2_geopt.model_loading import load_depth_model
    from PIL import Image
    rgb = np.asarray(Image.open(root / DRIVE / "image_02" / "data" / "0000000002.png").convert("RGB"))
    expected = load_depth_model(weights).infer_image(rgb, output="disp")  # the scaled disparity at the image's size
    assert label.shape == rgb.shape[:2]
    step = (expected.max() - expected.min()) / pl.PNG_LEVELS
    assert np.abs(label - expected).max() <= step  # equal up to the 16-bit quantisation
    code, err = run_script(capsys, "make_pseudo_labels.py", "--teacher", weights, "--teacher_output", "depth",
                           "--data_path", root, "--out_dir", tmp_path / "x", "--no_progress")
    assert code == 2 and "teacher_output" in err


# ------------------------------------------------------------------------------------------------ the benchmark
@pytest.mark.slow
def test_benchmark_smoke(tmp_path):
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "benchmarks/bench_pseudo_labels.py", "--steps", "1", "--teacher_steps", "1",
                           "--seeds", "0", "--drives", "2", "--frames", "6", "--world", str(tmp_path),
                           "--cache", str(tmp_path / "cache.json"), "--no_write"],
                          cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for row in ("| none |", "| noisy |", "| model |", "| perfect |", "beats (a) on"):
        assert row in proc.stdout, proc.stdout[-3000:]
