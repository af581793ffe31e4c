"""The one training loop. It knows nothing of depth or flow: a ``Task`` (``depth_task.DepthTask``,
``flow_task.FlowTask``) brings the networks, the data, the objective and its monitoring.

The loop owns the runtime (device, DDP, seed, bf16 autocast, channels_last), Adam + StepLR, epochs and steps,
the non-finite guard, validation cadence, TensorBoard, checkpoints and exact resume:

- ``models/weights_<epoch>`` after every ``--save_frequency`` epochs (Monodepth2's layout) and ``models/last``
  every ``--save_every_steps`` steps and on Ctrl-C / SIGTERM. Both also hold ``trainer_state.pth``: epoch, step,
  position in the epoch's data order, the scheduler, the RNG states (Python, NumPy, torch, CUDA, augmentation)
  and the non-finite counters, so ``--resume`` continues bit for bit (CPU, ``--num_workers 0``; with loader
  workers the data order is exact, the workers' own augmentation draws are not).
- The LR schedule steps after each epoch, so the run really has ``scheduler_step_size`` epochs at the initial
  rate (Monodepth2 stepped it first; see README "What we fixed").
- A run folder that holds checkpoints is never started into again without ``--resume`` or ``--overwrite``, and a
  lock file (PID, host) keeps a second run out of it.
"""
from __future__ import annotations

import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn as nn
from tensorboardX import SummaryWriter
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import Sampler
from tqdm import tqdm

from monodepth2_geopt import checkpoint
from monodepth2_geopt.batch import prepare_batch
from monodepth2_geopt.errors import InputError, TrainingError
from monodepth2_geopt.utils import (DistInfo, configure_cpu_threads, init_distributed, make_loader, pick_device,
                                    sec_to_hm_str, seed_everything)

LOG_EVERY_LATE = 2000  # after this many steps, log (and validate) every 2000 steps only (Monodepth2's cadence)
# Options that may change between an interrupted run and its --resume (everything else must match).
RESUME_MAY_CHANGE = frozenset({
    "resume", "overwrite", "num_epochs", "num_workers", "no_progress", "log_frequency", "save_frequency",
    "save_every_steps", "data_path", "log_dir", "no_cuda", "compile", "image_cache", "max_nonfinite_steps",
    "load_weights_folder", "geopt_weights", "flow_eval_path", "flow_val_split", "json",
    "skip_bad_images", "keep_last", "num_threads", "pseudo_label_path"})


def total_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all the tensors together, one device scalar (foreach kernels, no host sync)."""
    get_total_norm = getattr(torch.nn.utils, "get_total_norm", None)  # PyTorch >= 2.6
    if get_total_norm is not None:
        return get_total_norm(tensors)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.float()) for t in tensors]))


def validate_run_options(opt) -> None:
    """The options every training run shares (train.py and pretrain_flow.py), checked before any work."""
    checks = [("--learning_rate", opt.learning_rate, math.isfinite(opt.learning_rate) and opt.learning_rate > 0,
               "a finite number > 0, e.g. 1e-4"),
              ("--batch_size", opt.batch_size, opt.batch_size >= 1, "at least 1"),
              ("--num_epochs", opt.num_epochs, opt.num_epochs >= 1, "at least 1"),
              ("--num_workers", opt.num_workers, opt.num_workers >= 0, "0 or more"),
              ("--log_frequency", opt.log_frequency, opt.log_frequency >= 1, "at least 1"),
              ("--save_frequency", opt.save_frequency, opt.save_frequency >= 1, "at least 1"),
              ("--save_every_steps", opt.save_every_steps, opt.save_every_steps >= 0, "0 (off) or more"),
              ("--keep_last", opt.keep_last, opt.keep_last >= 0, "0 (keep all) or more"),
              ("--num_threads", opt.num_threads, opt.num_threads is None or opt.num_threads >= 1, "at least 1"),
              ("--scheduler_step_size", opt.scheduler_step_size, opt.scheduler_step_size >= 1, "at least 1"),
              ("--max_nonfinite_steps", opt.max_nonfinite_steps, opt.max_nonfinite_steps >= 1, "at least 1")]
    for flag, value, ok, want in checks:
        if not ok:
            raise InputError(f"{flag} {value}: must be {want}")
    if opt.height % 32 or opt.width % 32:
        raise InputError(f"--height {opt.height} and --width {opt.width} must both be multiples of 32 "
                         "(the encoder downsamples by 32); e.g. --height 192 --width 640")
    if opt.resume and opt.overwrite:
        raise InputError("--resume continues a run and --overwrite starts it again: pass one of them")
    if opt.resume and opt.load_weights_folder:
        raise InputError("--resume restores the weights itself; --load_weights_folder is for fine-tuning a new run "
                         "from other weights: pass one of them")


# ---------------------------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class Runtime:
    """Where and how a run computes: the process group, the device and the precision flags."""
    dist: DistInfo
    device: torch.device
    amp: bool
    channels_last: bool

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)


@dataclass
class TaskData:
    """What a task's ``build_data`` returns. ``val_dataset``: the loop draws one validation batch from it at each
    log step (depth); tasks with a fixed validation batch (flow) keep it themselves and leave this None."""
    train_dataset: object
    sampler: Sampler | None = None  # None: shuffled (DistributedSampler under torchrun)
    val_dataset: object = None
    description: str = ""  # the banner's data line


class Task(Protocol):
    """One training objective plugged into ``Trainer``. ``forward`` runs under no autocast of the loop's: the task
    decides what runs in bf16 (the networks) and what stays fp32 (geometry, losses).

    ``losses["loss"]`` is the objective; every other entry is a scalar logged to TensorBoard.
    """
    opt: object
    kind: str  # "depth" / "flow": banners and the script that resumes the run
    num_scales_in_batch: int

    def validate_options(self) -> None: ...
    def build_data(self, rt: Runtime) -> TaskData: ...
    def build_models(self) -> dict[str, nn.Module]: ...
    def init_weights(self, models: dict[str, nn.Module], log) -> None: ...
    def forward(self, nets: dict[str, nn.Module], inputs: dict, step: int) -> tuple[dict, dict]: ...
    def batch_metrics(self, inputs: dict, outputs: dict) -> dict: ...
    def log_images(self, writer, inputs: dict, outputs: dict, step: int) -> None: ...
    def validate_extra(self, trainer: "Trainer") -> None: ...
    def encoder_meta(self) -> dict: ...


class ResumableSampler(Sampler[int]):
    """Wraps a sampler and remembers each epoch's order, so a run can stop anywhere and continue at the same
    index. The order is drawn from ``base`` when the epoch's iteration starts, exactly as the base sampler would
    draw it (same RNG calls at the same moment), so wrapping changes no result."""

    def __init__(self, base: Sampler):
        self.base = base
        self.order: torch.Tensor | None = None  # the current epoch's order, once drawn
        self.start = 0  # where the next iteration begins in a restored order

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def restore(self, order: torch.Tensor, start: int) -> None:
        self.order, self.start = order, start

    def new_epoch(self) -> None:
        self.order, self.start = None, 0

    def __len__(self) -> int:
        return len(self.base)

    def __iter__(self):
        if self.order is None:
            self.order = torch.tensor(list(iter(self.base)), dtype=torch.int64)
        order, start = self.order, self.start
        self.start = 0
        return iter(order[start:].tolist())


def _rng_state(aug_generator: torch.Generator) -> dict:
    """Every RNG the training path draws from, as tensors and plain values (loadable with weights_only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(), "augment": aug_generator.get_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, aug_generator: torch.Generator) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    aug_generator.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _option_defaults(kind: str) -> dict:
    from monodepth2_geopt.options import MonodepthOptions
    return _options_dict(MonodepthOptions(task=kind).parse([]))


def _options_dict(opt) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(opt).items()}


# ---------------------------------------------------------------------------------------------------- the loop
class Trainer:
    def __init__(self, options, task: Task):
        self.opt = opt = options
        self.task = task
        validate_run_options(opt)
        task.validate_options()
        self.rt = self.setup_runtime()
        self.dist, self.device = self.rt.dist, self.rt.device
        self.amp, self.channels_last = self.rt.amp, self.rt.channels_last
        self.log_path = os.path.join(opt.log_dir, opt.model_name)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.lock = None
        self.resume_from = self.prepare_run_folder()  # refuse / lock before any long work
        try:
            self.build(task)
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise

    def build(self, task: Task) -> None:
        opt = self.opt

        data = task.build_data(self.rt)  # before any weights: a wrong data path fails fast
        self.train_dataset = data.train_dataset
        self.models = task.build_models()
        task.init_weights(self.models, self.log)
        self.setup_optimisation()
        self.build_loaders(data)
        self.setup_logging()
        cpu_threads = f", {torch.get_num_threads()} CPU threads" if self.device.type == "cpu" else ""
        self.log(f"Training model named: {opt.model_name} | models and tensorboard files in {self.log_path}\n"
                 f"Training is using: {self.device} (bf16 autocast {'on' if self.amp else 'off'}, "
                 f"channels_last {'on' if self.channels_last else 'off'}, {self.dist.world_size} process(es)"
                 f"{cpu_threads})\n"
                 f"{data.description}")
        self.pending_rng = None
        self.loss_history: list[torch.Tensor] | None = None  # tools.experiments.train_steps records the losses
        if self.resume_from is not None:
            self.load_resume_state(self.resume_from)

    # ------------------------------------------------------------------ set-up
    def setup_runtime(self) -> Runtime:
        """Process group, device, seeding and precision flags."""
        opt = self.opt
        configure_cpu_threads(opt.num_threads)  # the automatic default is the command line's (cli.*.main)
        dist_info = init_distributed(not opt.no_cuda and torch.cuda.is_available())
        device = pick_device(opt.no_cuda, dist_info)
        seed_everything(opt.seed, dist_info.rank)
        cuda = device.type == "cuda"
        return Runtime(dist_info, device, amp=opt.amp == "bf16" or (opt.amp == "auto" and cuda),
                       channels_last=opt.channels_last == "on" or (opt.channels_last == "auto" and cuda))

    def prepare_run_folder(self) -> Path | None:
        """Take the run folder's lock, repair an interrupted save, resolve --resume, and refuse to start a new run
        into a folder that holds checkpoints (unless --overwrite)."""
        opt = self.opt
        run_dir = Path(self.log_path)
        models_dir = run_dir / "models"
        if self.dist.is_main:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                probe = run_dir / f".write_test.{os.getpid()}"
                probe.touch()
                probe.unlink()
            except OSError as err:
                raise InputError(f"--log_dir {opt.log_dir}: cannot write the run folder {run_dir} ({err.strerror or err}); "
                                 "pass a writable folder") from None
            self.lock = checkpoint.RunLock(run_dir)
            self.lock.acquire()
            for line in checkpoint.recover_checkpoint_folders(models_dir):
                self.log(f"{models_dir}: {line}")
        if opt.resume:
            return checkpoint.find_resume_checkpoint(opt.resume, run_dir)
        existing = checkpoint.checkpoint_folders(models_dir)
        if existing and not opt.overwrite:
            found = ", ".join(p.name for p in existing[:4]) + (", ..." if len(existing) > 4 else "")
            raise InputError(f"{models_dir} already holds checkpoints ({found}): pass --resume last to continue that "
                             "run, --overwrite to start it again (deletes them), or choose another --model_name")
        if existing and self.dist.is_main:
            removed = checkpoint.clear_run_folder(run_dir)
            self.log(f"--overwrite: removed {removed} checkpoint and log folder(s) of the previous run in {run_dir}")
        return None

    def setup_optimisation(self) -> None:
        """Models to the device, Adam + StepLR (restored from adam.pth with --load_weights_folder), DDP/compile."""
        opt = self.opt
        for m in self.models.values():
            m.to(self.device)
            if self.channels_last:
                m.to(memory_format=torch.channels_last)
        params = checkpoint.optimizer_parameters(self.models)  # Monodepth2's adam.pth layout
        self.trainable_params = [p for p in params if p.requires_grad]
        self.nonfinite_total = torch.zeros((), dtype=torch.int64, device=self.device)  # skipped steps
        self.nonfinite_streak = torch.zeros((), dtype=torch.int64, device=self.device)  # ... in a row
        self.model_optimizer = torch.optim.Adam(params, opt.learning_rate, fused=self.device.type == "cuda" or None)
        self.model_lr_scheduler = torch.optim.lr_scheduler.StepLR(self.model_optimizer, opt.scheduler_step_size, 0.1)
        if opt.load_weights_folder:
            self.load_optimizer(Path(os.path.expanduser(opt.load_weights_folder)) / "adam.pth")
        self.nets = {k: self.wrap(m) for k, m in self.models.items()}

    def build_loaders(self, data: TaskData) -> None:
        opt, pin = self.opt, self.device.type == "cuda"
        world = self.dist.world_size
        if len(data.train_dataset) < opt.batch_size * world and data.sampler is None:
            raise InputError(f"the training data has {len(data.train_dataset)} items, fewer than one batch "
                             f"(--batch_size {opt.batch_size} x {world} process(es))")
        base = data.sampler if data.sampler is not None else make_loader(data.train_dataset, opt.batch_size, True, 0,
                                                                         self.dist).sampler
        self.train_sampler = ResumableSampler(base)
        self.train_loader = make_loader(data.train_dataset, opt.batch_size, True, opt.num_workers, self.dist,
                                        drop_last=True, pin_memory=pin, sampler=self.train_sampler)
        if len(self.train_loader) == 0:
            raise InputError(f"the training data gives no full batch of --batch_size {opt.batch_size}")
        self.num_steps_per_epoch = len(self.train_loader)
        self.num_total_steps = self.num_steps_per_epoch * opt.num_epochs
        self.val_loader = self.val_iter = None
        self.val_drawn = 0  # batches drawn from the current pass over the validation data
        if data.val_dataset is not None:
            base = make_loader(data.val_dataset, opt.batch_size, True, 0).sampler
            self.val_sampler = ResumableSampler(base)
            self.val_loader = make_loader(data.val_dataset, opt.batch_size, True, min(opt.num_workers, 2),
                                          drop_last=False, pin_memory=pin, sampler=self.val_sampler)
            self.val_iter = iter(self.val_loader)

    def setup_logging(self) -> None:
        """TensorBoard writers and opt.json on rank 0; the generator of the GPU colour augmentation."""
        opt = self.opt
        self.writers = {}
        if self.dist.is_main:
            purge = self.resume_step() if self.resume_from is not None else None
            self.writers = {mode: SummaryWriter(os.path.join(self.log_path, mode), purge_step=purge)
                            for mode in ("train", "val")}
            self.save_opts()
        self.aug_generator = torch.Generator().manual_seed(opt.seed if opt.seed is not None else
                                                           int(torch.initial_seed()) % 2 ** 31)

    def resume_step(self) -> int:
        return int(checkpoint.read_trainer_state(self.resume_from)["step"])

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.opt.compile:
            model = torch.compile(model)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DDP(model, device_ids=ids)
        return model

    # ------------------------------------------------------------------ the loop
    def set_train(self):
        for m in self.nets.values():
            m.train()

    def set_eval(self):
        for m in self.nets.values():
            m.eval()

    def train(self, max_steps: int | None = None, save_at_stop: bool = True) -> Path | None:
        """Train to the end of ``--num_epochs``, or until ``max_steps`` optimisation steps in all (the step budget of
        ``tools.experiments.train_steps``; a later call continues from there). Returns the last weights folder saved
        (rank 0); ``save_at_stop=False``: no save when ``max_steps`` ends the call inside an epoch."""
        opt = self.opt
        if self.lock is not None and not self.lock.held:
            self.lock.acquire()
        self.start_time = time.time()
        self.start_step = self.step
        total = self.num_total_steps if max_steps is None else min(max_steps, self.num_total_steps)
        self.end_step = total  # where this call stops: the progress bar's and the logged time left's end
        self.bar = tqdm(total=total * opt.batch_size * self.dist.world_size, unit="ex", unit_scale=True,
                        dynamic_ncols=True, initial=self.step * opt.batch_size * self.dist.world_size,
                        disable=opt.no_progress or not self.dist.is_main)
        self.stop_signal = None
        previous = self.install_signal_handlers()
        saved = None
        try:
            while self.epoch < opt.num_epochs:
                if not self.run_epoch(max_steps):  # max_steps reached inside the epoch
                    if save_at_stop:
                        saved = self.save_model(f"weights_{self.epoch}")
                    break
                self.model_lr_scheduler.step()  # after the epoch's steps: full epochs at the initial LR
                self.epoch += 1
                self.batch_in_epoch = 0
                done = max_steps is not None and self.step >= max_steps
                if self.epoch % opt.save_frequency == 0 or self.epoch == opt.num_epochs or (done and save_at_stop):
                    saved = self.save_model(f"weights_{self.epoch - 1}")
                elif opt.save_every_steps:
                    self.save_last()
                if done:
                    break
            return saved
        except _StopRequested:
            self.save_last()
            signum = self.stop_signal
            name = signal.Signals(signum).name
            self.log(f"{name}: saved {Path(self.log_path) / 'models' / 'last'} at step {self.step} (epoch "
                     f"{self.epoch}, batch {self.batch_in_epoch}). Continue with:\n  {self.resume_command()}")
            raise SystemExit(128 + signum)
        finally:
            self.restore_signal_handlers(previous)
            self.bar.close()
            for w in self.writers.values():
                w.close()
            if getattr(self, "lock", None) is not None:
                self.lock.release()

    def run_epoch(self, max_steps: int | None) -> bool:
        """The rest of the current epoch; False if ``max_steps`` ended it early."""
        opt = self.opt
        self.set_train()
        self.train_sampler.set_epoch(self.epoch)
        self.bar.set_description(f"epoch {self.epoch + 1}/{opt.num_epochs}")
        # Resuming, the RNGs continue from where the checkpoint left them. At an epoch start the loader's iterator
        # draws from them (its base seed, then the epoch's order), as in the run that was not interrupted; in the
        # middle of an epoch that run drew nothing here, so the new iterator's draw must come before the restore.
        if self.pending_rng is not None and self.batch_in_epoch == 0:
            _set_rng_state(self.pending_rng, self.aug_generator)
            self.pending_rng = None
        batches = iter(self.train_loader)
        if self.pending_rng is not None:
            _set_rng_state(self.pending_rng, self.aug_generator)
            self.pending_rng = None
        for batch in batches:
            before = time.time()
            inputs, outputs, losses = self.train_step(batch)
            if self.loss_history is not None:
                self.loss_history.append(losses["loss"].detach())
            self.bar.update(opt.batch_size * self.dist.world_size)
            early = self.batch_in_epoch % opt.log_frequency == 0 and self.step < LOG_EVERY_LATE
            late = self.step % LOG_EVERY_LATE == 0
            if early or late:
                self.check_nonfinite()  # every rank, at the same steps (their gradients are the same)
            if (early or late) and self.dist.is_main:
                self.log_time(self.batch_in_epoch, time.time() - before, float(losses["loss"].detach()))
                if int(self.nonfinite_total):
                    self.log(f"  {int(self.nonfinite_total)} step(s) skipped so far: non-finite loss or gradients")
                losses.update(self.task.batch_metrics(inputs, outputs))
                self.log_tb("train", inputs, outputs, losses)
                self.val()
            self.step += 1
            self.batch_in_epoch += 1
            if self.stop_signal is not None:
                raise _StopRequested
            if opt.save_every_steps and self.step % opt.save_every_steps == 0:
                self.save_last()
            if max_steps is not None and self.step >= max_steps and self.batch_in_epoch < self.num_steps_per_epoch:
                # a later call continues this epoch's order where this one stopped
                self.train_sampler.restore(self.train_sampler.order, self.batch_in_epoch * opt.batch_size)
                return False
        self.train_sampler.new_epoch()
        return True

    def train_step(self, batch):
        """One optimisation step on a collated CPU batch; no host synchronisation."""
        inputs = prepare_batch(batch, self.device, self.task.num_scales_in_batch, augment=True,
                               channels_last=self.channels_last, generator=self.aug_generator)
        outputs, losses = self.process_batch(inputs)
        self.model_optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.guarded_optimizer_step(losses["loss"])
        return inputs, outputs, losses

    def process_batch(self, inputs):
        """The task's forward pass and objective through the (possibly wrapped) networks."""
        return self.task.forward(self.nets, inputs, self.step)

    def guarded_optimizer_step(self, loss: torch.Tensor) -> None:
        """Adam's step, skipped when the loss or any gradient is NaN/inf: the weights and Adam's state stay.

        On CUDA the decision stays on the device (fused Adam's ``found_inf``, as GradScaler uses it: no host
        sync); the counters are read by ``check_nonfinite`` at log steps. On the CPU a host check is free.
        """
        grads = [p.grad for p in self.trainable_params if p.grad is not None]
        finite = torch.isfinite(loss.detach())
        if grads:
            finite = finite & torch.isfinite(total_norm(grads))
        bad = (~finite).to(torch.int64)
        self.nonfinite_total += bad
        self.nonfinite_streak = (self.nonfinite_streak + 1) * bad
        if self.model_optimizer.defaults.get("fused"):
            self.model_optimizer.found_inf = bad.to(torch.float32).reshape(1)
            self.model_optimizer.step()
        else:
            if not bad.item():
                self.model_optimizer.step()
            self.check_nonfinite()

    def check_nonfinite(self) -> None:
        """Stop with a one-line error after --max_nonfinite_steps skipped steps in a row (reads device counters)."""
        streak = int(self.nonfinite_streak)
        if streak >= self.opt.max_nonfinite_steps:
            raise TrainingError(
                f"step {self.step}: the loss or its gradients were NaN/inf for {streak} steps in a row "
                f"({int(self.nonfinite_total)} skipped in all), so the weights were left as they were and the run "
                "stops; likely causes: a learning rate too high (--learning_rate), bad intrinsics (--intrinsics) "
                "or depth range, corrupt frames. The checkpoints saved so far are intact.")

    def autocast(self):
        return self.rt.autocast()

    # ------------------------------------------------------------------ monitoring
    def next_val_batch(self):
        try:
            batch = next(self.val_iter)
        except StopIteration:
            self.val_sampler.new_epoch()
            self.val_drawn = 0
            self.val_iter = iter(self.val_loader)
            batch = next(self.val_iter)
        self.val_drawn += 1
        return batch

    def val(self):
        """Validation at a log step (rank 0): the task's loss and metrics on the next validation batch, then the
        task's own diagnostics. Through the unwrapped networks: DDP's forward is a collective the other ranks
        would never join."""
        self.set_eval()
        models = {k: checkpoint.unwrap(m) for k, m in self.nets.items()}
        try:
            with torch.no_grad():
                if self.val_loader is not None:
                    inputs = prepare_batch(self.next_val_batch(), self.device, self.task.num_scales_in_batch,
                                           channels_last=self.channels_last)
                    outputs, losses = self.task.forward(models, inputs, self.step)
                    losses.update(self.task.batch_metrics(inputs, outputs))
                    self.log_tb("val", inputs, outputs, losses)
                self.task.validate_extra(self)
        finally:
            self.set_train()

    def log(self, text: str) -> None:
        if self.dist.is_main:
            tqdm.write(text)

    def log_time(self, batch_idx, duration, loss):
        done = self.step * self.opt.batch_size * self.dist.world_size
        elapsed = time.time() - self.start_time
        run = self.step - self.start_step
        left = (self.end_step - self.step) / run * elapsed if run > 0 else 0
        rate = self.opt.batch_size * self.dist.world_size / max(duration, 1e-9)
        self.log(f"epoch {self.epoch:>3} | batch {batch_idx:>6} | examples/s: {rate:5.1f} | loss: {loss:.5f} | "
                 f"time elapsed: {sec_to_hm_str(elapsed)} | time left: {sec_to_hm_str(left)} | seen {done}")

    def log_scalars(self, mode, losses):
        """Losses and the learning rate to TensorBoard; returns the writer (None off rank 0)."""
        writer = self.writers.get(mode)
        if writer is not None:
            for name, value in losses.items():
                writer.add_scalar(name, float(value.detach()) if torch.is_tensor(value) else float(value), self.step)
            writer.add_scalar("lr", self.model_optimizer.param_groups[0]["lr"], self.step)
        return writer

    def log_tb(self, mode, inputs, outputs, losses):
        writer = self.log_scalars(mode, losses)
        if writer is not None:
            self.task.log_images(writer, inputs, outputs, self.step)

    # ------------------------------------------------------------------ checkpoints and resume
    def save_opts(self):
        checkpoint.save_options(self.opt, os.path.join(self.log_path, "models"),
                                derived={"device": str(self.device), **getattr(self.task, "derived_options",
                                                                               lambda: {})()})

    def encoder_meta(self) -> dict:
        return self.task.encoder_meta()

    def trainer_state(self) -> dict:
        """Everything --resume needs besides the networks and adam.pth."""
        val_order = getattr(getattr(self, "val_sampler", None), "order", None)
        return {"format": 1, "task": self.task.kind, "epoch": self.epoch, "step": self.step,
                "batch_in_epoch": self.batch_in_epoch, "scheduler": self.model_lr_scheduler.state_dict(),
                "train_order": self.train_sampler.order if self.batch_in_epoch else None,
                "val_order": val_order, "val_drawn": self.val_drawn,
                "nonfinite_total": int(self.nonfinite_total), "nonfinite_streak": int(self.nonfinite_streak),
                "rng": _rng_state(self.aug_generator), "options": _options_dict(self.opt),
                "world_size": self.dist.world_size}

    def save_model(self, name: str | None = None, with_state: bool = True) -> Path | None:
        """Write ``models/<name>`` (default ``weights_<epoch>``): the networks, adam.pth, trainer_state.pth."""
        if not self.dist.is_main:
            return None
        folder = Path(self.log_path) / "models" / (name or f"weights_{self.epoch}")
        extra = {"trainer_state": self.trainer_state()} if with_state else None
        checkpoint.save_weights_folder(folder, self.models, self.model_optimizer, encoder_meta=self.encoder_meta(),
                                       extra=extra)
        self.log(f"saved {folder}")
        pruned = checkpoint.prune_weights_folders(folder.parent, self.opt.keep_last)
        if pruned:
            self.log(f"--keep_last {self.opt.keep_last}: deleted {', '.join(p.name for p in pruned)}")
        return folder

    def save_last(self) -> None:
        if self.dist.is_main:
            folder = Path(self.log_path) / "models" / "last"
            checkpoint.save_weights_folder(folder, self.models, self.model_optimizer,
                                           encoder_meta=self.encoder_meta(),
                                           extra={"trainer_state": self.trainer_state()})

    def load_resume_state(self, folder: Path) -> None:
        """Weights, Adam, schedule, counters, data position and RNG states of a checkpoint (RNGs are set when
        the loop starts, after the data iterators exist, so the run continues exactly)."""
        state = checkpoint.read_trainer_state(folder)
        if state.get("task") != self.task.kind:
            raise InputError(f"--resume {folder}: it is a {state.get('task')} run, this is {self.task.kind} training")
        saved, now = state.get("options", {}), _options_dict(self.opt)
        defaults = _option_defaults(self.task.kind)
        # An option the checkpoint predates counts as its default (the behaviour of the version that saved it).
        changed = [k for k in sorted(set(saved) | set(now)) if k not in RESUME_MAY_CHANGE
                   and saved.get(k, defaults.get(k)) != now.get(k)]
        if changed:
            diffs = "; ".join(f"--{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in changed[:4])
            raise InputError(f"--resume {folder}: the run was started with other options ({diffs}); resume with "
                             "the original command plus --resume")
        if state.get("world_size", 1) != self.dist.world_size:
            raise InputError(f"--resume {folder}: saved with {state['world_size']} process(es), now "
                             f"{self.dist.world_size}; resume with the same torchrun --nproc_per_node")
        for name, model in self.models.items():
            checkpoint.load_into(model, folder / f"{name}.pth", name)
        self.load_optimizer(folder / "adam.pth", required=True)
        self.model_lr_scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step, self.batch_in_epoch = int(state["epoch"]), int(state["step"]), int(state["batch_in_epoch"])
        self.nonfinite_total.fill_(int(state["nonfinite_total"]))
        self.nonfinite_streak.fill_(int(state["nonfinite_streak"]))
        if self.batch_in_epoch:
            if state["train_order"] is None or len(state["train_order"]) != len(self.train_sampler):
                raise InputError(f"--resume {folder}: the training data has changed size since the checkpoint")
            self.train_sampler.restore(state["train_order"], self.batch_in_epoch * self.opt.batch_size)
        if self.val_loader is not None and state.get("val_order") is not None:
            self.val_sampler.restore(state["val_order"], int(state["val_drawn"]) * self.opt.batch_size)
            self.val_drawn = int(state["val_drawn"])
            self.val_iter = iter(self.val_loader)
        self.pending_rng = state["rng"]
        self.log(f"resuming from {folder}: epoch {self.epoch}, step {self.step} (batch {self.batch_in_epoch} of "
                 f"{self.num_steps_per_epoch}), learning rate {self.model_optimizer.param_groups[0]['lr']:g}")

    def load_optimizer(self, path: Path, required: bool = False) -> None:
        if not path.is_file():
            if required:
                raise InputError(f"{path} is missing: the checkpoint is incomplete; resume from another one")
            self.log("  adam.pth not found: the optimiser starts fresh")
            return
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as err:
            raise InputError(f"cannot read {path} ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                             "it is not a plain optimiser state dict") from None
        try:
            layout = checkpoint.load_optimizer_state(self.model_optimizer, state)
            self.log(f"  loaded adam.pth ({layout} layout)")
        except (ValueError, KeyError, RuntimeError, TypeError, AttributeError) as err:
            if required:
                raise InputError(f"{path} does not match this run's parameters ({err})") from None
            self.log(f"  adam.pth does not match this run's parameters ({err}); the optimiser starts fresh")

    def resume_command(self) -> str:
        args = [a for a in sys.argv[1:]]
        for flag in ("--resume", "--overwrite"):
            while flag in args:
                i = args.index(flag)
                del args[i:i + (1 if flag == "--overwrite" else 2)]
        name = os.path.basename(sys.argv[0]) if sys.argv else ""
        if name.startswith("m2g-"):  # an installed console command (pyproject.toml [project.scripts])
            return " ".join([name, *args, "--resume", "last"])
        script = name if name.endswith(".py") else ("train.py" if self.task.kind == "depth" else "pretrain_flow.py")
        return " ".join(["python", script, *args, "--resume", "last"])

    # ------------------------------------------------------------------ signals
    def install_signal_handlers(self):
        """First Ctrl-C / SIGTERM: finish the step, save models/last, exit. A second Ctrl-C stops at once.

        Single-process runs only: under torchrun the ranks receive the signal at different steps and one that waits
        for the others' gradients would hang; there ``models/last`` comes from ``--save_every_steps``."""
        if self.dist.enabled:
            return {}
        try:
            previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

            def handler(signum, frame):
                if self.stop_signal is not None and signum == signal.SIGINT:
                    raise KeyboardInterrupt
                self.stop_signal = signum
                self.log(f"{signal.Signals(signum).name}: stopping after this step to save models/last "
                         "(Ctrl-C again to stop at once)")

            for s in previous:
                signal.signal(s, handler)
            return previous
        except ValueError:  # not the main thread
            return {}

    @staticmethod
    def restore_signal_handlers(previous: dict) -> None:
        for s, h in previous.items():
            signal.signal(s, h)


class _StopRequested(Exception):
    """Raised inside the loop after a step when Ctrl-C / SIGTERM asked the run to stop."""
