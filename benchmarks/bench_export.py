"""Acceptance of export_model.py (issue 15): exported networks against PyTorch on real frames.

For ResNet-18 depth + pose networks at Monodepth2's 640x192 with random weights (several seeds), and for any trained
weights folders given with --weights, export disp, depth and pose to ONNX and TorchScript and report the max abs
difference to PyTorch (CPU, float32) on real frames of ../shared/data (Monodepth2's test image, KITTI raw, depth-GT,
odometry and flow frames, one batch: the batch dimension is dynamic) and consecutive KITTI pairs for the pose network.
ONNX runs in onnxruntime; TorchScript is reloaded in a fresh interpreter that cannot import this project.
Control: the same ONNX file against the PyTorch network of the next seed (a wrong model must be far outside 1e-4).

    python benchmarks/bench_export.py --seeds 0 1 2 --weights runs/S/models/weights_12
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import common  # noqa: F401  (puts the repository root on sys.path)
from monodepth2_geopt.checkpoint import save_weights_folder
from monodepth2_geopt.export import check_onnx, check_torchscript, depth_spec, export_model, pose_spec
from monodepth2_geopt.model_loading import load_depth_model
from monodepth2_geopt.networks import DepthDecoder, PoseDecoder, ResnetEncoder

SECTION = "Export: ONNX and TorchScript against PyTorch on real frames"
DATA = common.ROOT.parent / "shared" / "data"
TOLERANCE = 1e-4


def real_images() -> tuple[list[np.ndarray], list[str], list[np.ndarray]]:
    """(all frames, their names, the consecutive KITTI raw frames for pose pairs)."""
    raw = sorted((DATA / "kitti_raw_mini").rglob("image_02/data/*.png"))
    others = [DATA / "test_image.jpg", *sorted((DATA / "kitti_depth_gt" / "rgb").glob("*.png")),
              *sorted((DATA / "kitti_odom_06" / "image_2").glob("*.png")), *sorted((DATA / "kitti_flow_pair").glob("*.png"))]
    paths = raw + [p for p in others if p.is_file()]
    if not raw:
        sys.exit(f"no KITTI frames under {DATA}: this benchmark needs ../shared/data")
    load = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    return load, [str(p.relative_to(DATA)) for p in paths], load[:len(raw)]


def random_weights(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    enc, penc = ResnetEncoder(18, False), ResnetEncoder(18, False, 2)
    models = {"encoder": enc, "depth": DepthDecoder(enc.num_ch_enc), "pose_encoder": penc,
              "pose": PoseDecoder(penc.num_ch_enc, 1, 2)}
    return save_weights_folder(folder, models, encoder_meta={"height": 192, "width": 640, "use_stereo": True})


def measure(weights: Path, out: Path, images, pose_images) -> dict:
    model = load_depth_model(weights)
    frames = model.prepare(images)
    has_pose = (weights / "pose_encoder.pth").is_file()
    row = {"frames": len(frames), "size": f"{model.width}x{model.height}", "pose": has_pose}
    start = time.time()
    for output in ("disp", "depth"):
        export_model(weights, ["onnx", "torchscript"], out, output=output, pose=False, check=False, overwrite=True,
                     log=lambda s: None)
        spec = depth_spec(model, output)
        row[f"onnx_{output}"] = check_onnx(out / f"{output}.onnx", spec.module, frames)
        row[f"ts_{output}"] = check_torchscript(out / f"{output}.pt", spec.module, frames)
    if has_pose:
        export_model(weights, ["onnx", "torchscript"], out, output="disp", pose=True, check=False, overwrite=True,
                     log=lambda s: None)
        spec = pose_spec(weights)
        pairs = torch.cat([model.prepare(pose_images[:-1]), model.prepare(pose_images[1:])], 1)
        row["onnx_pose"] = check_onnx(out / "pose.onnx", spec.module, pairs)
        row["ts_pose"] = check_torchscript(out / "pose.pt", spec.module, pairs)
        row["pairs"] = len(pairs)
    row["seconds"] = time.time() - start
    return row


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--weights", nargs="*", default=[], help="trained weights folders to check as well")
    p.add_argument("--no_write", action="store_true", help="print the table only")
    a = p.parse_args()
    torch.set_num_threads(1)
    images, names, pose_images = real_images()
    rows, controls = [], []
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        tmp = Path(tmp)
        folders = [(f"random ResNet-18, seed {s}", random_weights(tmp / f"seed{s}" / "weights_0", s))
                   for s in a.seeds]
        folders += [(f"trained: {w}", Path(w)) for w in a.weights]
        for label, folder in folders:
            rows.append((label, measure(folder, tmp / "out" / label.replace(" ", "_").replace("/", "_"), images,
                                        pose_images)))
            print(label, rows[-1][1], flush=True)
        # control: seed s's ONNX file against seed s+1's PyTorch network
        for (label, folder), (other_label, other) in zip(folders[:len(a.seeds)], folders[1:len(a.seeds)]):
            onnx_file = tmp / "out" / label.replace(" ", "_").replace("/", "_") / "disp.onnx"
            wrong = load_depth_model(other)
            controls.append((label, other_label, check_onnx(onnx_file, depth_spec(wrong, "disp").module,
                                                            wrong.prepare(images))))
    table_rows = []
    for label, r in rows:
        table_rows.append([label, r["size"], r["frames"], f"{r['onnx_disp']:.2e}", f"{r['ts_disp']:.2e}",
                           f"{r['onnx_depth']:.2e}", f"{r['ts_depth']:.2e}",
                           f"{r['onnx_pose']:.2e} / {r['ts_pose']:.2e} ({r['pairs']} pairs)" if r["pose"] else "-"])
    worst = max(max(v for k, v in r.items() if k.startswith(("onnx_", "ts_"))) for _, r in rows)
    body = (f"Real frames ({len(names)}, one batch, resized to each network's size with LANCZOS): "
            f"{', '.join(names)}. Pose: consecutive pairs of the KITTI raw frames. Max abs difference to PyTorch "
            "(CPU, float32). disp: sigmoid disparity in (0, 1); depth: x5.4 metres for stereo-trained models "
            "(values up to 540), relative otherwise; pose: axis-angle, translation and the 4x4 T together. ONNX: "
            f"TorchScript-based exporter, opset 17, onnxruntime CPU; TorchScript: torch.jit.trace, reloaded in a "
            f"fresh interpreter with this project's modules blocked.\n\n"
            + common.table(["weights", "size", "frames", "ONNX disp", "TorchScript disp", "ONNX depth",
                            "TorchScript depth", "pose ONNX / TorchScript"], table_rows)
            + f"\n\nWorst difference: {worst:.2e} (acceptance: below {TOLERANCE:g}).\n\n"
            + "Control (seed s's ONNX disp against seed s+1's PyTorch network): "
            + "; ".join(f"{a_} vs {b_}: {d:.3f}" for a_, b_, d in controls) + ".\n")
    print(body)
    if not a.no_write:
        common.write_section(SECTION, body, common.command_line())


if __name__ == "__main__":
    main()
