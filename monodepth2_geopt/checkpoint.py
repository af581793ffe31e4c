"""Checkpoint I/O in Monodepth2's layout, written atomically, read strictly with clear errors.

Layout: ``<log_dir>/<model_name>/models/weights_<epoch>/{encoder,depth,pose_encoder,pose,adam}.pth``;
``encoder.pth`` is the encoder state dict plus the metadata keys ``height``, ``width``, ``use_stereo``.
``adam.pth`` is one Adam over ``optimizer_parameters`` (Monodepth2's layout), so it is read by either code base.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

from monodepth2_geopt import fileio
from monodepth2_geopt.errors import InputError, TrainingError
from monodepth2_geopt.fileio import atomic_path

# square_pixels, focal_relative_pose: only runs with those options record them
ENCODER_META_KEYS = ("height", "width", "use_stereo", "square_pixels", "focal_relative_pose")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module behind DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def clean_state_dict(state: dict) -> dict:
    """Strip DDP/compile prefixes from keys."""
    out = {}
    for k, v in state.items():
        for p in _WRAPPER_PREFIXES:
            while k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def atomic_save(obj, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, fsynced, then renamed (``fileio.atomic_path``): never a
    half-written file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    """``fileio.atomic_write_text`` with this module's argument order (text first)."""
    fileio.atomic_write_text(path, text)


def optimizer_parameters(models: dict[str, nn.Module]) -> list[nn.Parameter]:
    """Every parameter of every network, networks in their dict order (encoder, depth, pose_encoder, pose,
    predictive_mask), each in ``parameters()`` order: Monodepth2's ``parameters_to_train``.

    Frozen parameters are included (ResNet's classifier ``fc``): they never get a gradient, so Adam keeps no state
    for them, but they hold their index, and Monodepth2's ``load_state_dict`` needs the same count.
    """
    return [p for m in models.values() for p in m.parameters()]


def remap_optimizer_state(state: dict, saved_params: list[nn.Parameter], params: list[nn.Parameter]) -> dict:
    """A one-group optimizer ``state_dict`` saved over ``saved_params`` re-indexed for one over ``params``.

    ``saved_params`` must be a subset of ``params`` (the same objects), e.g. the trainable ones only.
    """
    index = {id(p): i for i, p in enumerate(params)}
    to_new = {j: index[id(p)] for j, p in enumerate(saved_params)}
    group = dict(state["param_groups"][0], params=list(range(len(params))))
    return {"state": {to_new[int(k)]: v for k, v in state["state"].items()}, "param_groups": [group]}


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> str:
    """Restore a one-group optimizer from an ``adam.pth`` state dict; returns which layout it was in.

    Monodepth2's layout (and this project's, see ``optimizer_parameters``) loads as is. The layout this project
    wrote before it matched Monodepth2's (trainable parameters only) is re-indexed. Anything else raises
    ValueError (from ``Optimizer.load_state_dict``).
    """
    params = optimizer.param_groups[0]["params"]
    saved = len(state["param_groups"][0]["params"]) if state.get("param_groups") else -1
    trainable = [p for p in params if p.requires_grad]
    if saved != len(params) and saved == len(trainable):
        optimizer.load_state_dict(remap_optimizer_state(state, trainable, params))
        return "trainable parameters only (this project's earlier adam.pth)"
    optimizer.load_state_dict(state)
    return "Monodepth2's"


def save_weights_folder(folder: str | os.PathLike, models: dict[str, nn.Module],
                        optimizer: torch.optim.Optimizer | None = None, encoder_meta: dict | None = None,
                        optimizer_name: str = "adam", extra: dict | None = None) -> Path:
    """Write ``<name>.pth`` per model (+ ``adam.pth``) into ``folder`` atomically.

    Everything is written into a temporary sibling folder which then replaces ``folder``, so a crash never
    leaves a mix of old and new files. ``encoder_meta`` (height, width, use_stereo) goes into encoder.pth.
    Raises TrainingError, and writes nothing, if a network holds a non-finite value.
    """
    states = {name: clean_state_dict(unwrap(model).state_dict()) for name, model in models.items()}
    for name, state in states.items():
        for key, tensor in state.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise TrainingError(f"not saving {folder}: {name}.{key} holds non-finite values (the run has "
                                    "diverged); the previous checkpoints are kept as they are")
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    os.chmod(tmp, 0o755)
    old = None
    try:
        for name, state in states.items():
            if name == "encoder" and encoder_meta:
                state = {**state, **encoder_meta}
            _save_synced(state, tmp / f"{name}.pth")
        if optimizer is not None:
            _save_synced(optimizer.state_dict(), tmp / f"{optimizer_name}.pth")
        for name, obj in (extra or {}).items():
            _save_synced(obj, tmp / f"{name}.pth")
        _fsync_dir(tmp)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(folder, old)
        os.replace(tmp, folder)  # a kill between the two renames is repaired by recover_checkpoint_folders
        _fsync_dir(folder.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not folder.exists():
            os.replace(old, folder)  # the new folder never arrived: put the previous one back
        raise
    return folder


def _save_synced(obj, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def folder_tensors(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of a weights folder's networks and ``adam.pth`` (its per-parameter state), keyed
    ``<file stem>/<key>``: what two checkpoints must share to be the same training state (``trainer_state.pth``
    aside). Read with weights_only."""
    out = {}
    for f in sorted(Path(folder).glob("*.pth")):
        if f.name == TRAINER_STATE:
            continue
        state = torch.load(f, map_location="cpu", weights_only=True)
        if f.name == "adam.pth":
            state = {f"{i}.{k}": v for i, s in state["state"].items() for k, v in s.items()}
        out.update({f"{f.stem}/{k}": v for k, v in state.items() if torch.is_tensor(v)})
    return out


def load_state_file(path: str | os.PathLike) -> tuple[dict, dict]:
    """Read a ``.pth`` state dict; returns (tensors, metadata) with Monodepth2's metadata keys separated."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or not a torch file
        raise InputError(f"cannot read checkpoint {path} ({type(err).__name__}: {err}); "
                         "is it a complete PyTorch state dict?") from None
    if not isinstance(state, dict):
        raise InputError(f"checkpoint {path} does not hold a state dict")
    meta = {k: state[k] for k in ENCODER_META_KEYS if k in state}
    tensors = clean_state_dict({k: v for k, v in state.items() if k not in ENCODER_META_KEYS})
    return tensors, meta


def infer_resnet_layers(state: dict, prefix: str = "encoder.") -> int | None:
    """The ResNet depth (18/34/50/101/152) a state dict was saved from, from its block counts."""
    def count(layer):
        idx = {k[len(prefix):].split(".")[1] for k in state if k.startswith(f"{prefix}{layer}.")}
        return len(idx)
    counts = tuple(count(f"layer{i}") for i in range(1, 5))
    bottleneck = any(k.startswith(f"{prefix}layer1.0.conv3") for k in state)
    table = {(2, 2, 2, 2, False): 18, (3, 4, 6, 3, False): 34, (3, 4, 6, 3, True): 50,
             (3, 4, 23, 3, True): 101, (3, 8, 36, 3, True): 152}
    return table.get(counts + (bottleneck,))


def describe_encoder(state: dict, prefix: str = "encoder.") -> str:
    layers = infer_resnet_layers(state, prefix)
    w = state.get(f"{prefix}conv1.weight")
    n_img = w.shape[1] // 3 if w is not None else None
    if layers is None:
        return "not a ResNet encoder"
    return f"a ResNet-{layers} encoder" + (f" on {n_img} stacked images" if n_img and n_img > 1 else "")


def load_into(model: nn.Module, path: str | os.PathLike, what: str = "model", strict: bool = True) -> dict:
    """Load a state-dict file into ``model``; mismatches become one clear InputError.

    Returns the file's metadata (e.g. height/width/use_stereo of encoder.pth).
    """
    state, meta = load_state_file(path)
    target = unwrap(model)
    own = target.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [k for k in own if k in state and own[k].shape != state[k].shape]
    if strict and (missing or unexpected or shape):
        hint = ""
        if any(k.startswith("encoder.") for k in own):
            hint = f" The file holds {describe_encoder(state)}; this run builds {describe_encoder(own)}."
            if infer_resnet_layers(state) not in (None, infer_resnet_layers(own)):
                hint += f" Pass --num_layers {infer_resnet_layers(state)}."
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shape:
            k = shape[0]
            detail.append(f"{len(shape)} of another shape (e.g. {k}: {tuple(state[k].shape)} in the file, "
                          f"{tuple(own[k].shape)} here)")
        raise InputError(f"{path} does not fit the {what}: {', '.join(detail)}.{hint}")
    target.load_state_dict({k: v for k, v in state.items() if k in own}, strict=strict)
    return meta


def save_options(opt, models_dir: str | os.PathLike, derived: dict | None = None) -> None:
    """Write ``opt.json`` (all options as given) and ``command.txt`` (the command line)."""
    models_dir = Path(models_dir)
    atomic_write_text(json.dumps(dict(vars(opt), **({"derived": derived} if derived else {})), indent=2,
                                 default=str), models_dir / "opt.json")
    atomic_write_text(" ".join([os.path.basename(sys.executable)] + sys.argv) + "\n", models_dir / "command.txt")


def require_weight_files(weights_folder: str | os.PathLike, names, why: str) -> Path:
    """The folder as a Path, or an InputError naming the missing folder or file (``why``: what it should be)."""
    folder = Path(weights_folder)
    if not folder.is_dir():
        raise InputError(f"weights folder {folder} does not exist (pass --load_weights_folder "
                         "<log_dir>/<model_name>/models/weights_<epoch>)")
    for name in names:
        if not (folder / name).is_file():
            raise InputError(f"{folder} has no {name}: {why}")
    return folder


# ---------------------------------------------------------------------------------------------------- run folders
TRAINER_STATE = "trainer_state.pth"


def checkpoint_folders(models_dir: str | os.PathLike) -> list[Path]:
    """``weights_<N>`` (by N) and ``last`` folders under ``<run>/models``."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    numbered = []
    for p in models_dir.iterdir():
        if p.is_dir() and p.name.startswith("weights_") and p.name[len("weights_"):].isdigit():
            numbered.append((int(p.name[len("weights_"):]), p))
    found = [p for _, p in sorted(numbered)]
    if (models_dir / "last").is_dir():
        found.append(models_dir / "last")
    return found


def prune_weights_folders(models_dir: str | os.PathLike, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` ``weights_<N>`` folders (by N) of a run; returns the deleted ones.

    ``keep_last`` 0 (or less) keeps everything (Monodepth2). ``last`` and the newest ``weights_<N>`` are never
    deleted, nor anything that is not a ``weights_<N>`` folder.
    """
    if keep_last <= 0:
        return []
    numbered = [p for p in checkpoint_folders(models_dir) if p.name != "last"]
    doomed = numbered[:-keep_last]
    for p in doomed:
        shutil.rmtree(p)
    return doomed


def read_trainer_state(folder: str | os.PathLike) -> dict:
    """The ``trainer_state.pth`` of a checkpoint folder (plain values and tensors: read with weights_only)."""
    path = Path(folder) / TRAINER_STATE
    if not path.is_file():
        raise InputError(f"{folder} has no {TRAINER_STATE}: it cannot be resumed exactly (it was written by "
                         "Monodepth2 or an older version); start a new run from it with --load_weights_folder")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"cannot read {path} ({type(err).__name__}); it is damaged or not a trainer state: "
                         "resume from another checkpoint folder") from None
    if not isinstance(state, dict) or "step" not in state:
        raise InputError(f"{path} is not a trainer state")
    return state


def find_resume_checkpoint(spec: str, run_dir: str | os.PathLike) -> Path:
    """The checkpoint folder ``--resume spec`` names: ``last`` (the latest resumable checkpoint of ``run_dir``),
    a run folder (its latest), or a ``models/last`` / ``models/weights_N`` folder itself."""
    run_dir = Path(run_dir)
    path = run_dir if spec == "last" else Path(os.path.expanduser(spec))
    if (path / TRAINER_STATE).is_file():
        return path
    models_dir = path / "models" if (path / "models").is_dir() else path
    candidates = [p for p in checkpoint_folders(models_dir) if (p / TRAINER_STATE).is_file()]
    if not candidates:
        where = f"{run_dir} (from --log_dir and --model_name)" if spec == "last" else str(path)
        raise InputError(f"--resume {spec}: no resumable checkpoint in {where}; a checkpoint folder holds "
                         f"{TRAINER_STATE} (train.py and pretrain_flow.py write one into models/last and every "
                         "models/weights_N)")
    return max(candidates, key=lambda p: int(read_trainer_state(p)["step"]))


def clear_run_folder(run_dir: str | os.PathLike) -> int:
    """Delete a run's checkpoint folders and TensorBoard folders (``--overwrite``); returns how many."""
    run_dir = Path(run_dir)
    doomed = checkpoint_folders(run_dir / "models") + [run_dir / m for m in ("train", "val") if (run_dir / m).is_dir()]
    for p in doomed:
        shutil.rmtree(p)
    return len(doomed)


def recover_checkpoint_folders(models_dir: str | os.PathLike) -> list[str]:
    """Finish or undo what a kill during ``save_weights_folder`` left: a ``.<name>.old`` whose ``<name>`` is gone
    is put back (the kill fell between the two renames); temporary ``.<name>.*`` folders are deleted.
    Returns a line per action."""
    models_dir = Path(models_dir)
    actions = []
    if not models_dir.is_dir():
        return actions
    for p in sorted(models_dir.iterdir()):
        if not (p.is_dir() and p.name.startswith(".")):
            continue
        if p.name.endswith(".old"):
            target = models_dir / p.name[1:-len(".old")]
            if not target.exists():
                os.replace(p, target)
                actions.append(f"restored {target.name} (a save was interrupted between its two renames)")
                continue
        shutil.rmtree(p, ignore_errors=True)
        actions.append(f"removed the unfinished temporary folder {p.name}")
    return actions


class RunLock:
    """``<run>/run.lock`` holding PID, host and start time: one run writes into a run folder at a time.

    A lock whose process is gone (same host, PID not alive) is stale and taken over; a lock of this very process
    (e.g. a second Trainer in one Python session) is taken over too.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / "run.lock"
        self.held = False

    def acquire(self) -> None:
        import socket
        import time as _time
        self.path.parent.mkdir(parents=True, exist_ok=True)
        host, pid = socket.gethostname(), os.getpid()
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is None or (owner[1] == host and (owner[0] == pid or not _pid_alive(owner[0]))):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                raise InputError(f"{self.path.parent} is in use by another run (pid {owner[0]} on {owner[1]}, since "
                                 f"{owner[2]}); wait for it, choose another --model_name, or delete {self.path} if "
                                 "that run is gone") from None
            with os.fdopen(fd, "w") as f:
                f.write(f"{pid}\n{host}\n{_time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            self.held = True
            return
        raise InputError(f"cannot take the lock {self.path}; delete it if no run uses this folder")

    def _owner(self):
        try:
            pid, host, since = self.path.read_text().splitlines()[:3]
            return int(pid), host, since
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            owner = self._owner()
            if owner is not None and owner[0] == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
