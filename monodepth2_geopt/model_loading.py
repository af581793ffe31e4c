"""Networks built from a weights folder: the one home of "read a folder, infer the architecture, build, load".

Each loader reads the state dicts (``checkpoint.load_state_file``), infers the architecture from them (ResNet
depth, latent size, conditioning, ...), builds the networks, loads them strictly (``checkpoint.load_into``) and
returns them on ``device`` in eval mode, with the folder's metadata (``height``, ``width``, ``use_stereo`` of
``encoder.pth``) plus the inferred ``num_layers``; the depth network comes as one ``depth_model.DepthModel``
(the Python API: ``model.infer_image``). ``checkpoint`` keeps the file-level I/O; loading weights into
networks a run has already built (``--load_weights_folder``, ``--geopt_weights``) stays with the run
(``depth_task.load_networks``, ``geopt``).

Layouts: ``train.py`` writes ``encoder.pth`` + ``depth.pth`` (+ ``pose_encoder.pth`` + ``pose.pth``);
``pretrain_flow.py`` writes ``encoder.pth`` + ``motion_encoder.pth`` + ``flow.pth``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn

from monodepth2_geopt.checkpoint import (describe_encoder, infer_resnet_layers, load_into, load_state_file,
                                         require_weight_files)
from monodepth2_geopt.depth_model import DEFAULT_MAX_DEPTH, DEFAULT_MIN_DEPTH, DepthModel
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.networks import DepthDecoder, PoseDecoder, ResnetEncoder
from monodepth2_geopt.networks.flow_decoder import FlowDecoder
from monodepth2_geopt.networks.motion_encoder import CorrelationMotionEncoder, MotionEncoder


def depth_range(weights_folder: str | os.PathLike) -> tuple[float, float]:
    """(min_depth, max_depth) the weights were trained with: ``opt.json`` beside the folder (train.py writes
    ``models/opt.json`` next to ``models/weights_<epoch>``), else Monodepth2's defaults 0.1 / 100."""
    opt_json = Path(weights_folder).expanduser().parent / "opt.json"
    try:
        opt = json.loads(opt_json.read_text())
        return float(opt["min_depth"]), float(opt["max_depth"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_MIN_DEPTH, DEFAULT_MAX_DEPTH


def load_depth_model(weights_folder: str | os.PathLike, device: torch.device | str = "cpu",
                     scales=range(4)) -> DepthModel:
    """The depth network of a weights folder as a :class:`DepthModel` in eval mode on ``device``.

    The ResNet depth comes from ``encoder.pth``'s tensors, the input size and ``use_stereo`` from its metadata
    (``model.meta``: height, width, use_stereo, num_layers), the depth range from ``opt.json`` (:func:`depth_range`).
    ``model.infer_image(rgb)`` gives depth at the image's size: metric for stereo-trained models, else relative.
    """
    folder = require_weight_files(Path(weights_folder).expanduser(), ("encoder.pth", "depth.pth"),
                                  "is it a depth weights folder (models/weights_<epoch> written by train.py)?")
    state, meta = load_state_file(folder / "encoder.pth")
    num_layers = infer_resnet_layers(state)
    if num_layers is None:
        raise InputError(f"{folder / 'encoder.pth'} is not a ResNet depth encoder ({describe_encoder(state)})")
    encoder = ResnetEncoder(num_layers, False)
    load_into(encoder, folder / "encoder.pth", "depth encoder")
    decoder = DepthDecoder(encoder.num_ch_enc, scales)
    load_into(decoder, folder / "depth.pth", "depth decoder")
    meta = dict(meta, num_layers=num_layers)
    for key in ("height", "width"):
        if key in meta:
            meta[key] = int(meta[key])
    min_depth, max_depth = depth_range(folder)
    model = DepthModel(encoder, decoder, meta, min_depth, max_depth, source=folder)
    return model.to(device).eval()


def load_flow_model(weights_folder: str | os.PathLike, device: torch.device | str = "cpu",
                    ) -> tuple[nn.Module, nn.Module, nn.Module, dict]:
    """Build (encoder, motion_encoder, flow_decoder, meta) from a pretrain_flow.py weights folder.

    Architectures are read from the state dicts (ResNet depths, latent size, bottleneck, conditioning,
    scales), so a weights folder copied without its opt.json still loads. All three are in eval mode.
    """
    folder = Path(weights_folder).expanduser()
    for name in ("encoder.pth", "motion_encoder.pth", "flow.pth"):
        if not (folder / name).is_file():
            raise InputError(f"{folder} has no {name}: point at a weights folder written by pretrain_flow.py "
                             "(<log_dir>/<model_name>/models/weights_<epoch>)")
    enc_state, meta = load_state_file(folder / "encoder.pth")
    mot_state, _ = load_state_file(folder / "motion_encoder.pth")
    flow_state, _ = load_state_file(folder / "flow.pth")
    enc_layers = infer_resnet_layers(enc_state)
    corr = "features.0.weight" in mot_state
    mot_layers = None if corr else infer_resnet_layers(mot_state, "backbone.encoder.")
    if enc_layers is None or (mot_layers is None and not corr) or "head.2.weight" not in mot_state:
        raise InputError(f"{folder} does not hold a GeoPt structure encoder and motion encoder")
    latent_dim, hidden = mot_state["head.2.weight"].shape[0], mot_state["head.0.weight"].shape[0]
    encoder = ResnetEncoder(enc_layers, False)
    if corr:
        cost = mot_state["motion.0.weight"].shape[1]
        grid = tuple(int(g) for g in mot_state["grid"])
        motion = CorrelationMotionEncoder(latent_dim, hidden, radius=(round(cost ** 0.5) - 1) // 2, pool_grid=grid)
    else:
        grid = tuple(int(g) for g in mot_state["grid"]) if "grid" in mot_state else None
        motion = MotionEncoder(mot_layers, False, latent_dim, hidden, grid)
    scales = sorted(int(k.split(".")[1]) for k in flow_state if k.startswith("heads.") and k.endswith(".bias"))
    fixed = False
    if "coeff.weight" in flow_state:
        conditioning = "basis"
        num_basis = flow_state[f"heads.{scales[0]}.conv.weight"].shape[0] // 2
        fixed = flow_state["coeff.weight"].shape[0] > num_basis
    else:
        conditioning, num_basis = ("film" if any(".cond_film." in k for k in flow_state) else "concat"), 8
    bottleneck = flow_state["bottleneck.0.weight"].shape[0] if "bottleneck.0.weight" in flow_state else None
    decoder = FlowDecoder(encoder.num_ch_enc, latent_dim, bottleneck, scales, conditioning, num_basis=num_basis,
                          fixed_basis=fixed)
    for model, name in ((encoder, "encoder"), (motion, "motion_encoder"), (decoder, "flow")):
        load_into(model, folder / f"{name}.pth", f"GeoPt {name}")
    meta = dict(meta, num_layers=enc_layers, motion_num_layers=mot_layers)
    return encoder.to(device).eval(), motion.to(device).eval(), decoder.to(device).eval(), meta


def load_pose_model(weights_folder: str | os.PathLike, device: torch.device | str = "cpu",
                    ) -> tuple[nn.Module, nn.Module, dict]:
    """(pose_encoder, pose_decoder, meta) from ``pose_encoder.pth`` + ``pose.pth``; meta has height/width.

    The input size is read from the checkpoint metadata (``encoder.pth`` of the same folder, else the pose
    encoder's own), the ResNet depth and number of stacked frames from the pose encoder's weights.
    """
    folder = require_weight_files(weights_folder, ("pose_encoder.pth", "pose.pth"),
                                  "pose evaluation needs a model trained with --pose_model_type separate_resnet "
                                  "(pose_encoder.pth + pose.pth)")
    state, meta = load_state_file(folder / "pose_encoder.pth")
    num_layers = infer_resnet_layers(state)
    conv1 = state.get("encoder.conv1.weight")
    if num_layers is None or conv1 is None:
        raise InputError(f"{folder / 'pose_encoder.pth'} is not a ResNet pose encoder ({describe_encoder(state)})")
    num_images = conv1.shape[1] // 3
    if num_images != 2:
        raise InputError(f"{folder / 'pose_encoder.pth'} takes {num_images} stacked frames; evaluate_pose "
                         "supports the default --pose_model_input pairs (2 frames)")
    if (folder / "encoder.pth").is_file():
        meta = {**meta, **load_state_file(folder / "encoder.pth")[1]}
    encoder = ResnetEncoder(num_layers, False, num_images)
    load_into(encoder, folder / "pose_encoder.pth", "pose encoder")
    decoder = PoseDecoder(encoder.num_ch_enc, num_input_features=1, num_frames_to_predict_for=2)
    load_into(decoder, folder / "pose.pth", "pose decoder")
    meta = {k: int(v) if k in ("height", "width") else v for k, v in meta.items()}
    meta["num_layers"] = num_layers
    return encoder.to(device).eval(), decoder.to(device).eval(), meta


__all__ = ["depth_range", "load_depth_model", "load_flow_model", "load_pose_model"]
