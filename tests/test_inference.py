"""Single-image / folder / video inference (monodepth2_geopt.inference / test_simple.py)."""
import runpy
import shutil
import sys
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from monodepth2_geopt import inference
from monodepth2_geopt.checkpoint import save_weights_folder
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.inference import is_own_output, list_inputs, released_model_folder, run_inference
from monodepth2_geopt.networks import DepthDecoder, ResnetEncoder
from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
DATA = SHARED_DATA
pytestmark = pytest.mark.usefixtures("one_thread")
TEST_IMAGE = DATA / "test_image.jpg"


def run_script(script, *args):
    """Run a root script as `python <script> <args>` would, in this process (saves the interpreter start)."""
    argv = sys.argv
    sys.argv = [script] + [str(a) for a in args]
    try:
        runpy.run_path(str(REPO / script), run_name="__main__")
    finally:
        sys.argv = argv


def make_depth_weights(folder, num_layers=18, height=64, width=64, use_stereo=False):
    torch.manual_seed(0)
    encoder = ResnetEncoder(num_layers, False)
    decoder = DepthDecoder(encoder.num_ch_enc)
    meta = {"height": height, "width": width, "use_stereo": use_stereo}
    return save_weights_folder(folder, {"encoder": encoder, "depth": decoder}, encoder_meta=meta)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_depth_weights(tmp_path_factory.mktemp("w") / "weights_0")


def real_or_synthetic_image(size=(160, 90), seed=0):
    if TEST_IMAGE.is_file():
        with Image.open(TEST_IMAGE) as img:
            return img.convert("RGB").resize(size)
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def test_folder_writes_both_outputs_and_skips_its_own(weights, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    real_or_synthetic_image((160, 90)).save(folder / "a.jpg")
    real_or_synthetic_image((123, 77)).save(folder / "b.jpg")
    run_inference(folder, weights, ext="jpg", next_to_inputs=True)  # Monodepth2's habit, when asked
    for name, size in (("a", (160, 90)), ("b", (123, 77))):
        with Image.open(folder / f"{name}_disp.jpeg") as img:
            assert img.size == size  # the colour map is at the input's size
        assert np.load(folder / f"{name}_disp.npy").shape == (1, 1, size[1], size[0])  # and so is the array
    # a second run, also over .jpeg files, never treats its own outputs as inputs
    before = sorted(p.name for p in folder.iterdir())
    run_inference(folder, weights, ext="jpg", overwrite=True, next_to_inputs=True)  # else refused
    with pytest.raises(InputError, match="own outputs"):
        run_inference(folder, weights, ext="jpeg", next_to_inputs=True)  # only outputs have that extension here
    after = sorted(p.name for p in folder.iterdir())
    assert after == before
    assert not list(folder.glob("*_disp_disp*"))


def test_output_dir_and_metric_depth(weights, tmp_path):
    image = tmp_path / "x.png"
    real_or_synthetic_image().save(image)
    with pytest.warns(UserWarning, match="not trained with stereo"):
        written = run_inference(image, weights, pred_metric_depth=True, output_dir=tmp_path / "out")
    assert sorted(p.name for p in written) == ["x_depth.npy", "x_disp.jpeg"]
    depth = np.load(tmp_path / "out" / "x_depth.npy")
    assert depth.shape == (1, 1, 90, 160)  # the input's size
    assert np.all((depth >= 5.4 * 0.1 - 1e-4) & (depth <= 5.4 * 100 + 1e-2))  # 5.4 x depth in [0.1, 100]


@pytest.mark.slow  # a 100 MB checkpoint written and read: about 12 s
def test_resnet50_weights_need_no_flag(tmp_path):
    weights = make_depth_weights(tmp_path / "r50", num_layers=50, height=64, width=96)
    image = tmp_path / "x.jpg"
    real_or_synthetic_image().save(image)
    run_inference(image, weights, output_dir=tmp_path)
    assert np.load(tmp_path / "x_disp.npy").shape == (1, 1, 90, 160)


def test_video_gives_a_playable_side_by_side_mp4(weights, tmp_path):
    av = pytest.importorskip("av")
    video, w, h, n = tmp_path / "clip.mp4", 96, 64, 4
    base = np.asarray(real_or_synthetic_image((w + n * 4, h)))
    with av.open(str(video), "w") as dst:
        stream = dst.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, 4 * i:4 * i + w]), format="rgb24")
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    written = run_inference(video, weights, output_dir=tmp_path)
    assert written == [tmp_path / "clip_disp.mp4"]
    with av.open(str(written[0])) as src:
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    assert len(frames) == n
    assert frames[0].shape == (h, 2 * w, 3)
    fixed = run_inference(video, weights, output_dir=tmp_path / "fixed", fixed_range=[])  # first frame's range
    with av.open(str(fixed[0])) as src:
        assert sum(1 for _ in src.decode(video=0)) == n


def test_corrupt_image_is_an_error_alone_and_skipped_in_a_folder(weights, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    real_or_synthetic_image().save(folder / "good.jpg")
    with pytest.raises(InputError, match="broken.jpg"):
        run_inference(folder / "broken.jpg", weights)
    with pytest.warns(UserWarning, match="broken.jpg"):
        run_inference(folder, weights, next_to_inputs=True)
    assert (folder / "good_disp.jpeg").is_file() and not (folder / "broken_disp.jpeg").exists()


def test_missing_released_model_offline_says_where_to_put_it(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(inference, "urlopen", offline)
    with pytest.raises(InputError, match=r"mono\+stereo_640x192.*encoder.pth") as err:
        released_model_folder("mono+stereo_640x192", tmp_path)
    assert "mono%2Bstereo_640x192.zip" in str(err.value)
    with pytest.raises(InputError, match="unknown --model_name"):
        released_model_folder("mono_9000", tmp_path)


def test_released_model_found_locally(weights, tmp_path):
    shutil.copytree(weights, tmp_path / "models" / "mono_640x192")
    image = tmp_path / "x.jpg"
    real_or_synthetic_image().save(image)
    run_inference(image, model_name="mono_640x192", models_dir=tmp_path / "models", output_dir=tmp_path)
    assert (tmp_path / "x_disp.npy").is_file()


def test_own_outputs_are_recognised(tmp_path):
    for name in ("a_disp.jpeg", "a_disp.jpg", "a_disp.npy", "a_depth.npy", "a_disp.mp4"):
        assert is_own_output(name)
    assert not is_own_output("display.jpg")
    with pytest.raises(InputError, match="--ext"):
        list_inputs(tmp_path, "png")


@pytest.mark.skipif(not TEST_IMAGE.is_file(), reason=f"{TEST_IMAGE} not found")
def test_script_on_the_real_test_image(weights, tmp_path, capsys):
    image = tmp_path / "test_image.jpg"
    shutil.copy(TEST_IMAGE, image)
    run_script("test_simple.py", "--image_path", image, "--load_weights_folder", weights, "--no_cuda",
               "--out_dir", tmp_path)
    with Image.open(tmp_path / "test_image_disp.jpeg") as img:
        assert img.size == (638, 235)
    with pytest.raises(SystemExit) as exit_info:
        run_script("test_simple.py", "--image_path", image, "--load_weights_folder", tmp_path / "nope")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err


def test_default_output_folder_is_in_the_working_directory_and_every_file_is_named(weights, tmp_path, monkeypatch,
                                                                                   capsys):
    inputs = tmp_path / "read_only_inputs"
    inputs.mkdir()
    real_or_synthetic_image((90, 50)).save(inputs / "a.jpg")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    run_script("test_simple.py", "--image_path", inputs / "a.jpg", "--load_weights_folder", weights)
    out = Path("test_simple_out")
    assert sorted(p.name for p in inputs.iterdir()) == ["a.jpg"]  # nothing written beside the input
    assert sorted(p.name for p in (work / out).iterdir()) == ["a_disp.jpeg", "a_disp.npy"]
    printed = capsys.readouterr().out
    assert "Wrote 2 files" in printed and str(out / "a_disp.jpeg") in printed and str(out / "a_disp.npy") in printed
    with pytest.raises(InputError, match="not both"):
        run_inference(inputs / "a.jpg", weights, output_dir=tmp_path / "o", next_to_inputs=True)


def test_fixed_range_colours_every_image_on_the_first_ones_scale(weights, tmp_path):
    from monodepth2_geopt.visualize import colormap_disparity, disparity_range
    folder = tmp_path / "frames"
    folder.mkdir()
    real_or_synthetic_image((96, 64), seed=0).save(folder / "0.png")
    Image.fromarray(np.asarray(real_or_synthetic_image((96, 64)))[:, ::-1] // 3).save(folder / "1.png")  # darker

    def jpeg(out, name):
        with Image.open(out / f"{name}_disp.jpeg") as img:
            return np.asarray(img, dtype=np.float64)

    run_inference(folder, weights, ext="png", output_dir=tmp_path / "fixed", fixed_range=[])
    run_inference(folder, weights, ext="png", output_dir=tmp_path / "own")
    first = disparity_range(np.load(tmp_path / "fixed" / "0_disp.npy"))
    disp1 = np.load(tmp_path / "fixed" / "1_disp.npy")[0, 0]
    on_first_scale, own_scale = colormap_disparity(disp1, vrange=first), colormap_disparity(disp1)

    def distance(a, b):
        return np.abs(a - b.astype(np.float64)).mean()

    assert distance(on_first_scale, own_scale) > 10  # the two scales differ visibly here
    fixed, own = jpeg(tmp_path / "fixed", "1"), jpeg(tmp_path / "own", "1")
    assert distance(fixed, on_first_scale) < distance(fixed, own_scale) / 2  # the first image's scale
    assert distance(own, own_scale) < distance(own, on_first_scale) / 2  # Monodepth2's per-image scale by default
    with pytest.raises(InputError, match="NEAR FAR"):
        run_inference(folder, weights, ext="png", output_dir=tmp_path / "x", fixed_range=[5.0, 1.0])


def test_fixed_depth_range_maps_near_and_far_to_the_ends_of_the_colour_map(weights):
    from monodepth2_geopt.inference import ColourRange, OutputOptions
    from monodepth2_geopt.model_loading import load_depth_model
    model = load_depth_model(weights)  # monocular: depth = 1 / scaled disparity
    assert ColourRange(model, OutputOptions(fixed_range=(2.0, 50.0)))(np.ones((2, 2))) == (1 / 50.0, 1 / 2.0)
    metric = OutputOptions(pred_metric_depth=True, fixed_range=(2.0, 50.0))  # depths x5.4
    assert ColourRange(model, metric)(np.ones((2, 2))) == pytest.approx((5.4 / 50.0, 5.4 / 2.0))
    assert ColourRange(model, OutputOptions())(np.ones((2, 2))) is None  # per image (Monodepth2)
