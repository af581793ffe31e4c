"""What TensorBoard shows, read back from the event files: pretrain_flow.py logs the flow as a colour wheel, the
warped sources, the photometric error map and the GeoPt diagnostics; train.py logs disparity in magma, the
auto-mask and, with --learn_intrinsics, the intrinsics."""
import numpy as np
import pytest
import torch

from monodepth2_geopt.options import MonodepthOptions
from monodepth2_geopt.tools import synthetic
from tests.tb_events import read_events

pytestmark = pytest.mark.usefixtures("one_thread")
H, W = 64, 128


def is_colour(image: np.ndarray) -> bool:
    """True when the channels differ somewhere (a grey map repeats one channel)."""
    image = image.astype(int)
    return bool((np.abs(image[..., 0] - image[..., 2]) > 10).any())


@pytest.fixture(scope="module")
def flow_events(tmp_path_factory):
    from monodepth2_geopt.flow_task import flow_trainer

    base = tmp_path_factory.mktemp("tb_flow")
    info = synthetic.generate_dataset(base / "world", num_drives=1, frames_per_drive=12, width=W, height=H, seed=0,
                                      velodyne=False, val_fraction=0.3)
    opt = MonodepthOptions(task="flow").parse([
        "--data_path", str(info["root"]), "--flow_split", str(info["splits"]["train"]), "--model_name", "geopt",
        "--log_dir", str(base / "runs"), "--height", str(H), "--width", str(W), "--batch_size", "2",
        "--flow_epoch_size", "2", "--num_epochs", "1", "--num_workers", "0", "--no_progress", "--seed", "0",
        "--log_frequency", "1", "--flow_eval_path", str(info["root"]), "--no_cuda"])
    torch.manual_seed(0)
    flow_trainer(opt).train()
    return read_events(base / "runs" / "geopt")


def test_pretraining_logs_flow_warps_errors_and_diagnostics(flow_events):
    tags = set(flow_events)
    for f in (-1, 1):
        assert f"flow_{f}_0/0" in tags and f"color_pred_{f}_0/0" in tags and f"photometric_error_{f}_0/0" in tags
    flow = flow_events["flow_1_0/0"][0][1]
    assert flow.shape == (H, W, 3) and is_colour(flow)  # the colour wheel, not a grey magnitude
    error = flow_events["photometric_error_1_0/0"][0][1]
    assert error.shape == (H, W, 3) and error.min() == 0 and error.max() == 255  # scaled per image
    warped, target = flow_events["color_pred_1_0/0"][0][1], flow_events["color_0_0/0"][0][1]
    assert warped.shape == target.shape and not np.array_equal(warped, target)
    for name in ("epe", "epe_zero_flow", "fl_all", "latent_sensitivity", "direction_cosine", "structure_usage"):
        values = flow_events[f"geopt/{name}"]
        assert values and all(np.isfinite(v) for _, v in values), name
    assert "flow/epe" in tags and "loss" in tags


@pytest.fixture(scope="module")
def depth_events(kitti_tiny, tmp_path_factory):
    from monodepth2_geopt.depth_task import depth_trainer

    base = tmp_path_factory.mktemp("tb_depth")
    opt = MonodepthOptions().parse([
        "--data_path", str(kitti_tiny.root), "--png", "--split", str(kitti_tiny.split), "--height", "64",
        "--width", "96", "--batch_size", "2", "--num_epochs", "1", "--num_workers", "0", "--weights_init", "scratch",
        "--no_progress", "--log_dir", str(base), "--model_name", "m", "--seed", "0", "--log_frequency", "1",
        "--learn_intrinsics", "--no_cuda", "--scales", "0"])
    torch.manual_seed(0)
    depth_trainer(opt).train()
    return read_events(base / "m")


def test_depth_training_logs_magma_disparity_automask_and_intrinsics(depth_events):
    disp = depth_events["disp_0/0"][0][1]
    assert disp.shape == (64, 96, 3) and is_colour(disp)  # magma, not Monodepth2's grey
    brightness = disp.astype(int).sum(-1)
    assert brightness.min() < 60 and brightness.max() > 450  # magma runs from near black to light yellow
    mask = depth_events["automask_0/0"][0][1]
    assert set(np.unique(mask)) <= {0, 255}  # a binary map
    for name, low, high in (("fx", 0.0, 5.0), ("fy", 0.0, 10.0), ("cx", 0.0, 1.0), ("cy", 0.0, 1.0)):
        values = depth_events[f"intrinsics/{name}"]
        assert values and all(low < v < high for _, v in values), name
    # the initial guess is KITTI's (0.58, 1.92, 0.5, 0.5): an untrained head starts there
    assert depth_events["intrinsics/fx"][0][1] == pytest.approx(0.58, rel=0.05)
