"""The depth and pose networks as ONNX or TorchScript files that run without this project (``export_model.py``).

Files written into ``out_dir`` (each with a ``<file>.json`` beside it describing inputs, outputs and units):
- ``disp.onnx`` / ``disp.pt`` (default ``output="disp"``): input ``image`` float32 [batch, 3, height, width], RGB in
  [0, 1] at the checkpoint's size (the ImageNet-style normalisation is inside the network); output ``disp``
  [batch, 1, height, width], Monodepth2's scale-0 sigmoid disparity in (0, 1).
- ``depth.onnx`` / ``depth.pt`` (``output="depth"``): the same input; output ``depth`` [batch, 1, height, width]:
  ``disp_to_depth`` with the checkpoint's depth range, x5.4 (metres) for stereo-trained models, else relative
  (the network's units), as ``DepthModel.depth``.
- ``pose.onnx`` / ``pose.pt`` (``pose=True``): input ``frames`` float32 [batch, 6, height, width], two RGB frames
  in [0, 1] stacked on channels (a, b); outputs ``axisangle`` [batch, 3], ``translation`` [batch, 3] and
  ``T`` [batch, 4, 4], the transform from frame a's camera to frame b's (points in a -> points in b), in training
  units (Monodepth2's convention: feed (t-1, t) or (t, t+1) and invert as its trainer does).
The batch dimension is dynamic; height and width are fixed. ONNX comes from PyTorch's TorchScript-based exporter
(opset 17: no extra dependency, and fast) or, with ``onnx_exporter="dynamo"``, from the torch.export-based one
(needs ``onnxscript``); TorchScript from ``torch.jit.trace``.

Checks: :func:`check_onnx` runs the file in onnxruntime, :func:`check_torchscript` reloads the file in a fresh
interpreter in which this project cannot be imported; both return the max abs difference to PyTorch.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn as nn

from monodepth2_geopt.depth_model import DepthModel
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.fileio import atomic_path, atomic_write_text
from monodepth2_geopt.geometry import transformation_from_parameters
from monodepth2_geopt.splits import refuse_existing

Format = Literal["onnx", "torchscript"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 17
ONNX_INSTALL = "pip install onnx onnxruntime"
# Modules of this project that a reloaded export must not need (blocked in the check's interpreter).
PROJECT_MODULES = ("monodepth2_geopt", "networks", "datasets")

Log = Callable[[str], None]


class DepthNet(nn.Module):
    """RGB in [0, 1] [B, 3, H, W] -> sigmoid disparity, or depth (``DepthModel.depth``), [B, 1, H, W]."""

    def __init__(self, model: DepthModel, output: Literal["disp", "depth"] = "disp"):
        super().__init__()
        if output not in ("disp", "depth"):
            raise InputError(f"--output must be disp or depth, got {output!r}")
        self.model, self.output = model, output

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        disp = self.model(image)
        return disp if self.output == "disp" else self.model.depth(disp)


class PoseNet(nn.Module):
    """Two RGB frames in [0, 1] [B, 6, H, W] -> (axisangle [B, 3], translation [B, 3], T_b_a [B, 4, 4])."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        axisangle, translation = self.decoder([self.encoder(frames)])
        aa, t = axisangle[:, 0], translation[:, 0]  # [B, 1, 3]: the first predicted frame, as Monodepth2 uses
        return aa[:, 0], t[:, 0], transformation_from_parameters(aa, t)


@dataclass(frozen=True)
class Spec:
    """One network to export: its module, an example input and the names and meaning of inputs and outputs."""
    name: str
    module: nn.Module
    example: torch.Tensor
    input_name: str
    output_names: tuple[str, ...]
    description: dict


def export_onnx(spec: Spec, path: Path, opset: int = OPSET, exporter: str = "torchscript") -> Path:
    """Write ``spec.module`` as ONNX with a dynamic batch dimension (atomically)."""
    with atomic_path(path) as tmp, torch.no_grad():
        if exporter == "dynamo":
            batch = torch.export.Dim("batch")
            program = torch.onnx.export(spec.module, (spec.example,), dynamo=True, input_names=[spec.input_name],
                                        output_names=list(spec.output_names),
                                        dynamic_shapes=({0: batch},), verbose=False)
            program.save(str(tmp))
        else:
            axes = {n: {0: "batch"} for n in (spec.input_name, *spec.output_names)}
            with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated in favour of dynamo
                warnings.simplefilter("ignore")
                torch.onnx.export(spec.module, (spec.example,), str(tmp), dynamo=False, opset_version=opset,
                                  input_names=[spec.input_name], output_names=list(spec.output_names),
                                  dynamic_axes=axes)
    return path


def export_torchscript(spec: Spec, path: Path) -> Path:
    """Write ``spec.module`` traced with ``torch.jit.trace`` (atomically)."""
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about Python values that are constant here
        traced = torch.jit.trace(spec.module, (spec.example,), check_trace=False)
        traced.save(str(tmp))
    return path


def _as_tuple(out) -> tuple[torch.Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


@torch.no_grad()
def reference_outputs(module: nn.Module, inputs: torch.Tensor) -> list[np.ndarray]:
    return [o.float().cpu().numpy() for o in _as_tuple(module(inputs))]


def max_abs_difference(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        raise AssertionError(f"outputs differ in shape: {[x.shape for x in a]} vs {[y.shape for y in b]}")
    return max(float(np.max(np.abs(x.astype(np.float64) - y))) for x, y in zip(a, b))


def onnx_session(path: str | os.PathLike):
    """An onnxruntime CPU session for ``path`` that uses as many threads as PyTorch does (``torch.get_num_threads``,
    which ``--num_threads`` sets) and does not spin idle threads: onnxruntime's default, every core spinning, starves
    whatever else runs on the machine (a training run, other test workers)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError(f"checking an ONNX file needs onnxruntime: {ONNX_INSTALL}") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_onnx(path: str | os.PathLike, module: nn.Module, inputs: torch.Tensor) -> float:
    """Max abs difference between onnxruntime's outputs for ``inputs`` and PyTorch's (CPU, float32)."""
    session = onnx_session(path)
    got = session.run(None, {session.get_inputs()[0].name: inputs.cpu().numpy().astype(np.float32)})
    return max_abs_difference(got, reference_outputs(module, inputs))


_RELOAD = """
import json, sys
for name in {blocked!r}:
    sys.modules[name] = None  # the export must not need this project: importing it now raises ImportError
import torch
torch.set_num_threads(1)
data = torch.load(sys.argv[2])
net = torch.jit.load(sys.argv[1]) if sys.argv[3] == "jit" else torch.load(sys.argv[1], weights_only=False)
with torch.no_grad():
    out = net(data["inputs"])
out = out if isinstance(out, (tuple, list)) else (out,)
diff = max(float((o.double() - e.double()).abs().max()) for o, e in zip(out, data["expected"]))
print(json.dumps({{"max_abs_difference": diff, "shapes": [list(o.shape) for o in out]}}))
"""


def check_torchscript(path: str | os.PathLike, module: nn.Module, inputs: torch.Tensor, timeout: float = 300.0,
                      loader: Literal["jit", "pickle"] = "jit") -> float:
    """Reload the TorchScript file in a new interpreter (run in a temporary folder, PYTHON* variables ignored, this
    project's modules blocked) and return the max abs difference of its outputs to PyTorch's.

    ``loader="pickle"`` loads a ``torch.save``d module instead: the negative control (it needs the project, so it
    must fail here).
    """
    expected = [torch.from_numpy(o) for o in reference_outputs(module, inputs)]
    with tempfile.TemporaryDirectory(prefix="m2g_ts_check_") as tmp:
        data = Path(tmp) / "io.pt"
        torch.save({"inputs": inputs.cpu(), "expected": expected}, data)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        proc = subprocess.run([sys.executable, "-E", "-c", _RELOAD.format(blocked=PROJECT_MODULES),
                               str(Path(path).resolve()), str(data), loader], cwd=tmp, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"reloading {path} without the project failed: {proc.stderr.strip()[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if [list(e.shape) for e in expected] != result["shapes"]:
        raise AssertionError(f"reloaded {path} gives shapes {result['shapes']}")
    return float(result["max_abs_difference"])


# ---------------------------------------------------------------------------------------------- what to export
def depth_spec(model: DepthModel, output: Literal["disp", "depth"] = "disp") -> Spec:
    model = model.cpu().eval()
    if output == "disp":
        meaning = "Monodepth2's scale-0 sigmoid disparity in (0, 1); depth = 1 / (1/max_depth + (1/min_depth - " \
                  "1/max_depth) * disp), x stereo_scale"
    else:
        meaning = model.describe_scale()
    return Spec(output, DepthNet(model, output).eval(), torch.rand(2, 3, model.height, model.width), "image",
                (output,), {
                    "input": {"name": "image", "shape": ["batch", 3, model.height, model.width], "dtype": "float32",
                              "meaning": "RGB in [0, 1], NCHW, resized to the network size (Monodepth2: LANCZOS)"},
                    "output": {"name": output, "shape": ["batch", 1, model.height, model.width], "meaning": meaning},
                    "min_depth": model.min_depth, "max_depth": model.max_depth, "use_stereo": model.use_stereo,
                    "stereo_scale": model.depth_scale(), "num_layers": model.meta.get("num_layers"),
                })


def pose_spec(weights_folder: str | os.PathLike) -> Spec:
    from monodepth2_geopt.model_loading import load_pose_model

    encoder, decoder, meta = load_pose_model(weights_folder, "cpu")
    if meta.get("focal_relative_pose"):
        raise InputError(f"{weights_folder} was trained with --focal_relative_pose: its pose outputs need the "
                         "learned intrinsics to be read, which the export does not include; export without --pose")
    h, w = int(meta.get("height", 192)), int(meta.get("width", 640))
    return Spec("pose", PoseNet(encoder, decoder).eval(), torch.rand(2, 6, h, w), "frames",
                ("axisangle", "translation", "T"), {
                    "input": {"name": "frames", "shape": ["batch", 6, h, w], "dtype": "float32",
                              "meaning": "two RGB frames a, b in [0, 1] stacked on channels"},
                    "outputs": {"axisangle": "[batch, 3] rotation (axis * angle, radians)",
                                "translation": "[batch, 3] training units",
                                "T": "[batch, 4, 4] transform from frame a's camera to frame b's"},
                    "num_layers": meta.get("num_layers"),
                })


def export_paths(out_dir: Path, names: Sequence[str], formats: Sequence[str]) -> list[Path]:
    """Every file an export writes (the network files and their ``.json`` descriptions)."""
    files = [out_dir / f"{n}{SUFFIX[f]}" for n in names for f in formats]
    return [p for f in files for p in (f, f.with_name(f.name + ".json"))]


def export_model(weights_folder: str | os.PathLike, formats: Sequence[str], out_dir: str | os.PathLike,
                 output: Literal["disp", "depth"] = "disp", pose: bool = False, overwrite: bool = False,
                 check: bool = True, check_inputs: torch.Tensor | None = None, opset: int = OPSET,
                 onnx_exporter: str = "torchscript", log: Log = print) -> dict[str, dict]:
    """Export, then (``check``) compare each file with PyTorch on ``check_inputs`` (default: 3 random images).

    Returns {file path: {"format", "max_abs_difference" or "check": reason skipped}}. Existing files are refused
    before anything is built, unless ``overwrite``.
    """
    from monodepth2_geopt.model_loading import load_depth_model

    formats = list(dict.fromkeys(formats))
    if not formats or not set(formats) <= set(FORMATS):
        raise InputError(f"--format must be one or more of {', '.join(FORMATS)}, got {' '.join(formats)}")
    if output not in ("disp", "depth"):
        raise InputError(f"--output must be disp or depth, got {output!r}")
    if onnx_exporter not in ("torchscript", "dynamo"):
        raise InputError(f"--onnx_exporter must be torchscript or dynamo, got {onnx_exporter!r}")
    if "onnx" in formats and onnx_exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
        raise InputError("--onnx_exporter dynamo needs onnxscript (the torch.export-based exporter): "
                         "pip install onnxscript")
    out_dir = Path(out_dir).expanduser()
    names = [output] + (["pose"] if pose else [])
    refuse_existing(export_paths(out_dir, names, formats), overwrite)
    model = load_depth_model(weights_folder, "cpu")
    specs = [depth_spec(model, output)] + ([pose_spec(weights_folder)] if pose else [])
    results: dict[str, dict] = {}
    for spec in specs:
        for fmt in formats:
            path = out_dir / f"{spec.name}{SUFFIX[fmt]}"
            if fmt == "onnx":
                export_onnx(spec, path, opset, onnx_exporter)
            else:
                export_torchscript(spec, path)
            info = {"format": fmt, "file": path.name, "source": str(Path(weights_folder).expanduser()),
                    "torch": torch.__version__, **({"opset": opset, "exporter": onnx_exporter} if fmt == "onnx"
                                                    else {}), **spec.description}
            atomic_write_text(path.with_name(path.name + ".json"), json.dumps(info, indent=1) + "\n")
            result: dict = {"format": fmt, "check": "not asked"}
            if check:
                inputs = _check_inputs(spec, check_inputs)
                try:
                    result["max_abs_difference"] = (check_onnx(path, spec.module, inputs) if fmt == "onnx"
                                                     else check_torchscript(path, spec.module, inputs))
                    result["check"] = (f"max |difference| to PyTorch {result['max_abs_difference']:.2e} on "
                                       f"{len(inputs)} inputs" + (", onnxruntime" if fmt == "onnx" else
                                                                  ", reloaded without this project"))
                except InputError as err:  # onnxruntime is not installed: the file is written, unchecked
                    result["check"] = f"unchecked ({err})"
            results[str(path)] = result
            log(f"-> Wrote {path} ({fmt}): {result['check']}")
    return results


def _check_inputs(spec: Spec, given: torch.Tensor | None) -> torch.Tensor:
    """The check's batch: ``given`` for the depth network (pairs of consecutive images for the pose network),
    else 3 random inputs (seeded), a batch size other than the example's 2 (the batch is dynamic)."""
    if given is not None:
        if spec.input_name == "image":
            return given
        if len(given) >= 2:
            return torch.cat([given[:-1], given[1:]], 1)
    return torch.rand(3, *spec.example.shape[1:], generator=torch.Generator().manual_seed(0))


__all__ = ["FORMATS", "OPSET", "DepthNet", "PoseNet", "export_model", "export_onnx", "export_torchscript",
           "check_onnx", "check_torchscript", "export_paths", "depth_spec", "pose_spec"]
