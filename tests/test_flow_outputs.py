"""Seeing predicted flow: Middlebury .flo files (flow_io), predict_flow.py --image_pair, evaluate_flow.py --out_dir
(colour-wheel PNG + .flo per evaluated pair), refusal to overwrite, progress bars."""
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from monodepth2_geopt import checkpoint
from monodepth2_geopt.flow_io import FLO_MAGIC, read_flo, write_flo, write_flow_png
from monodepth2_geopt.options import MonodepthOptions
from monodepth2_geopt.tools import synthetic
from monodepth2_geopt.visualize import flow_to_color
from tests.conftest import run_script

pytestmark = pytest.mark.usefixtures("one_thread")
H, W = 64, 128


# ------------------------------------------------------------------------------------------ .flo codec
def test_flo_layout_by_hand(tmp_path):
    flow = np.array([[[1.5, -2.0], [0.25, 3.0], [0.0, 0.0]]], np.float32)  # H=1, W=3
    write_flo(tmp_path / "a.flo", flow)
    data = (tmp_path / "a.flo").read_bytes()
    assert data[:4] == b"PIEH" and struct.unpack("<f", data[:4])[0] == FLO_MAGIC
    assert struct.unpack("<ii", data[4:12]) == (3, 1)  # width, then height
    assert struct.unpack("<6f", data[12:]) == (1.5, -2.0, 0.25, 3.0, 0.0, 0.0)  # (u, v) row by row
    np.testing.assert_array_equal(read_flo(tmp_path / "a.flo"), flow)


def test_flo_rejects_other_files(tmp_path):
    write_flow_png(tmp_path / "k.png", np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match="PIEH"):
        read_flo(tmp_path / "k.png")
    write_flo(tmp_path / "t.flo", np.ones((4, 5, 2), np.float32))
    (tmp_path / "t.flo").write_bytes((tmp_path / "t.flo").read_bytes()[:-4])  # truncated
    with pytest.raises(ValueError, match="needs"):
        read_flo(tmp_path / "t.flo")
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        write_flo(tmp_path / "bad.flo", np.ones((4, 5, 3)))


# ------------------------------------------------------------------------------------------ a flow model
@pytest.fixture(scope="module")
def flow_weights(tmp_path_factory):
    """A freshly initialised pretrain_flow.py model at 64x128, its decoder's learnt fields made non-zero so the
    predicted flow varies over the image."""
    from monodepth2_geopt.flow_task import FlowTask

    torch.manual_seed(0)
    models = FlowTask(MonodepthOptions(task="flow").parse(["--height", str(H), "--width", str(W)])).build_models()
    with torch.no_grad():
        for p in models["flow"].parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
    folder = tmp_path_factory.mktemp("flow_model") / "weights_0"
    return checkpoint.save_weights_folder(folder, models, encoder_meta={"height": H, "width": W,
                                                                        "use_stereo": False})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from pathlib import Path
    return Path(synthetic.generate_dataset(tmp_path_factory.mktemp("flow_world") / "w", num_drives=1,
                                           frames_per_drive=5, width=W, height=H, seed=0, velodyne=False)["root"])


def test_predict_flow_writes_png_and_flo_at_the_image_size(flow_weights, world, tmp_path, capsys):
    frames = sorted(world.glob("*/*/image_02/data/*.png"))
    # the pair at twice the model's size: the flow comes back at the image's size, vectors in its pixels
    for i, name in enumerate(("a.png", "b.png")):
        Image.open(frames[i]).resize((2 * W, 2 * H)).save(tmp_path / name)
    out = tmp_path / "out"
    code, err = run_script(capsys, "predict_flow.py", "--image_pair", tmp_path / "a.png", tmp_path / "b.png",
                           "--load_weights_folder", flow_weights, "--out_dir", out, "--no_cuda")
    assert code == 0, err
    flow = read_flo(out / "a_flow.flo")
    assert flow.shape == (2 * H, 2 * W, 2) and np.isfinite(flow).all() and flow.std() > 0
    # the same prediction in the library: the .flo holds it exactly
    from monodepth2_geopt.flow import predict_image_pair
    again = predict_image_pair(flow_weights, tmp_path / "a.png", tmp_path / "b.png", tmp_path / "lib")
    np.testing.assert_array_equal(flow, again["flow"].permute(1, 2, 0).numpy())
    # vectors are in the image's pixels: the same frames at the model's own size give half the motion
    small = predict_image_pair(flow_weights, frames[0], frames[1], tmp_path / "small")["flow"]
    assert float(again["flow"].norm(dim=0).mean() / small.norm(dim=0).mean()) == pytest.approx(2.0, rel=0.1)
    png = np.asarray(Image.open(out / "a_flow.png"))
    expected = (flow_to_color(torch.from_numpy(flow).permute(2, 0, 1)).permute(1, 2, 0).numpy() * 255).round()
    assert png.shape == (2 * H, 2 * W, 3) and np.abs(png - expected).max() <= 1
    # a second run refuses to overwrite, in one line, and leaves the files as they were
    before = (out / "a_flow.flo").read_bytes()
    code, err = run_script(capsys, "predict_flow.py", "--image_pair", tmp_path / "a.png", tmp_path / "b.png",
                           "--load_weights_folder", flow_weights, "--out_dir", out, "--no_cuda")
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (out / "a_flow.flo").read_bytes() == before
    code, _ = run_script(capsys, "predict_flow.py", "--image_pair", tmp_path / "a.png", tmp_path / "b.png",
                         "--load_weights_folder", flow_weights, "--out_dir", out, "--no_cuda", "--overwrite")
    assert code == 0


def test_predict_flow_refuses_images_of_different_sizes(flow_weights, tmp_path, capsys):
    Image.new("RGB", (40, 20)).save(tmp_path / "a.png")
    Image.new("RGB", (40, 30)).save(tmp_path / "b.png")
    code, err = run_script(capsys, "predict_flow.py", "--image_pair", tmp_path / "a.png", tmp_path / "b.png",
                           "--load_weights_folder", flow_weights, "--out_dir", tmp_path / "o")
    assert code == 2 and "same size" in err and not (tmp_path / "o").exists()


def test_evaluate_flow_saves_every_pair_and_refuses_to_overwrite(flow_weights, world, tmp_path, capsys):
    from monodepth2_geopt.flow import find_flow_pairs

    out = tmp_path / "flows"
    args = ["--load_weights_folder", flow_weights, "--flow_eval_path", world, "--out_dir", out, "--no_cuda"]
    code, err = run_script(capsys, "evaluate_flow.py", *args)
    assert code == 0, err
    pairs = find_flow_pairs(world)
    flos = sorted(out.glob("*_flow.flo"))
    assert len(flos) == len(pairs) == len(list(out.glob("*_flow.png"))) and len(pairs) >= 3
    assert all(read_flo(f).shape == (H, W, 2) for f in flos)
    assert "diagnostics" in err  # the progress bar (stderr)
    code, err = run_script(capsys, "evaluate_flow.py", *args)
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    code, err = run_script(capsys, "evaluate_flow.py", *args, "--overwrite", "--no_progress")
    assert code == 0 and "diagnostics" not in err
