"""GeoPt diagnostics on hand-built cases: each number against its analytic value, and negative controls."""
import json
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

from monodepth2_geopt import flow_diagnostics as fd
from monodepth2_geopt.metrics import flow_direction_cosine, relative_flow_change

H, W = 32, 64


def test_relative_flow_change_analytic():
    ref = torch.randn(2, 2, 8, 8)
    assert float(relative_flow_change(ref, ref)) == 0.0
    assert float(relative_flow_change(torch.zeros_like(ref), ref)) == pytest.approx(1.0)
    assert float(relative_flow_change(-ref, ref)) == pytest.approx(2.0)
    assert float(relative_flow_change(1.5 * ref, ref)) == pytest.approx(0.5)


def test_direction_cosine_analytic():
    f = torch.randn(3, 2, 8, 8)
    assert float(flow_direction_cosine(f, -f)) == pytest.approx(-1.0)
    assert float(flow_direction_cosine(f, 2 * f)) == pytest.approx(1.0)
    u = torch.zeros(1, 2, 4, 4)
    u[:, 0] = 1
    v = torch.zeros(1, 2, 4, 4)
    v[:, 1] = 1
    assert float(flow_direction_cosine(u, v)) == pytest.approx(0.0)


def test_derangement_has_no_fixed_point():
    for n in (2, 3, 8, 16):
        perm = fd.derangement(n, seed=n)
        assert sorted(perm.tolist()) == list(range(n)) and not (perm == torch.arange(n)).any()
    with pytest.raises(ValueError):
        fd.derangement(1)


def test_forward_backward_check_on_a_constant_shift():
    fwd = torch.zeros(2, H, W)
    fwd[0] = 3.0
    valid = fd.forward_backward_valid(fwd, -fwd)
    assert valid[:, :W - 3].all() and not valid[:, W - 3:].any()  # p + f leaves the image in the last 3 columns
    assert not fd.forward_backward_valid(fwd, fwd)[:, :W - 3].any()  # negative control: same direction both ways


def _texture(seed=0, h=H, w=W):
    rng = np.random.default_rng(seed)
    img = rng.random((3, h // 4, w // 4)).astype(np.float32)
    return torch.nn.functional.interpolate(torch.from_numpy(img)[None], size=(h, w), mode="bicubic",
                                           align_corners=False)[0].clamp(0, 1)


def test_tvl1_reference_recovers_a_shift():
    big = _texture(1, H, W + 8)
    target, source = big[:, :, 2:W + 2], big[:, :, 4:W + 4]  # target(p) = source(p - 2): flow target->source = -2
    flow, valid = fd.reference_flow(target, source)
    assert valid.float().mean() > 0.5
    inner = valid.clone()
    inner[:, :4] = inner[:, -4:] = False
    assert float(flow[0][inner].mean()) == pytest.approx(-2.0, abs=0.3)
    assert float(flow[1][inner].abs().mean()) < 0.3


class StubStructure(nn.Module):
    """Five feature maps like ResnetEncoder's at 1/2 .. 1/32 (a constant, so skips carry no information)."""

    def forward(self, x):
        b, _, h, w = x.shape
        return [x.new_ones(b, 4, h // 2 ** (i + 1), w // 2 ** (i + 1)) for i in range(5)]


class StubMotion(nn.Module):
    """Latent = mean horizontal offset hint: +1 for the source whose mean brightness is higher (a test device)."""

    def forward(self, pair):
        return (pair[:, 3:].mean((1, 2, 3)) - pair[:, :3].mean((1, 2, 3))).sign()[:, None]


class StubDecoder(nn.Module):
    """flow u = gain * latent (or a constant when ``ignore_latent``), at scale 0."""

    def __init__(self, ignore_latent=False, use_skips=False):
        super().__init__()
        self.ignore_latent, self.use_skips = ignore_latent, use_skips

    def forward(self, features, latent):
        b = features[0].shape[0]
        n = latent.shape[0] // b
        h, w = features[0].shape[-2] * 2, features[0].shape[-1] * 2
        z = torch.ones_like(latent) if self.ignore_latent else latent
        u = 2.0 * z[:, :1, None, None].expand(-1, 1, h, w)
        if self.use_skips:
            u = u + features[0].repeat(n, 1, 1, 1).mean(1, keepdim=True).repeat_interleave(2, -1).repeat_interleave(2, -2)
        return {("flow", 0): torch.cat([u, torch.zeros_like(u)], 1)}


def _batch(b=4):
    target = torch.full((b, 3, H, W), 0.5)
    return target, {-1: target - 0.1, 1: target + 0.1}


def test_decoder_that_ignores_the_latent_has_zero_sensitivity_and_cosine_one():
    target, sources = _batch()
    d = fd.diagnose(StubStructure(), StubMotion(), StubDecoder(ignore_latent=True), target, sources)
    assert d["latent_sensitivity"] == 0.0
    assert d["direction_cosine"] == pytest.approx(1.0)
    assert d["structure_usage"] == 0.0  # the stub never reads the skip features


def test_latent_driven_opposite_flows():
    target, sources = _batch()
    d = fd.diagnose(StubStructure(), StubMotion(), StubDecoder(), target, sources)
    assert d["direction_cosine"] == pytest.approx(-1.0)
    # 8 pairs, latents +-1: a derangement moves k latents onto the other direction, each changing the flow by 2x
    perm = fd.derangement(8, 0)
    signs = torch.tensor([-1.0] * 4 + [1.0] * 4)
    expected = float((signs[perm] != signs).float().mean() * 2)
    assert d["latent_sensitivity"] == pytest.approx(expected)
    d_skips = fd.diagnose(StubStructure(), StubMotion(), StubDecoder(use_skips=True), target, sources)
    assert d_skips["structure_usage"] > 0


def test_epe_against_ground_truth_and_zero_flow():
    target, sources = _batch(2)
    gt = torch.zeros(2, H, W)
    gt[0] = 2.0  # the stub predicts u = +2 towards the brighter source +1: exact
    valid = torch.ones(H, W, dtype=torch.bool)
    d = fd.diagnose(StubStructure(), StubMotion(), StubDecoder(), target, sources, [(gt, valid), (gt, valid)])
    assert d["epe"] == pytest.approx(0.0) and d["epe_zero_flow"] == pytest.approx(2.0) and d["fl_all"] == 0.0
    wrong = torch.zeros(2, H, W)
    wrong[0] = -2.0  # negative control: a wrong sign is an error of 4 px and every pixel an outlier
    d = fd.diagnose(StubStructure(), StubMotion(), StubDecoder(), target, sources, [(wrong, valid), None])
    assert d["epe"] == pytest.approx(4.0) and d["fl_all"] == pytest.approx(1.0) and d["num_images"] == 1
    d = fd.diagnose(StubStructure(), StubMotion(), StubDecoder(), target, sources, [(wrong, valid)] * 2,
                    truth_kind="reference")
    assert d["epe_kind"] == "reference" and d["fl_all"] is None


def test_aggregate_weights_and_table():
    a = {k: None for k in fd.DIAGNOSTIC_KEYS}
    a.update(epe=1.0, epe_zero_flow=4.0, num_images=3, valid_pixels=300, outliers=30.0, epe_kind="ground_truth",
             latent_sensitivity=1.0, direction_cosine=-1.0, structure_usage=0.2)
    b = dict(a, epe=3.0, num_images=1, valid_pixels=100, outliers=50.0, latent_sensitivity=0.0)
    agg = fd.aggregate([a, b])
    assert agg["epe"] == pytest.approx(1.5) and agg["fl_all"] == pytest.approx(80 / 400)
    assert agg["latent_sensitivity"] == pytest.approx(0.5)
    table = fd.format_table(agg)
    assert "ground truth" in table and "1.500" in table and "20.00 %" in table
    assert "TV-L1 reference (not truth)" in fd.format_table(dict(agg, epe_kind="reference", fl_all=None))


def test_evaluate_flow_json_on_a_real_model(tmp_path, monkeypatch, capsys):
    """evaluate_flow.py end to end on an untrained model folder and the synthetic world's ground truth."""
    import evaluate_flow
    from monodepth2_geopt import checkpoint
    from monodepth2_geopt.tools import synthetic
    from monodepth2_geopt.errors import run_cli
    from monodepth2_geopt.networks import ResnetEncoder
    from monodepth2_geopt.networks.flow_decoder import FlowDecoder
    from monodepth2_geopt.networks.motion_encoder import build_motion_encoder

    h, w = 64, 128  # the decoder's reflection padding needs >= 2 rows at 1/32
    info = synthetic.generate_dataset(tmp_path / "world", num_drives=1, frames_per_drive=5, width=w, height=h,
                                      seed=0, velodyne=False)
    torch.manual_seed(0)
    enc = ResnetEncoder(18, False)
    models = {"encoder": enc, "motion_encoder": build_motion_encoder("corr", latent_dim=16),
              "flow": FlowDecoder(enc.num_ch_enc, 16, None, range(4), "basis", fixed_basis=True)}
    folder = tmp_path / "weights"
    checkpoint.save_weights_folder(folder, models, encoder_meta={"height": h, "width": w, "use_stereo": False})
    out = tmp_path / "diag.json"
    monkeypatch.setattr(sys, "argv", ["evaluate_flow.py", "--load_weights_folder", str(folder), "--flow_eval_path",
                                      str(info["root"]), "--json", str(out), "--no_cuda"])
    run_cli(evaluate_flow.main)
    text = capsys.readouterr().out
    assert "latent sensitivity" in text and "ground truth" in text
    result = json.loads(out.read_text())
    assert set(fd.DIAGNOSTIC_KEYS) <= set(result)
    assert result["epe_kind"] == "ground_truth" and 0 <= result["fl_all"] <= 1
    assert result["direction_cosine"] is not None  # frames t-1 exist next to the targets


def test_evaluate_flow_is_diagnose_per_pair_in_kitti_units(tmp_path):
    """The two flow evaluators agree: evaluate_flow (streamed, Fl in percent) vs diagnose_samples (batched,
    Fl as a fraction) on the same ground-truth pairs."""
    from monodepth2_geopt.tools import synthetic
    from monodepth2_geopt.flow import find_flow_pairs
    from monodepth2_geopt.networks import ResnetEncoder
    from monodepth2_geopt.networks.flow_decoder import FlowDecoder
    from monodepth2_geopt.networks.motion_encoder import build_motion_encoder

    h, w = 64, 128
    info = synthetic.generate_dataset(tmp_path / "world", num_drives=1, frames_per_drive=4, width=w, height=h,
                                      seed=0, velodyne=False)
    torch.manual_seed(0)
    enc = ResnetEncoder(18, False).eval()
    motion = build_motion_encoder("corr", latent_dim=16).eval()
    dec = FlowDecoder(enc.num_ch_enc, 16, None, range(4), "basis").eval()
    pairs = find_flow_pairs(info["root"])
    streamed = fd.evaluate_flow(enc, motion, dec, pairs, h, w)
    samples = [(t, {1: s[1]}, gt) for t, s, gt in fd.ground_truth_samples(info["root"], None, h, w)]
    batched = fd.diagnose_samples(enc, motion, dec, samples)
    assert streamed["num_pairs"] == batched["num_images"] == len(pairs)
    assert streamed["epe"] == pytest.approx(batched["epe"], rel=1e-5)
    assert streamed["zero_epe"] == pytest.approx(batched["epe_zero_flow"], rel=1e-6)
    assert streamed["fl_all"] == pytest.approx(100 * batched["fl_all"], rel=1e-4, abs=1e-2)  # a pixel or two at the threshold
