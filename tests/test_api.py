"""The Python API (``from monodepth2_geopt import load_depth_model``; ``DepthModel.infer_*``) and hubconf.py."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from monodepth2_geopt.depth_model import DepthModel
from monodepth2_geopt.errors import InputError
from tests.test_inference import make_depth_weights, real_or_synthetic_image

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def stereo_weights(tmp_path_factory):
    return make_depth_weights(tmp_path_factory.mktemp("api") / "models" / "weights_0", height=64, width=96,
                              use_stereo=True)


@pytest.fixture(scope="module")
def mono_weights(tmp_path_factory):
    return make_depth_weights(tmp_path_factory.mktemp("api_m") / "weights_0", height=64, width=96)


def by_hand(model, rgb: np.ndarray) -> torch.Tensor:
    """Monodepth2's test_simple.py steps: LANCZOS resize, [0, 1], network, bilinear upsample of the sigmoid."""
    from PIL import Image
    small = Image.fromarray(rgb).resize((model.width, model.height), Image.Resampling.LANCZOS)
    x = torch.from_numpy(np.asarray(small).copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        disp = model.decoder(model.encoder(x))[("disp", 0)]
    return F.interpolate(disp, rgb.shape[:2], mode="bilinear", align_corners=False)[0, 0]


def test_infer_image_gives_depth_at_the_original_size_metric_for_stereo(stereo_weights, mono_weights):
    from monodepth2_geopt import load_depth_model  # the documented import
    rgb = np.asarray(real_or_synthetic_image((123, 77)))
    stereo = load_depth_model(stereo_weights, device="cpu")
    assert isinstance(stereo, DepthModel) and stereo.is_metric and (stereo.height, stereo.width) == (64, 96)
    depth = stereo.infer_image(rgb)
    assert depth.dtype == np.float32 and depth.shape == (77, 123)
    sigmoid = by_hand(stereo, rgb).double()
    scaled = 1 / 100 + (1 / 0.1 - 1 / 100) * sigmoid  # disp_to_depth with Monodepth2's default range
    np.testing.assert_allclose(depth, 5.4 / scaled, rtol=1e-5)  # metric: x5.4
    np.testing.assert_allclose(stereo.infer_image(rgb, output="disp"), scaled, rtol=1e-5)
    np.testing.assert_allclose(stereo.infer_image(rgb, metric=False), 1 / scaled, rtol=1e-5)
    mono = load_depth_model(mono_weights)
    assert not mono.is_metric and "relative" in mono.describe_scale()
    np.testing.assert_allclose(mono.infer_image(rgb), 1 / scaled, rtol=1e-5)  # same weights: relative, no x5.4
    with pytest.raises(InputError, match="uint8"):
        stereo.infer_image(rgb.astype(np.float32) / 255)


def test_depth_range_comes_from_the_runs_opt_json(stereo_weights, tmp_path):
    from monodepth2_geopt import load_depth_model
    import shutil
    folder = shutil.copytree(stereo_weights, tmp_path / "models" / "weights_3")
    (tmp_path / "models" / "opt.json").write_text(json.dumps({"min_depth": 0.5, "max_depth": 20.0}))
    model = load_depth_model(folder)
    assert (model.min_depth, model.max_depth) == (0.5, 20.0)
    depth = model.infer_image(np.asarray(real_or_synthetic_image((50, 30))), metric=False)
    assert 0.5 - 1e-5 <= depth.min() and depth.max() <= 20.0 + 1e-4


def test_batch_and_video_helpers_match_single_images(stereo_weights, tmp_path):
    av = pytest.importorskip("av")
    from monodepth2_geopt import load_depth_model
    model = load_depth_model(stereo_weights)
    images = [np.asarray(real_or_synthetic_image(size, seed)) for seed, size in enumerate([(96, 64), (70, 41),
                                                                                          (130, 90)])]
    batched = model.infer_images(images, batch_size=2)
    assert [d.shape for d in batched] == [im.shape[:2] for im in images]
    for d, im in zip(batched, images):
        np.testing.assert_allclose(d, model.infer_image(im), rtol=1e-4)
    video, n = tmp_path / "clip.mp4", 5
    with av.open(str(video), "w") as dst:
        stream = dst.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(n):
            frame = np.roll(images[0], 3 * i, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    pairs = list(model.infer_video(video, batch_size=2))
    assert len(pairs) == n
    for frame, depth in pairs:
        assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8 and depth.shape == (64, 96)
        np.testing.assert_allclose(depth, model.infer_image(frame), rtol=1e-4)
    with pytest.raises(InputError, match="cannot open video"):
        list(model.infer_video(tmp_path / "missing.mp4"))


def test_torch_hub_loads_the_model_from_a_local_checkout(stereo_weights):
    model = torch.hub.load(str(REPO), "depth_model", weights_folder=str(stereo_weights), source="local")
    assert isinstance(model, DepthModel) and not model.training
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        assert model(x).shape == (2, 1, 64, 96)  # forward: NCHW in [0, 1] -> scale-0 sigmoid disparity
        torch.testing.assert_close(model(x), model.decoder(model.encoder(x))[("disp", 0)])
    with pytest.raises(InputError, match="exactly one"):
        torch.hub.load(str(REPO), "depth_model", source="local")
