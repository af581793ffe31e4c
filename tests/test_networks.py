"""Networks: output shapes, Monodepth2 state-dict key names, strict round trips, gradients, ImageNet loading."""
import pytest
import torch
import torchvision

from monodepth2_geopt.errors import InputError
from monodepth2_geopt.networks import DepthDecoder, PoseCNN, PoseDecoder, ResnetEncoder
from monodepth2_geopt.networks.resnet_encoder import RESNET_SPECS

H, W = 64, 96

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def enc18():
    torch.manual_seed(0)
    return ResnetEncoder(18, False).eval()


@pytest.fixture(scope="module")
def enc50():
    torch.manual_seed(0)
    return ResnetEncoder(50, False).eval()


# --- shapes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("layers,b", [(18, 1), (18, 3), (50, 2)])
def test_encoder_and_depth_decoder_shapes(request, layers, b):
    enc = request.getfixturevalue(f"enc{layers}")
    expected_ch = [64, 64, 128, 256, 512] if layers == 18 else [64, 256, 512, 1024, 2048]
    assert enc.num_ch_enc == expected_ch
    with torch.no_grad():
        feats = enc(torch.rand(b, 3, H, W))
        assert [tuple(f.shape) for f in feats] == [(b, c, H // 2 ** (i + 1), W // 2 ** (i + 1))
                                                   for i, c in enumerate(expected_ch)]
        dec = DepthDecoder(enc.num_ch_enc).eval()
        out = dec(feats)
    assert sorted(out) == [("disp", s) for s in range(4)]
    for s in range(4):
        assert out[("disp", s)].shape == (b, 1, H // 2 ** s, W // 2 ** s)
        assert out[("disp", s)].min() >= 0 and out[("disp", s)].max() <= 1  # sigmoid


def test_depth_decoder_subset_of_scales_and_channels(enc18):
    with torch.no_grad():
        feats = enc18(torch.rand(2, 3, H, W))
        out = DepthDecoder(enc18.num_ch_enc, scales=[0, 2], num_output_channels=3)(feats)
    assert sorted(out) == [("disp", 0), ("disp", 2)]
    assert out[("disp", 2)].shape == (2, 3, H // 4, W // 4)


@pytest.mark.parametrize("layers", [18, 50])
def test_pose_encoder_two_images_and_pose_decoder_shapes(layers):
    torch.manual_seed(0)
    enc = ResnetEncoder(layers, False, num_input_images=2).eval()
    assert enc.encoder.conv1.weight.shape == (64, 6, 7, 7)
    dec = PoseDecoder(enc.num_ch_enc, 1, 2)
    with torch.no_grad():
        axisangle, translation = dec([enc(torch.rand(3, 6, H, W))])
    assert axisangle.shape == translation.shape == (3, 2, 1, 3)


def test_pose_decoder_shared_features(enc18):
    """'shared' pose model: features of 3 frames in, 2 relative poses out (num_frames_to_predict_for=N-1)."""
    dec = PoseDecoder(enc18.num_ch_enc, 3)
    with torch.no_grad():
        feats = [enc18(torch.rand(2, 3, H, W)) for _ in range(3)]
        axisangle, translation = dec(feats)
    assert axisangle.shape == translation.shape == (2, 2, 1, 3)


@pytest.mark.parametrize("frames", [2, 3])
def test_posecnn_shapes_and_scale(frames):
    torch.manual_seed(0)
    net = PoseCNN(frames)
    axisangle, translation = net(torch.rand(2, 3 * frames, H, W))
    assert axisangle.shape == translation.shape == (2, frames - 1, 1, 3)
    assert axisangle.abs().max() < 0.1  # outputs are scaled by 0.01


# --- state-dict names (Monodepth2's released checkpoints) -----------------------------------------

def test_resnet_encoder_keys(enc18):
    keys = set(enc18.state_dict())
    for k in ("encoder.conv1.weight", "encoder.bn1.running_mean", "encoder.layer1.0.conv1.weight",
              "encoder.layer4.1.bn2.running_var", "encoder.fc.weight", "encoder.fc.bias"):
        assert k in keys
    assert all(k.startswith("encoder.") for k in keys)
    tv = {f"encoder.{k}" for k in torchvision.models.resnet18().state_dict()}
    assert keys == tv


def test_depth_decoder_keys(enc18):
    keys = set(DepthDecoder(enc18.num_ch_enc).state_dict())
    expected = {f"decoder.{i}.conv.conv.{p}" for i in range(10) for p in ("weight", "bias")}
    expected |= {f"decoder.{i}.conv.{p}" for i in range(10, 14) for p in ("weight", "bias")}
    assert keys == expected
    sd = DepthDecoder(enc18.num_ch_enc).state_dict()
    # upconv (4, 0) takes the 512 deepest channels; upconv (0, 1) has no skip: 16 -> 16
    assert sd["decoder.0.conv.conv.weight"].shape == (256, 512, 3, 3)
    assert sd["decoder.1.conv.conv.weight"].shape == (256, 256 + 256, 3, 3)
    assert sd["decoder.9.conv.conv.weight"].shape == (16, 16, 3, 3)
    assert sd["decoder.10.conv.weight"].shape == (1, 16, 3, 3)   # dispconv 0
    assert sd["decoder.13.conv.weight"].shape == (1, 128, 3, 3)  # dispconv 3


def test_pose_decoder_and_posecnn_keys(enc18):
    keys = set(PoseDecoder(enc18.num_ch_enc, 1, 2).state_dict())
    assert keys == {f"net.{i}.{p}" for i in range(4) for p in ("weight", "bias")}
    sd = PoseDecoder(enc18.num_ch_enc, 1, 2).state_dict()
    assert sd["net.0.weight"].shape == (256, 512, 1, 1)
    assert sd["net.3.weight"].shape == (12, 256, 1, 1)
    keys = set(PoseCNN(3).state_dict())
    assert keys == ({f"net.{i}.{p}" for i in range(7) for p in ("weight", "bias")}
                    | {"pose_conv.weight", "pose_conv.bias"})
    assert PoseCNN(3).state_dict()["net.0.weight"].shape == (16, 9, 7, 7)


# --- round trips and gradients -------------------------------------------------------------------

def test_state_dicts_round_trip_strict(tmp_path, enc18):
    torch.manual_seed(1)
    x = torch.rand(2, 3, H, W)
    dec = DepthDecoder(enc18.num_ch_enc).eval()
    pose_enc, pose_dec = ResnetEncoder(18, False, 2).eval(), PoseDecoder(enc18.num_ch_enc, 1, 2).eval()
    cnn = PoseCNN(2).eval()
    for name, m in dict(enc=enc18, dec=dec, pose_enc=pose_enc, pose_dec=pose_dec, cnn=cnn).items():
        torch.save(m.state_dict(), tmp_path / f"{name}.pth")
    torch.manual_seed(2)
    enc2, dec2 = ResnetEncoder(18, False).eval(), DepthDecoder(enc18.num_ch_enc).eval()
    pose_enc2, pose_dec2 = ResnetEncoder(18, False, 2).eval(), PoseDecoder(enc18.num_ch_enc, 1, 2).eval()
    cnn2 = PoseCNN(2).eval()
    for name, m in dict(enc=enc2, dec=dec2, pose_enc=pose_enc2, pose_dec=pose_dec2, cnn=cnn2).items():
        m.load_state_dict(torch.load(tmp_path / f"{name}.pth", weights_only=True), strict=True)
    with torch.no_grad():
        a, b = dec(enc18(x)), dec2(enc2(x))
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
        pair = torch.rand(2, 6, H, W)
        for t1, t2 in zip(pose_dec([pose_enc(pair)]), pose_dec2([pose_enc2(pair)])):
            torch.testing.assert_close(t1, t2, rtol=0, atol=0)
        for t1, t2 in zip(cnn(pair), cnn2(pair)):
            torch.testing.assert_close(t1, t2, rtol=0, atol=0)


def test_every_parameter_but_fc_gets_a_gradient():
    torch.manual_seed(0)
    enc, pose_enc = ResnetEncoder(18, False), ResnetEncoder(18, False, 2)
    dec, pose_dec, cnn = DepthDecoder(enc.num_ch_enc), PoseDecoder(enc.num_ch_enc, 1, 2), PoseCNN(2)
    x = torch.rand(2, 3, H, W)
    out = dec(enc(x))
    loss = sum(v.mean() for v in out.values())
    aa, t = pose_dec([pose_enc(torch.rand(2, 6, H, W))])
    loss = loss + aa.sum() + t.sum()
    aa, t = cnn(torch.rand(2, 6, H, W))
    loss = loss + aa.sum() + t.sum()
    loss.backward()
    for prefix, m in dict(enc=enc, dec=dec, pose_enc=pose_enc, pose_dec=pose_dec, cnn=cnn).items():
        for name, p in m.named_parameters():
            if name.startswith("encoder.fc."):
                assert p.grad is None, f"{prefix}.{name}"
            else:
                assert p.grad is not None and p.grad.abs().sum() > 0, f"{prefix}.{name} got no gradient"


def test_encoder_normalises_input(enc18):
    """Input is normalised with (x - 0.45) / 0.225: a constant 0.45 image equals a zero image after conv1."""
    e = enc18.encoder
    with torch.no_grad():
        f0 = enc18(torch.full((1, 3, H, W), 0.45))[0]
        ref = e.relu(e.bn1(e.conv1(torch.zeros(1, 3, H, W))))
    torch.testing.assert_close(f0, ref)


# --- ImageNet weights from the local cache -------------------------------------------------------

def test_pretrained_without_cache_raises_input_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(InputError, match="--weights_init scratch") as err:
        ResnetEncoder(18, True)
    assert str(tmp_path) in str(err.value)
    assert "resnet18" in str(err.value)


def test_pretrained_from_fake_cache_tiles_conv1(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    torch.manual_seed(3)
    fake = torchvision.models.resnet18().state_dict()
    url = RESNET_SPECS[18][2].IMAGENET1K_V1.url
    (tmp_path / "checkpoints").mkdir()
    torch.save(fake, tmp_path / "checkpoints" / url.rsplit("/", 1)[1])
    single = ResnetEncoder(18, True)
    for k, v in fake.items():
        torch.testing.assert_close(single.encoder.state_dict()[k], v, rtol=0, atol=0)
    pair = ResnetEncoder(18, True, num_input_images=2)
    w = pair.encoder.conv1.weight.detach()
    assert w.shape == (64, 6, 7, 7)
    torch.testing.assert_close(w, fake["conv1.weight"].repeat(1, 2, 1, 1) / 2, rtol=0, atol=0)
    torch.testing.assert_close(pair.encoder.layer1[0].conv1.weight.detach(), fake["layer1.0.conv1.weight"])
    # Two identical frames give the single-image response of the pretrained conv1.
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(pair.encoder.conv1(torch.cat([x, x], 1)), single.encoder.conv1(x),
                                   rtol=1e-5, atol=1e-5)


def test_decoder_outputs_stay_fp32_under_bf16_autocast(enc18):
    """Under --amp bf16 the convolutions run in bf16 but disparity and flow leave the heads in fp32: a bf16 flow
    of 30 px would be quantised to 1/8 px, a bf16 disparity near 0.05 to about 0.4 %."""
    from monodepth2_geopt.networks.flow_decoder import FlowDecoder
    x = torch.rand(2, 3, 64, 96)
    flow_dec = FlowDecoder(enc18.num_ch_enc)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = enc18(x)
        assert feats[-1].dtype == torch.bfloat16  # autocast is really on for the encoder
        disps = DepthDecoder(enc18.num_ch_enc)(feats)
        flows = flow_dec(feats, torch.randn(2, 128))
    assert {v.dtype for v in disps.values()} == {torch.float32}
    assert {v.dtype for v in flows.values()} == {torch.float32}
    assert all(((v > 0) & (v < 1)).all() for v in disps.values())
