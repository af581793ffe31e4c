"""Normalised intrinsics (fx/W, fy/H, cx/W, cy/H) as Monodepth2's 4x4 matrices, per pyramid level.

``batch.prepare_batch`` scales the dataset's normalised K to pixels at each level (H // 2**s, W // 2**s);
``matrices`` does the same for intrinsics predicted per batch element (``--learn_intrinsics``), with an exact,
differentiable inverse.
"""
from __future__ import annotations

import torch

NAMES = ("fx", "fy", "cx", "cy")


def normalised_matrix(k: torch.Tensor) -> torch.Tensor:
    """[B, 4] (fx, fy, cx, cy) normalised -> [B, 4, 4] normalised K (as the datasets' ``K``)."""
    b = k.shape[0]
    K = torch.zeros(b, 4, 4, dtype=k.dtype, device=k.device)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2] = k[:, 0], k[:, 1], k[:, 2], k[:, 3]
    K[:, 2, 2] = K[:, 3, 3] = 1
    return K


def matrices(k: torch.Tensor, height: int, width: int, scale: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, inv_K) [B, 4, 4] in pixels of pyramid level ``scale`` of a ``height`` x ``width`` input (level size
    ``height // 2**scale`` x ``width // 2**scale``, as ``prepare_batch``) from normalised [B, 4] intrinsics."""
    h, w = height // 2 ** scale, width // 2 ** scale
    fx, fy, cx, cy = k[:, 0] * w, k[:, 1] * h, k[:, 2] * w, k[:, 3] * h
    K = normalised_matrix(torch.stack([fx, fy, cx, cy], 1))
    inv = torch.zeros_like(K)
    inv[:, 0, 0], inv[:, 1, 1] = 1 / fx, 1 / fy
    inv[:, 0, 2], inv[:, 1, 2] = -cx / fx, -cy / fy
    inv[:, 2, 2] = inv[:, 3, 3] = 1
    return K, inv


def focal_relative_pose(axisangle: torch.Tensor, translation: torch.Tensor, k: torch.Tensor, initial,
                        square_pixels: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``--focal_relative_pose``: the pose network's outputs [B, ..., 3] read in units of the learned focal length.

    A rotation by a small angle w about the camera's y axis (yaw) moves the image by about fx w pixels, plus a
    second-order x^2 w / fx; a lateral translation tx by fx tx / z. With the yaw read as ``w x fx_init / fx`` (and
    tx the same way; pitch about x and ty with fy), the first-order motion is the same whatever the focal length,
    so the focal length is trained only by what observes it: the second-order flow of a rotation. Forward motion
    needs no focal length; roll's flow depends on fx / fy only (not at all with square pixels), so neither is
    scaled. ``k`` [B, 4] the predicted normalised intrinsics, ``initial`` the initial ones (the scale is 1 there,
    so the networks start as without the option); ``square_pixels``: fy follows fx (``--square_pixels``), so it
    is scaled as fx. Returns the pose in radians and training units, as the warp and pose evaluation use it.
    """
    shape = (-1,) + (1,) * (axisangle.dim() - 2)  # [B, 1, ...] against the outputs' [B, n, (1,) 3]
    gx = (initial[0] / k[:, 0]).reshape(shape)
    gy = gx if square_pixels else (initial[1] / k[:, 1]).reshape(shape)
    one = torch.ones_like(gx)
    return axisangle * torch.stack([gy, gx, one], -1), translation * torch.stack([gx, gy, one], -1)


def summary(k: torch.Tensor) -> dict:
    """Mean and standard deviation of [N, 4] normalised predictions, by name."""
    k = k.double()
    sd = k.std(0, unbiased=False) if k.shape[0] > 1 else torch.zeros(4, dtype=k.dtype)
    return {n: {"mean": float(k[:, i].mean()), "sd": float(sd[i])} for i, n in enumerate(NAMES)}


# ---------------------------------------------------------------------------------------------- --intrinsics
def add_intrinsics_argument(parser, help: str) -> None:
    """``--intrinsics FX FY CX CY``, normalised (train.py's option; test_simple.py's point clouds use it too)."""
    parser.add_argument("--intrinsics", nargs=4, type=float, default=None, metavar=("FX", "FY", "CX", "CY"),
                        help=help)


def check_intrinsics(k) -> tuple[float, float, float, float]:
    """``--intrinsics`` values as a tuple, or an InputError unless fx, fy > 0 and cx, cy inside (0, 1)."""
    from monodepth2_geopt.errors import InputError
    if not (len(k) == 4 and k[0] > 0 and k[1] > 0 and 0 < k[2] < 1 and 0 < k[3] < 1):
        raise InputError(f"--intrinsics {' '.join(map(str, k))}: normalised fx, fy must be > 0 and cx, cy "
                         "inside (0, 1) (fx/width, fy/height, cx/width, cy/height)")
    return tuple(float(v) for v in k)


# ---------------------------------------------------------------------------------------------- inference
def load_head(weights_folder, device="cpu"):
    """The intrinsics head (``intrinsics.pth``) of a --learn_intrinsics weights folder, in eval mode."""
    from pathlib import Path

    from monodepth2_geopt import checkpoint, networks
    from monodepth2_geopt.errors import InputError
    folder = Path(weights_folder).expanduser()
    checkpoint.require_weight_files(folder, ["intrinsics.pth"],
                                    "train with --learn_intrinsics: its weights folders hold intrinsics.pth")
    head_state, _ = checkpoint.load_state_file(folder / "intrinsics.pth")
    if "conv.weight" not in head_state:
        raise InputError(f"{folder / 'intrinsics.pth'} is not an intrinsics head")
    head = networks.IntrinsicsHead(head_state["conv.weight"].shape[1])
    checkpoint.load_into(head, folder / "intrinsics.pth", "intrinsics head")
    return head.to(device).eval()


def load_predictor(weights_folder, device="cpu"):
    """(pose_encoder, intrinsics head, (height, width), square_pixels) of a --learn_intrinsics weights folder, in eval
    mode; ``square_pixels``: trained with --square_pixels (fy follows fx: pass the head the source aspect)."""
    from pathlib import Path

    from monodepth2_geopt import checkpoint, networks
    from monodepth2_geopt.errors import InputError
    folder = Path(weights_folder).expanduser()
    checkpoint.require_weight_files(folder, ["encoder.pth", "pose_encoder.pth", "intrinsics.pth"],
                                    "train with --learn_intrinsics: its weights folders hold intrinsics.pth")
    _, meta = checkpoint.load_state_file(folder / "encoder.pth")
    pose_state, _ = checkpoint.load_state_file(folder / "pose_encoder.pth")
    layers = checkpoint.infer_resnet_layers(pose_state)
    if layers is None:
        raise InputError(f"{folder}: pose_encoder.pth is not a ResNet pose encoder")
    encoder = networks.ResnetEncoder(layers, False, 2)
    checkpoint.load_into(encoder, folder / "pose_encoder.pth", "pose encoder")
    return (encoder.to(device).eval(), load_head(folder, device), (int(meta["height"]), int(meta["width"])),
            bool(meta.get("square_pixels", False)))


@torch.no_grad()
def predict_sequences(weights_folder, data_path, filenames=None, stride: int = 1, max_pairs: int | None = None,
                      device="cpu", batch_size: int = 8, whole_frame: bool = False) -> dict:
    """Per-pair intrinsics of consecutive frames (t, t + stride) of every sequence of a frame tree (split lines
    ``filenames``, a split file path, or None: every folder under ``data_path``), centred crop of the input's aspect
    as ``--dataset video`` training crops (``whole_frame``: each whole frame resized, as KITTI-layout training
    does), no flip. The intrinsics are those of the region the network sees.

    Returns {sequence folder: {"pairs": n, "fx": {"mean", "sd"}, ..., "fx_px": mean fx in pixels of the
    network input, "fy_px": ...}}; averaging per video is the mean over its pairs.
    """
    from monodepth2_geopt.datasets.video_dataset import UncalibratedVideoDataset
    encoder, head, (h, w), square = load_predictor(weights_folder, device)
    ds = UncalibratedVideoDataset(data_path, filenames, h, w, frame_idxs=(0, 1), stride=stride, is_train=False)
    ds.return_crop_box = True
    ds.whole_frame = whole_frame
    by_seq: dict[str, list[int]] = {}
    for i, line in enumerate(ds.filenames):
        tokens = line.split()  # "<folder> <frame> [side]": a KITTI drive's two cameras are two sequences
        by_seq.setdefault(" ".join([tokens[0], *tokens[2:]]), []).append(i)
    results = {}
    for seq, indices in by_seq.items():
        if max_pairs is not None and len(indices) > max_pairs:  # evenly spread over the sequence
            indices = [indices[round(j * (len(indices) - 1) / (max_pairs - 1))] for j in range(max_pairs)] \
                if max_pairs > 1 else indices[:1]
        preds = []
        for start in range(0, len(indices), batch_size):
            items = [ds[i] for i in indices[start:start + batch_size]]
            pair = torch.cat([torch.stack([it[("color", f)] for it in items]) for f in (0, 1)], 1)
            aspect = torch.tensor([it["crop_aspect"] for it in items], device=device) if square else None
            preds.append(head(encoder(pair.to(device).float() / 255.0)[-1], aspect).cpu())
        k = torch.cat(preds)
        res = {"pairs": int(k.shape[0]), **summary(k)}
        res["fx_px"], res["fy_px"] = res["fx"]["mean"] * w, res["fy"]["mean"] * h
        res["size"] = [w, h]
        results[seq] = res
    return results
