"""Checkpoints: Monodepth2's weights-folder layout, strict loading with clear errors, atomic writes."""
import argparse
import json

import pytest
import torch
import torch.nn as nn

from monodepth2_geopt import checkpoint
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.model_loading import load_depth_model
from monodepth2_geopt.networks import DepthDecoder, PoseDecoder, ResnetEncoder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def md2_models():
    torch.manual_seed(0)
    enc = ResnetEncoder(18, False)
    pose_enc = ResnetEncoder(18, False, 2)
    return {"encoder": enc, "depth": DepthDecoder(enc.num_ch_enc), "pose_encoder": pose_enc,
            "pose": PoseDecoder(pose_enc.num_ch_enc, 1, 2)}


def tiny_models(seed):
    torch.manual_seed(seed)
    return {"encoder": nn.Linear(3, 2), "depth": nn.Conv2d(2, 1, 1)}


def assert_same_state(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_save_weights_folder_layout_and_strict_reload(tmp_path, md2_models):
    params = [p for m in md2_models.values() for p in m.parameters()]
    opt = torch.optim.Adam(params, 1e-4)  # not stepped (slow on CPU); see the tiny-model test for state
    folder = tmp_path / "mdp" / "models" / "weights_0"
    meta = {"height": 64, "width": 96, "use_stereo": False}
    out = checkpoint.save_weights_folder(folder, md2_models, opt, encoder_meta=meta)
    assert out == folder
    assert sorted(p.name for p in folder.iterdir()) == ["adam.pth", "depth.pth", "encoder.pth", "pose.pth",
                                                         "pose_encoder.pth"]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["weights_0"]   # no temporary folders left
    enc_file = torch.load(folder / "encoder.pth", weights_only=True)
    assert enc_file["height"] == 64 and enc_file["width"] == 96 and enc_file["use_stereo"] is False
    assert "encoder.conv1.weight" in enc_file and "encoder.fc.weight" in enc_file
    assert "height" not in torch.load(folder / "depth.pth", weights_only=True)
    assert set(torch.load(folder / "pose.pth", weights_only=True)) == {f"net.{i}.{p}" for i in range(4)
                                                                       for p in ("weight", "bias")}
    adam = torch.load(folder / "adam.pth", weights_only=True)
    assert set(adam) == {"state", "param_groups"} and len(adam["param_groups"][0]["params"]) == len(params)
    # a fresh set of models loads every file strictly and ends up identical
    torch.manual_seed(1)
    fresh = {"encoder": ResnetEncoder(18, False), "pose_encoder": ResnetEncoder(18, False, 2)}
    fresh["depth"] = DepthDecoder(fresh["encoder"].num_ch_enc)
    fresh["pose"] = PoseDecoder(fresh["pose_encoder"].num_ch_enc, 1, 2)
    for name, m in fresh.items():
        meta_read = checkpoint.load_into(m, folder / f"{name}.pth", name)
        assert meta_read == (meta if name == "encoder" else {})
        assert_same_state(m, md2_models[name])
    opt2 = torch.optim.Adam([p for m in fresh.values() for p in m.parameters()], 1e-4)
    opt2.load_state_dict(adam)
    # the depth model helper reads the architecture and the size from the folder
    model = load_depth_model(folder)
    assert model.meta == {"height": 64, "width": 96, "use_stereo": False, "num_layers": 18}
    assert_same_state(model.encoder, md2_models["encoder"])
    assert_same_state(model.decoder, md2_models["depth"])


def test_optimizer_state_round_trip(tmp_path):
    models = tiny_models(0)
    params = [p for m in models.values() for p in m.parameters()]
    opt = torch.optim.Adam(params, 1e-3)
    sum(p.sum() for p in params).backward()
    opt.step()
    checkpoint.save_weights_folder(tmp_path / "w", models, opt)
    adam = torch.load(tmp_path / "w" / "adam.pth", weights_only=True)
    assert len(adam["state"]) == len(params)
    opt2 = torch.optim.Adam([p for m in tiny_models(1).values() for p in m.parameters()], 1e-3)
    opt2.load_state_dict(adam)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_failed_save_leaves_previous_folder_intact(tmp_path, monkeypatch):
    folder = tmp_path / "models" / "weights_3"
    old = tiny_models(0)
    checkpoint.save_weights_folder(folder, old, encoder_meta={"height": 32, "width": 64, "use_stereo": True})
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    real_save, calls = torch.save, []

    def crashing_save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", crashing_save)
    new = tiny_models(1)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_weights_folder(folder, new, torch.optim.Adam(new["encoder"].parameters()))
    assert len(calls) == 2
    assert sorted(p.name for p in folder.parent.iterdir()) == ["weights_3"]  # no temp or .old folder
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    monkeypatch.undo()
    reloaded = tiny_models(2)
    checkpoint.load_into(reloaded["encoder"], folder / "encoder.pth")
    assert_same_state(reloaded["encoder"], old["encoder"])


def test_failed_swap_puts_previous_folder_back(tmp_path, monkeypatch):
    """The previous folder is moved aside before the new one is renamed in; if that rename fails, it returns."""
    folder = tmp_path / "weights_1"
    old = tiny_models(0)
    checkpoint.save_weights_folder(folder, old)
    real_replace = checkpoint.os.replace

    def failing_replace(src, dst):
        if str(dst) == str(folder) and ".old" not in str(src):
            raise OSError("rename failed")
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        checkpoint.save_weights_folder(folder, tiny_models(1))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights_1"]
    m = tiny_models(2)["encoder"]
    checkpoint.load_into(m, folder / "encoder.pth")
    assert_same_state(m, old["encoder"])


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    def crashing_save(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_weights_folder(tmp_path / "weights_0", tiny_models(0))
    assert list(tmp_path.iterdir()) == []


def test_save_over_existing_folder_replaces_it(tmp_path):
    folder = tmp_path / "weights_0"
    checkpoint.save_weights_folder(folder, tiny_models(0), extra={"predictive_mask": {"a": torch.ones(1)}})
    new = tiny_models(1)
    checkpoint.save_weights_folder(folder, new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights_0"]
    assert sorted(p.name for p in folder.iterdir()) == ["depth.pth", "encoder.pth"]  # stale files gone
    m = tiny_models(2)["encoder"]
    checkpoint.load_into(m, folder / "encoder.pth")
    assert_same_state(m, new["encoder"])


def test_atomic_save_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "x.pth"
    checkpoint.atomic_save({"a": torch.ones(2)}, path)
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        checkpoint.atomic_save({"a": torch.zeros(2)}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["x.pth"]
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))


# --- strict loading with useful errors -----------------------------------------------------------

def test_resnet50_file_into_resnet18_names_num_layers(tmp_path):
    with torch.device("meta"):  # ResNet-50's real names and shapes without building 100 MB of weights
        meta = ResnetEncoder(50, False).state_dict()
    # every tensor a stride-0 view of one zero: the file is small, the names and shapes are ResNet-50's
    r50 = {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in meta.items()}
    path = tmp_path / "encoder.pth"
    torch.save(dict(r50, height=192, width=640, use_stereo=False), path)
    with pytest.raises(InputError) as err:
        checkpoint.load_into(ResnetEncoder(18, False), path, "encoder")
    msg = str(err.value)
    assert "--num_layers 50" in msg and "ResNet-50" in msg and "ResNet-18" in msg and str(path) in msg
    assert "\n" not in msg


def test_decoder_mismatch_and_unreadable_files(tmp_path):
    enc18 = ResnetEncoder(18, False)
    path = tmp_path / "depth.pth"
    torch.save(DepthDecoder([64, 256, 512, 1024, 2048]).state_dict(), path)
    with pytest.raises(InputError, match="another shape"):
        checkpoint.load_into(DepthDecoder(enc18.num_ch_enc), path, "depth")
    with pytest.raises(InputError, match="does not exist"):
        checkpoint.load_into(DepthDecoder(enc18.num_ch_enc), tmp_path / "nope.pth")
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="broken.pth"):
        checkpoint.load_into(DepthDecoder(enc18.num_ch_enc), tmp_path / "broken.pth")
    partial = {k: v for k, v in DepthDecoder(enc18.num_ch_enc).state_dict().items() if "decoder.13" not in k}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(InputError, match="missing"):
        checkpoint.load_into(DepthDecoder(enc18.num_ch_enc), tmp_path / "partial.pth")


def _fake_resnet_keys(blocks, bottleneck, prefix="encoder."):
    keys = {f"{prefix}conv1.weight": torch.zeros(64, 3, 7, 7)}
    for layer, n in enumerate(blocks, start=1):
        for i in range(n):
            for conv in ("conv1", "conv2") + (("conv3",) if bottleneck else ()):
                keys[f"{prefix}layer{layer}.{i}.{conv}.weight"] = torch.zeros(1)
    return keys


@pytest.mark.parametrize("layers", [18, 34, 50])
def test_infer_resnet_layers_from_real_encoders(layers):
    with torch.device("meta"):  # the real names and shapes, no memory: a ResNet-50 otherwise allocates 100 MB
        state = ResnetEncoder(layers, False).state_dict()
    assert checkpoint.infer_resnet_layers(state) == layers
    assert checkpoint.describe_encoder(state) == f"a ResNet-{layers} encoder"


def test_infer_resnet_layers_deep_and_unknown():
    assert checkpoint.infer_resnet_layers(_fake_resnet_keys([3, 4, 23, 3], True)) == 101
    assert checkpoint.infer_resnet_layers(_fake_resnet_keys([3, 8, 36, 3], True)) == 152
    assert checkpoint.infer_resnet_layers(_fake_resnet_keys([2, 2, 2, 2], False, ""), prefix="") == 18
    assert checkpoint.infer_resnet_layers({"net.0.weight": torch.zeros(1)}) is None
    pose = ResnetEncoder(18, False, 2).state_dict()
    assert checkpoint.describe_encoder(pose) == "a ResNet-18 encoder on 2 stacked images"


def test_clean_state_dict_and_unwrap():
    t = torch.ones(1)
    state = {"module.encoder.conv1.weight": t, "_orig_mod.net.0.bias": t, "module._orig_mod.decoder.0.w": t,
             "plain": t}
    assert list(checkpoint.clean_state_dict(state)) == ["encoder.conv1.weight", "net.0.bias", "decoder.0.w",
                                                        "plain"]
    inner = nn.Linear(2, 2)
    wrapper = nn.Module()
    wrapper.module = inner
    assert checkpoint.unwrap(wrapper) is inner
    assert checkpoint.unwrap(inner) is inner


def test_load_into_accepts_wrapped_checkpoints(tmp_path):
    src, dst = nn.Linear(3, 2), nn.Linear(3, 2)
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, tmp_path / "m.pth")
    checkpoint.load_into(dst, tmp_path / "m.pth")
    assert_same_state(dst, src)


def test_save_options_writes_opt_json_and_command(tmp_path):
    opt = argparse.Namespace(height=64, frame_ids=[0, -1, 1], log_dir=str(tmp_path))
    checkpoint.save_options(opt, tmp_path / "models", derived={"frame_ids": [0, -1, 1, "s"]})
    data = json.loads((tmp_path / "models" / "opt.json").read_text())
    assert data["height"] == 64 and data["frame_ids"] == [0, -1, 1]
    assert data["derived"]["frame_ids"] == [0, -1, 1, "s"]
    assert (tmp_path / "models" / "command.txt").read_text().strip()


def monodepth2_parameter_names(models: dict) -> list[str]:
    """Monodepth2's ``parameters_to_train`` as names, derived by hand from its code: networks in the order
    encoder, depth, pose_encoder, pose; a ResNet in torchvision's order, classifier ``fc`` last and included; a
    ModuleList by index; PoseCNN's ``pose_conv`` (registered first there) before ``net.0..6``."""
    import torchvision
    names = []
    for key, model in models.items():
        if isinstance(model, ResnetEncoder):
            names += [f"{key}.encoder.{n}" for n, _ in torchvision.models.resnet18().named_parameters()]
        elif type(model).__name__ == "PoseCNN":
            names += [f"{key}.pose_conv.weight", f"{key}.pose_conv.bias"]
            names += [f"{key}.net.{i}.{w}" for i in range(7) for w in ("weight", "bias")]
        else:  # decoders: one ModuleList, by index
            own = [n for n, _ in model.named_parameters()]
            names += [f"{key}.{n}" for n in sorted(own, key=lambda n: int(n.split(".")[1]))]  # (stable)
    return names


def parameter_names(models: dict, params: list) -> list[str]:
    by_id = {id(p): f"{k}.{n}" for k, m in models.items() for n, p in m.named_parameters()}
    return [by_id[id(p)] for p in params]


def adam_with_state(params: list, seed: int) -> torch.optim.Adam:
    """Adam after two steps on deterministic gradients of every parameter except ResNet's frozen fc."""
    opt = torch.optim.Adam(params, lr=1e-4)
    g = torch.Generator().manual_seed(seed)
    for _ in range(2):
        for p in params:
            p.grad = None if p.shape == (1000, 512) or p.shape == (1000,) else torch.randn(p.shape, generator=g)
        opt.step()
    return opt


def depth_models(pose: str) -> dict:
    """The networks of a Monodepth2 run, the ResNet classifiers frozen as the Trainer freezes them."""
    from monodepth2_geopt.networks import PoseCNN
    torch.manual_seed(0)
    enc = ResnetEncoder(18, False)
    models = {"encoder": enc, "depth": DepthDecoder(enc.num_ch_enc)}
    if pose == "posecnn":
        models["pose"] = PoseCNN(3)
    else:
        models["pose_encoder"] = ResnetEncoder(18, False, 2)
        models["pose"] = PoseDecoder(models["pose_encoder"].num_ch_enc, 1, 2)
    for m in models.values():
        if isinstance(m, ResnetEncoder):
            m.encoder.fc.requires_grad_(False)
    return models


@pytest.mark.parametrize("which", ["separate_resnet", "posecnn"])
def test_optimizer_parameters_follow_monodepth2(which):
    models = depth_models(which)
    names = parameter_names(models, checkpoint.optimizer_parameters(models))
    assert names == monodepth2_parameter_names(models)
    assert "encoder.encoder.fc.weight" in names  # frozen, but it holds its index as in Monodepth2


@pytest.mark.parametrize("which", ["separate_resnet", "posecnn"])
def test_adam_state_is_interchangeable_with_monodepth2(which):
    models = depth_models(which)
    by_name = {f"{k}.{n}": p for k, m in models.items() for n, p in m.named_parameters()}
    md2_order = [by_name[n] for n in monodepth2_parameter_names(models)]
    ours = checkpoint.optimizer_parameters(models)
    # A hand-built Monodepth2 adam.pth restores here, each moment on the parameter it belongs to ...
    md2_state = adam_with_state(md2_order, seed=1).state_dict()
    here = torch.optim.Adam(ours, lr=1e-4)
    assert checkpoint.load_optimizer_state(here, md2_state) == "Monodepth2's"
    reference = adam_with_state(md2_order, seed=1)
    for p in ours:
        if p in reference.state:
            assert torch.equal(here.state[p]["exp_avg"], reference.state[p]["exp_avg"])
    assert len(here.state) == len(reference.state) == sum(p.requires_grad for p in ours)  # fc: no state
    # ... and ours loads with Monodepth2's plain load_state_dict over its own parameter list.
    md2 = torch.optim.Adam(md2_order, lr=1e-4)
    md2.load_state_dict(adam_with_state(ours, seed=2).state_dict())
    reference = adam_with_state(ours, seed=2)
    for p in md2_order:
        if p in reference.state:
            assert torch.equal(md2.state[p]["exp_avg_sq"], reference.state[p]["exp_avg_sq"])


def test_earlier_trainable_only_adam_is_reindexed_and_others_refused():
    ours = checkpoint.optimizer_parameters(depth_models("separate_resnet"))
    trainable = [p for p in ours if p.requires_grad]
    assert len(trainable) == len(ours) - 4  # the two ResNets' fc weight and bias
    old = adam_with_state(trainable, seed=3)
    here = torch.optim.Adam(ours, lr=1e-4)
    assert "earlier" in checkpoint.load_optimizer_state(here, old.state_dict())
    for p in trainable:
        assert torch.equal(here.state[p]["exp_avg"], old.state[p]["exp_avg"])
    # Negative control: a state over another parameter count is refused, not silently mis-assigned.
    with pytest.raises(ValueError):
        checkpoint.load_optimizer_state(torch.optim.Adam(ours, lr=1e-4),
                                        adam_with_state(trainable[:-1], seed=4).state_dict())
