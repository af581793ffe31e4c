"""Shared fixtures: a tiny synthetic KITTI-raw tree with exactly known geometry, and the shared real data.

The synthetic scene is a textured fronto-parallel plane at depth ``PLANE_DEPTH`` seen by a camera that
moves ``T_X`` along +x per frame (so frame k's camera centre is at x = k * T_X); the right camera
(``image_03``) sits ``BASELINE`` further along +x, Monodepth2's stereo convention in training units.
With Monodepth2's normalised KITTI intrinsics (fx=0.58, fy=1.92, cx=cy=0.5) scaled to pixels as
``prepare_batch`` does (K_px = K_norm x (W, H)), pixel (u, v) of the camera at x = c sees the plane point
X = (u - cx) / fx * d + c, Y = (v - cy) / fy * d, whose colour is the analytic ``texture(X, Y)``.
So a point of target frame 0 lies in source frame k's camera at P_k = P_0 - (k * T_X, 0, 0): the
target->source transform has T[0, 3] = -k * T_X, and the rigid flow is -fx * k * T_X / d pixels.
"""
from __future__ import annotations

import os
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# The real samples beside the project (../shared/data; M2G_SHARED_DATA overrides). A test that needs them skips
# with a reason naming this path when they are absent, unless M2G_REQUIRE_SHARED_DATA=1 (as .ci/run sets), which
# turns those skips into failures: CI must not pass by skipping the real-data tests.
SHARED_DATA = Path(os.environ.get("M2G_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
REQUIRE_SHARED_DATA = os.environ.get("M2G_REQUIRE_SHARED_DATA") == "1"

KITTI_K_NORM = (0.58, 1.92, 0.5, 0.5)
PLANE_DEPTH = 2.0
T_X = 0.2          # camera motion per frame along +x (training units)
BASELINE = 0.1     # right camera offset along +x (Monodepth2's stereo baseline in training units)
HEIGHT, WIDTH = 64, 96
NUM_FRAMES = 6
DATE = "2011_09_26"
DRIVE = f"{DATE}/{DATE}_drive_0001_sync"


def texture(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Smooth RGB texture on the plane, values in about [0.1, 0.9]. Returns [3, *X.shape]."""
    chans = []
    for c, (fx, fy, ph) in enumerate([(1.3, 4.1, 0.0), (2.1, 2.9, 1.0), (0.9, 5.3, 2.0)]):
        v = (0.5 + 0.2 * np.sin(2 * np.pi * fx * X + ph) * np.cos(2 * np.pi * 0.5 * fy * Y)
             + 0.15 * np.sin(2 * np.pi * (0.7 * X + 1.1 * Y) + c))
        chans.append(v)
    return np.clip(np.stack(chans), 0.0, 1.0)


def render_plane(height: int, width: int, cam_x: float = 0.0, depth: float = PLANE_DEPTH,
                 k_norm=KITTI_K_NORM) -> np.ndarray:
    """Image [3, H, W] float64 of the textured plane at ``depth`` from a camera at x = ``cam_x``."""
    fx, fy, cx, cy = k_norm[0] * width, k_norm[1] * height, k_norm[2] * width, k_norm[3] * height
    v, u = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    X = (u - cx) / fx * depth + cam_x
    Y = (v - cy) / fy * depth
    return texture(X, Y)


def to_pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(img.transpose(1, 2, 0) * 255).astype(np.uint8))


def write_kitti_raw(root: Path, height: int = HEIGHT, width: int = WIDTH, num_frames: int = NUM_FRAMES,
                    exts=(".png", ".jpg")) -> Path:
    """Write the synthetic scene in KITTI-raw layout under ``root``; returns ``root``."""
    for side, cam, offset in (("l", 2, 0.0), ("r", 3, BASELINE)):
        d = root / DRIVE / f"image_0{cam}" / "data"
        d.mkdir(parents=True, exist_ok=True)
        for k in range(num_frames):
            img = to_pil(render_plane(height, width, cam_x=k * T_X + offset))
            for ext in exts:
                if ext == ".jpg":
                    img.save(d / f"{k:010d}{ext}", quality=95)
                else:
                    img.save(d / f"{k:010d}{ext}")
    return root


def write_split(folder: Path, train: list[str], val: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train_files.txt").write_text("".join(f"{ln}\n" for ln in train))
    (folder / "val_files.txt").write_text("".join(f"{ln}\n" for ln in val))
    return folder


@pytest.fixture(scope="session")
def kitti_tiny(tmp_path_factory):
    """Read-only synthetic KITTI-raw tree (64x96, frames 0..5, sides l/r, png and jpg) plus a split folder.

    The split has two training lines (one batch of 2) and two validation lines. Tests that need to damage
    files must copy the tree first.
    """
    base = tmp_path_factory.mktemp("kitti_tiny")
    root = write_kitti_raw(base / "data")
    split = write_split(base / "split", [f"{DRIVE} 1 l", f"{DRIVE} 2 r"], [f"{DRIVE} 3 l", f"{DRIVE} 4 r"])
    return types.SimpleNamespace(
        root=root, split=split, drive=DRIVE, height=HEIGHT, width=WIDTH, num_frames=NUM_FRAMES,
        depth=PLANE_DEPTH, t_x=T_X, baseline=BASELINE, k_norm=KITTI_K_NORM)


@pytest.fixture
def plane_renderer():
    """The analytic renderer of the synthetic scene: ``render(height, width, cam_x, depth)`` -> [3, H, W]."""
    return render_plane


# Under pytest-xdist (`-n auto`, the README's command) each worker is one process on one core: one thread each, or
# two workers on a 2-core machine oversubscribe it (5-10x slower steps). Alone, min(2, cores) threads.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
TEST_THREADS = int(os.environ.get("M2G_TEST_THREADS") or (1 if XDIST_WORKER else min(2, os.cpu_count() or 1)))

# Modules sharing a session fixture run on one worker, so the fixture (mono_run: a 250-step M run) is built once.
SHARED_WORKER = {"test_learning": "mono_run", "test_speed_options": "mono_run"}
# The slow groups, longest first (measured on 2 cores): with `--dist loadgroup --no-loadscope-reorder` the workers
# start on these and the short modules fill in behind them, so the run ends at about half the serial time.
LONGEST_FIRST = ("test_geopt_learning", "mono_run", "test_resume", "test_benchmarks", "test_intrinsics",
                 "test_flow_trainer", "test_flow", "test_trainer", "test_ddp", "test_faults")


def xdist_group(item: pytest.Item) -> str:
    return SHARED_WORKER.get(item.path.stem, item.path.stem)


def pytest_configure(config):
    """Every test runs with a bounded intra-op thread count (M2G_TEST_THREADS; default min(2, cores), one thread in
    a pytest-xdist worker): results do not depend on how many cores a machine has, and tests run side by side do
    not oversubscribe it. Subprocesses that tests start inherit the bound through OMP_NUM_THREADS."""
    torch.set_num_threads(TEST_THREADS)
    if XDIST_WORKER:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(TEST_THREADS)


def pytest_collection_modifyitems(config, items):
    """One xdist group per module (module-scoped fixtures are built once), SHARED_WORKER's modules together, and
    the longest groups first. The order within a module is kept."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group(item)))
    items.sort(key=lambda item: rank.get(xdist_group(item), len(rank)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With M2G_REQUIRE_SHARED_DATA=1, a skip whose reason names the shared data path is reported as a failure."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SHARED_DATA and report.skipped and str(SHARED_DATA) in str(report.longrepr):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"M2G_REQUIRE_SHARED_DATA=1 and a real-data test would skip: {reason}"


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's network-heavy tests on one intra-op thread, then restore the setting.

    Tiny convolutions gain little from a second thread, and on a busy 2-core machine the threads' spin-waits
    made single steps 5-10x slower. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` next to the project (real KITTI samples); skips when this checkout lacks it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def kitti_raw_mini(shared_data) -> Path:
    """5 real KITTI raw frames (image_02 PNG + velodyne + calib) in Monodepth2's layout."""
    root = shared_data / "kitti_raw_mini"
    if not (root / "2011_09_26" / "calib_cam_to_cam.txt").is_file():
        pytest.skip(f"kitti_raw_mini not found at {root}")
    return root


# --------------------------------------------------------------------------- training on the synthetic world
SYNTH_WIDTH, SYNTH_HEIGHT = 160, 64
MONO_STEPS, MONO_AUTOMASK_WARMUP = 250, 75


def synthetic_trainer(world, log_dir, name: str, mode: str, seed: int = 0, extra=()):
    """A CPU Trainer on a synthetic world from ``prepare_synthetic``: ResNet-18 from scratch, 160x64, batch 4,
    lr 2e-4, no loader workers; ``mode`` is "M", "S" or "MS"; ``extra`` are more train.py flags."""
    from monodepth2_geopt.tools.experiments import MODE_FLAGS, make_trainer
    data, split = world
    torch.manual_seed(seed)
    return make_trainer(["--data_path", data, "--png", "--split", split, "--height", SYNTH_HEIGHT,
                         "--width", SYNTH_WIDTH, "--batch_size", 4, "--num_workers", 0, "--weights_init", "scratch",
                         "--no_progress", "--log_dir", log_dir, "--model_name", name, "--seed", seed,
                         "--learning_rate", "2e-4", "--no_cuda", *MODE_FLAGS[mode], *extra])


def train_synthetic(world, log_dir: Path, mode: str, steps: int, extra=()):
    """Train ``mode`` from scratch for ``steps`` (``synthetic_trainer``) and evaluate on the held-out drive: S
    metric, M and MS per-image median scaled. Returns a namespace with ``before`` / ``after`` (metrics of the
    untrained and trained networks), ``stats`` (from ``train_steps``) and ``weights`` (the trained folder)."""
    from monodepth2_geopt.tools.experiments import evaluate_weights, save_initial, train_steps
    data, split = world
    stereo = mode == "S"
    trainer = synthetic_trainer(world, log_dir, mode, mode, extra=extra)
    before = evaluate_weights(save_initial(trainer, log_dir / "untrained"), data, split, stereo=stereo)
    stats = train_steps(trainer, steps)
    after = evaluate_weights(stats["weights"], data, split, stereo=stereo)
    return types.SimpleNamespace(before=before, after=after, stats=stats, weights=stats["weights"])


@pytest.fixture(scope="session")
def mono_world(tmp_path_factory):
    """A 5-drive synthetic world at 160x64: drives 1-4 train (more scenes and speeds for the pose network),
    drive 5 is the held-out test drive. Returns (data_path, split_dir)."""
    from monodepth2_geopt.tools.experiments import prepare_synthetic
    return prepare_synthetic(tmp_path_factory.mktemp("mono_world"), SYNTH_WIDTH, SYNTH_HEIGHT, drives=5,
                             frames=30, seed=0)


@pytest.fixture(scope="session")
def mono_run(mono_world, tmp_path_factory):
    """M mode from scratch, ``MONO_STEPS`` steps with ``--automask_warmup MONO_AUTOMASK_WARMUP`` (about 2.5 min on
    2 CPU cores), run once per session: the M learning test checks it and the speed-option check starts from it.
    Returns ``train_synthetic``'s namespace.
    """
    return train_synthetic(mono_world, tmp_path_factory.mktemp("mono_run"), "M", MONO_STEPS,
                           extra=["--automask_warmup", MONO_AUTOMASK_WARMUP])


def run_script(capsys, script: str, *args) -> tuple[int, str]:
    """(exit status, stderr) of ``python <script> <args>`` run in this process (faster than a subprocess)."""
    import runpy
    import sys
    argv = sys.argv
    sys.argv = [script] + [str(a) for a in args]
    code = 0
    try:
        runpy.run_path(str(Path(__file__).resolve().parents[1] / script), run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    return code, capsys.readouterr().err
