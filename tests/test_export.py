"""export_model.py / monodepth2_geopt.export: ONNX checked with onnxruntime, TorchScript reloaded without the project.

Optional dependencies: ``pip install onnx onnxruntime`` (requirements.txt pins them, so CI runs these tests).
"""
import json

import numpy as np
import pytest
import torch

from monodepth2_geopt.checkpoint import save_weights_folder
from monodepth2_geopt.export import check_torchscript, depth_spec, export_model, export_torchscript, onnx_session
from monodepth2_geopt.model_loading import load_depth_model
from monodepth2_geopt.networks import DepthDecoder, PoseDecoder, ResnetEncoder
from tests.conftest import SHARED_DATA, run_script

pytestmark = pytest.mark.usefixtures("one_thread")
H, W = 64, 96
TOLERANCE = 1e-4  # the acceptance bound of issue 15 (max abs difference to PyTorch)


def make_weights(folder, seed=0, use_stereo=True, **meta):
    """A depth + pose weights folder at 96x64 with random weights (``seed``); ``meta``: more encoder.pth entries."""
    torch.manual_seed(seed)
    enc, penc = ResnetEncoder(18, False), ResnetEncoder(18, False, 2)
    models = {"encoder": enc, "depth": DepthDecoder(enc.num_ch_enc), "pose_encoder": penc,
              "pose": PoseDecoder(penc.num_ch_enc, 1, 2)}
    return save_weights_folder(folder, models, encoder_meta={"height": H, "width": W, "use_stereo": use_stereo,
                                                             **meta})


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_weights(tmp_path_factory.mktemp("export") / "weights_0")


def real_frames(model) -> torch.Tensor:
    """Real frames (Monodepth2's test image, KITTI raw frames) at the network size, or random ones without them."""
    paths = [SHARED_DATA / "test_image.jpg"]
    paths += sorted((SHARED_DATA / "kitti_raw_mini").rglob("image_02/data/*.png"))[:3]
    images = [np.asarray(__import__("PIL.Image").Image.open(p).convert("RGB")) for p in paths if p.is_file()]
    if len(images) < 2:
        return torch.rand(4, 3, H, W, generator=torch.Generator().manual_seed(1))
    return model.prepare(images)


def test_onnx_matches_pytorch_on_real_frames_with_a_dynamic_batch(weights, tmp_path):
    pytest.importorskip("onnxruntime", reason="optional: pip install onnx onnxruntime")
    model = load_depth_model(weights)
    frames = real_frames(model)
    results = export_model(weights, ["onnx"], tmp_path, pose=True, check_inputs=frames, log=lambda s: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disp.onnx", "disp.onnx.json", "pose.onnx",
                                                          "pose.onnx.json"]
    assert all(r["max_abs_difference"] < TOLERANCE for r in results.values()), results
    session = onnx_session(tmp_path / "disp.onnx")
    assert session.get_inputs()[0].name == "image" and session.get_inputs()[0].shape[1:] == [3, H, W]
    with torch.no_grad():
        reference = model(frames).numpy()
    for batch in (1, len(frames)):  # any batch size
        (disp,) = session.run(None, {"image": frames[:batch].numpy()})
        assert disp.shape == (batch, 1, H, W)
        assert np.abs(disp - reference[:batch]).max() < TOLERANCE
    # negative control: another network's output is far outside the tolerance
    other = load_depth_model(make_weights(tmp_path / "other" / "weights_0", seed=1))
    with torch.no_grad():
        assert np.abs(disp - other(frames).numpy()).max() > 100 * TOLERANCE
    # the pose network: (a, b) pairs of consecutive frames; T maps frame a's camera to frame b's
    pose = onnx_session(tmp_path / "pose.onnx")
    pairs = torch.cat([frames[:-1], frames[1:]], 1).numpy()
    axisangle, translation, T = pose.run(None, {"frames": pairs})
    assert axisangle.shape == translation.shape == (len(pairs), 3) and T.shape == (len(pairs), 4, 4)
    np.testing.assert_allclose(T[:, :3, 3], translation, atol=1e-6)  # T = translation @ rotation
    np.testing.assert_allclose(T[:, :3, :3] @ T[:, :3, :3].transpose(0, 2, 1), np.eye(3)[None].repeat(len(T), 0),
                               atol=1e-5)
    onnx = pytest.importorskip("onnx", reason="optional: pip install onnx onnxruntime")
    onnx.checker.check_model(str(tmp_path / "disp.onnx"))


def test_onnx_depth_output_is_metric_depth_for_a_stereo_model(weights, tmp_path):
    pytest.importorskip("onnxruntime", reason="optional: pip install onnx onnxruntime")
    export_model(weights, ["onnx"], tmp_path, output="depth", check=False, log=lambda s: None)
    model = load_depth_model(weights)
    frames = real_frames(model)[:2]
    (depth,) = onnx_session(tmp_path / "depth.onnx").run(
        None, {"image": frames.numpy()})
    with torch.no_grad():
        scaled = model.scaled_disparity(model(frames)).numpy()
    np.testing.assert_allclose(depth, 5.4 / scaled, rtol=1e-5)  # stereo-trained: metres
    info = json.loads((tmp_path / "depth.onnx.json").read_text())
    assert info["output"]["name"] == "depth" and "metres" in info["output"]["meaning"] and info["stereo_scale"] == 5.4


@pytest.mark.slow  # a clean interpreter reloads the file (about 5 s)
def test_torchscript_reloads_without_the_project_and_existing_files_are_refused(weights, tmp_path, capsys):
    code, err = run_script(capsys, "export_model.py", "--load_weights_folder", weights, "--format", "torchscript",
                           "--out_dir", tmp_path, "--no_check")  # checked below, on real frames
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disp.pt", "disp.pt.json"]
    model = load_depth_model(weights)
    frames = real_frames(model)
    assert check_torchscript(tmp_path / "disp.pt", model, frames) < TOLERANCE  # a fresh interpreter, no project
    before = (tmp_path / "disp.pt").stat().st_mtime_ns
    code, err = run_script(capsys, "export_model.py", "--load_weights_folder", weights, "--format", "torchscript",
                           "onnx", "--out_dir", tmp_path)
    assert code == 2 and err.count("\n") == 1 and "disp.pt" in err and "--overwrite" in err, err
    assert (tmp_path / "disp.pt").stat().st_mtime_ns == before and not (tmp_path / "disp.onnx").exists()


@pytest.mark.slow
def test_the_reload_check_fails_for_a_file_that_needs_the_project(weights, tmp_path):
    """Negative control of the TorchScript check: a pickled module (not TorchScript) needs monodepth2_geopt, which
    the check's interpreter cannot import."""
    spec = depth_spec(load_depth_model(weights))
    torch.save(spec.module, tmp_path / "pickled.pt")
    with pytest.raises(RuntimeError, match="monodepth2_geopt"):
        check_torchscript(tmp_path / "pickled.pt", spec.module, spec.example, loader="pickle")
    export_torchscript(spec, tmp_path / "traced.pt")  # the same network as TorchScript passes
    assert check_torchscript(tmp_path / "traced.pt", spec.module, spec.example) < TOLERANCE


@pytest.mark.slow
def test_dynamo_onnx_exporter(weights, tmp_path):
    pytest.importorskip("onnxruntime", reason="optional: pip install onnx onnxruntime")
    pytest.importorskip("onnxscript", reason="optional: pip install onnxscript (--onnx_exporter dynamo)")
    results = export_model(weights, ["onnx"], tmp_path, onnx_exporter="dynamo", log=lambda s: None)
    assert all(r["max_abs_difference"] < TOLERANCE for r in results.values()), results


def test_pose_of_a_focal_relative_pose_model_is_refused_before_anything_is_written(tmp_path):
    """Its pose outputs are in units of the learned focal length: exported alone they would be wrong radians."""
    from monodepth2_geopt.errors import InputError
    weights = make_weights(tmp_path / "w", use_stereo=False, focal_relative_pose=True)
    with pytest.raises(InputError, match="--focal_relative_pose.*export without --pose"):
        export_model(weights, ["torchscript"], tmp_path / "out", pose=True, log=lambda s: None)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    export_model(weights, ["torchscript"], tmp_path / "out", check=False, log=lambda s: None)  # depth alone is fine
    assert (tmp_path / "out" / "disp.pt").is_file()

