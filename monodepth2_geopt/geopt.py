"""Transfer of Geometric Pretraining weights into Monodepth2 training (``train.py --geopt_weights``).

``pretrain_flow.py`` writes, in Monodepth2's layout, ``encoder.pth`` (the structure encoder: a plain
``ResnetEncoder`` state dict with height/width metadata, readable like any depth encoder) and
``motion_encoder.pth`` (whose ResNet on two stacked frames sits under the ``backbone.`` prefix).
"""
from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from monodepth2_geopt import checkpoint
from monodepth2_geopt.errors import InputError

MOTION_BACKBONE_PREFIX = "backbone."


def _geopt_file(path: str, name: str) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        f = p / name
        if not f.is_file():
            have = sorted(x.name for x in p.glob("*.pth"))
            raise InputError(f"--geopt_weights {p} has no {name} (found: {', '.join(have) or 'nothing'}); "
                             "point it at a weights folder written by pretrain_flow.py")
        return f
    if p.is_file():
        return p if name == "encoder.pth" else p.with_name(name)
    raise InputError(f"--geopt_weights {p} does not exist")


def load_geopt_encoder(encoder: nn.Module, path: str) -> int:
    """Strictly load the pretrained structure encoder into ``encoder``; returns the number of tensors loaded."""
    f = _geopt_file(path, "encoder.pth")
    state, _ = checkpoint.load_state_file(f)
    if not any(k.startswith("encoder.") for k in state):
        raise InputError(f"--geopt_weights {f} is not an encoder checkpoint (its keys look like "
                         f"{next(iter(state), 'nothing')!r}); pass the structure encoder's encoder.pth or its folder")
    checkpoint.load_into(encoder, f, "depth encoder")
    return len(state)


def load_geopt_pose_encoder(pose_encoder: nn.Module, path: str) -> int:
    """Initialise a two-frame pose encoder from the pretrained motion encoder's ResNet backbone."""
    f = _geopt_file(path, "motion_encoder.pth")
    if not f.is_file():
        raise InputError(f"--geopt_pose needs {f}, written by pretrain_flow.py next to encoder.pth")
    state, _ = checkpoint.load_state_file(f)
    backbone = {k[len(MOTION_BACKBONE_PREFIX):]: v for k, v in state.items() if k.startswith(MOTION_BACKBONE_PREFIX)}
    if not backbone:
        kind = ("a correlation motion encoder, which has no ResNet to transfer; pretrain with --motion_encoder "
                "resnet to use --geopt_pose" if "features.0.weight" in state else "not a motion encoder checkpoint")
        raise InputError(f"{f} has no '{MOTION_BACKBONE_PREFIX}*' tensors: {kind}")
    own = checkpoint.unwrap(pose_encoder).state_dict()
    bad = [k for k in own if k not in backbone or backbone[k].shape != own[k].shape]
    if bad:
        raise InputError(f"the motion encoder in {f} ({checkpoint.describe_encoder(backbone)}) does not fit the "
                         f"pose encoder ({checkpoint.describe_encoder(own)}); pretrain with "
                         "--motion_num_layers equal to --num_layers")
    checkpoint.unwrap(pose_encoder).load_state_dict({k: backbone[k] for k in own})
    return len(own)
