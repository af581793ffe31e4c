"""Monodepth2 training (M, S, MS) on modern PyTorch: models, pose, warping, losses, logging, checkpoints.

The loss maths live in ``losses.py`` and ``geometry.py``; this class only orchestrates. Differences from
Monodepth2 that change numbers are deliberate fixes (see README "What we fixed"): ``grid_sample`` uses
``align_corners=True`` to match the pixel normalisation, and the LR schedule steps after each epoch, so the
run really has ``scheduler_step_size`` epochs at the initial rate.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tensorboardX import SummaryWriter
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from monodepth2_geopt import checkpoint, geometry, networks
from monodepth2_geopt.batch import prepare_batch
from monodepth2_geopt.datasets import DATASETS
from monodepth2_geopt.errors import InputError, TrainingError
from monodepth2_geopt.losses import (MinReprojectionConfig, identity_reprojection_errors, min_reprojection_loss,
                                     normalised_smooth_loss)
from monodepth2_geopt.metrics import MAX_DEPTH, MIN_DEPTH, compute_depth_errors, eigen_crop_mask
from monodepth2_geopt.splits import readlines, resolve_split_dir
from monodepth2_geopt.utils import (init_distributed, make_loader, normalize_image, pick_device,
                                    sec_to_hm_str, seed_everything)

DEPTH_METRIC_NAMES = ["de/abs_rel", "de/sq_rel", "de/rms", "de/log_rms", "da/a1", "da/a2", "da/a3"]


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
              ("--max_nonfinite_steps", opt.max_nonfinite_steps, opt.max_nonfinite_steps >= 1, "at least 1")]
    for flag, value, ok, want in checks:
        if not ok:
            raise InputError(f"{flag} {value}: must be {want}")
    if opt.height % 32 or opt.width % 32:
        raise InputError(f"--height {opt.height} and --width {opt.width} must both be multiples of 32 "
                         "(the encoder downsamples by 32); e.g. --height 192 --width 640")


def validate_options(opt) -> None:
    """Reject bad flag combinations with one clear message each."""
    validate_run_options(opt)
    if not opt.frame_ids or opt.frame_ids[0] != 0:
        raise InputError(f"--frame_ids must start with 0 (the target frame), got {opt.frame_ids}")
    if len(set(opt.frame_ids)) != len(opt.frame_ids):
        raise InputError(f"--frame_ids has duplicates: {opt.frame_ids}")
    if opt.frame_ids == [0] and not opt.use_stereo:
        raise InputError("--frame_ids 0 alone needs --use_stereo (S mode): there is no source frame to warp")
    if not set(opt.scales) <= {0, 1, 2, 3}:
        raise InputError(f"--scales must be a subset of 0 1 2 3, got {opt.scales}")
    if opt.automask_warmup < 0:
        raise InputError(f"--automask_warmup must be >= 0 steps, got {opt.automask_warmup}")
    if opt.init_depth is not None and not opt.min_depth < opt.init_depth < opt.max_depth:
        raise InputError(f"--init_depth {opt.init_depth} must lie strictly between --min_depth {opt.min_depth} "
                         f"and --max_depth {opt.max_depth}")
    if opt.automask_warmup and opt.disable_automasking:
        raise InputError("--automask_warmup has no effect with --disable_automasking; drop one of them")
    if opt.predictive_mask and not opt.disable_automasking:
        raise InputError("--predictive_mask needs --disable_automasking (the two masks are alternatives)")


def split_file_lines(split: str, name: str) -> list[str]:
    path = resolve_split_dir(split) / f"{name}_files.txt"
    lines = [ln for ln in readlines(path) if ln.strip()]
    if not lines:
        raise InputError(f"split file {path} is empty: list frames as 'folder frame_index side' "
                         "(make one with `python make_split.py`)")
    return lines


class Trainer:
    def __init__(self, options):
        self.opt = opt = options
        validate_options(opt)
        self.setup_runtime()

        # Derived values live here; the options namespace stays as the user gave it.
        self.frame_ids = list(opt.frame_ids) + (["s"] if opt.use_stereo else [])
        self.num_scales = len(opt.scales)
        self.num_input_frames = len(opt.frame_ids)
        self.num_pose_frames = 2 if opt.pose_model_input == "pairs" else self.num_input_frames
        self.use_pose_net = not (opt.use_stereo and opt.frame_ids == [0])
        self.loss_cfg = MinReprojectionConfig(avg_reprojection=opt.avg_reprojection,
                                              automask=not opt.disable_automasking, no_ssim=opt.no_ssim)
        self.warmup_loss_cfg = dataclasses.replace(self.loss_cfg, automask=False)
        self.step, self.epoch = 0, 0

        self.models = self.build_models()
        if opt.geopt_weights:
            self.load_geopt(opt.geopt_weights)
        if opt.load_weights_folder:
            self.load_model()
        self.setup_optimisation()

        self.build_data()
        self.setup_logging()
        self.log(f"Training model named: {opt.model_name} | models and tensorboard files in {self.log_path}\n"
                 f"Training is using: {self.device} (bf16 autocast {'on' if self.amp else 'off'}, "
                 f"channels_last {'on' if self.channels_last else 'off'}, {self.dist.world_size} process(es))\n"
                 f"Using split: {opt.split} | {len(self.train_dataset)} training items and "
                 f"{len(self.val_dataset)} validation items")

    # ------------------------------------------------------------------ set-up
    # The three set-up steps below are shared with FlowTrainer (pretraining).
    def setup_runtime(self) -> None:
        """Process group, device, seeding, precision flags and the run folder."""
        opt = self.opt
        self.dist = init_distributed(not opt.no_cuda and torch.cuda.is_available())
        self.device = pick_device(opt.no_cuda, self.dist)
        seed_everything(opt.seed, self.dist.rank)
        cuda = self.device.type == "cuda"
        self.amp = opt.amp == "bf16" or (opt.amp == "auto" and cuda)
        self.channels_last = opt.channels_last == "on" or (opt.channels_last == "auto" and cuda)
        self.log_path = os.path.join(opt.log_dir, opt.model_name)

    def setup_optimisation(self) -> None:
        """Models to the device, Adam + StepLR (restored from adam.pth when resuming), DDP/compile wrappers."""
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
            self.load_optimizer()
        self.nets = {k: self.wrap(m) for k, m in self.models.items()}

    def setup_logging(self) -> None:
        """TensorBoard writers and opt.json on rank 0; the generator of the GPU colour augmentation."""
        opt = self.opt
        self.writers = {}
        if self.dist.is_main:
            self.writers = {mode: SummaryWriter(os.path.join(self.log_path, mode)) for mode in ("train", "val")}
            self.save_opts()
        self.aug_generator = torch.Generator().manual_seed(opt.seed if opt.seed is not None else
                                                           int(torch.initial_seed()) % 2 ** 31)

    def build_models(self) -> dict[str, nn.Module]:
        opt = self.opt
        pretrained = opt.weights_init == "pretrained"
        models = {"encoder": networks.ResnetEncoder(opt.num_layers, pretrained)}
        models["depth"] = networks.DepthDecoder(models["encoder"].num_ch_enc, opt.scales)
        if opt.init_depth is not None:  # (a --load_weights_folder depth.pth replaces this later)
            models["depth"].init_output(geometry.depth_to_sigmoid(opt.init_depth, opt.min_depth, opt.max_depth))
        if self.use_pose_net:
            if opt.pose_model_type == "separate_resnet":
                models["pose_encoder"] = networks.ResnetEncoder(opt.num_layers, pretrained, self.num_pose_frames)
                # Monodepth2 hard-codes 2 predicted frames (kept: released pose.pth has 12 outputs); with
                # --pose_model_input all and more than 2 source frames it needs one pose per source.
                models["pose"] = networks.PoseDecoder(models["pose_encoder"].num_ch_enc, 1,
                                                      max(2, self.num_pose_frames - 1))
            elif opt.pose_model_type == "shared":
                models["pose"] = networks.PoseDecoder(models["encoder"].num_ch_enc, self.num_pose_frames)
            else:
                models["pose"] = networks.PoseCNN(self.num_pose_frames)
        if opt.predictive_mask:
            models["predictive_mask"] = networks.DepthDecoder(models["encoder"].num_ch_enc, opt.scales,
                                                              num_output_channels=len(self.frame_ids) - 1)
        for m in models.values():  # ResNet's classifier is kept for checkpoint compatibility, never trained
            if isinstance(m, networks.ResnetEncoder):
                m.encoder.fc.requires_grad_(False)
        return models

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.opt.compile:
            model = torch.compile(model)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DDP(model, device_ids=ids)
        return model

    def build_data(self) -> None:
        opt = self.opt
        dataset_cls = DATASETS[opt.dataset]
        train_files = split_file_lines(opt.split, "train")
        val_files = split_file_lines(opt.split, "val")
        ext = ".png" if opt.png else ".jpg"
        common = dict(num_scales=4, img_ext=ext, intrinsics=opt.intrinsics, stereo_baseline=opt.stereo_baseline,
                      image_cache=opt.image_cache)
        self.train_dataset = dataset_cls(opt.data_path, train_files, opt.height, opt.width, self.frame_ids,
                                         is_train=True, **common)
        # Ground truth for monitoring is read only for the validation batch, never on the training path.
        probe = dataset_cls(opt.data_path, val_files, opt.height, opt.width, self.frame_ids, **common)
        self.val_dataset = dataset_cls(opt.data_path, val_files, opt.height, opt.width, self.frame_ids,
                                       load_depth=probe.check_depth(), **common)
        self.train_dataset.load_color(*self._first_frame(self.train_dataset), False)  # fail fast, named
        if len(self.train_dataset) < opt.batch_size * self.dist.world_size:
            raise InputError(f"the training split has {len(self.train_dataset)} items, fewer than one batch "
                             f"(--batch_size {opt.batch_size} x {self.dist.world_size} process(es))")
        pin = self.device.type == "cuda"
        self.train_loader = make_loader(self.train_dataset, opt.batch_size, True, opt.num_workers, self.dist,
                                        drop_last=True, pin_memory=pin)
        self.val_loader = make_loader(self.val_dataset, opt.batch_size, True, min(opt.num_workers, 2),
                                      drop_last=False, pin_memory=pin)
        self.val_iter = iter(self.val_loader)
        self.num_total_steps = len(self.train_loader) * opt.num_epochs

    @staticmethod
    def _first_frame(dataset):
        from monodepth2_geopt.splits import parse_split_line
        folder, frame_index, side = parse_split_line(dataset.filenames[0])
        return folder, frame_index, side

    # ------------------------------------------------------------------ training loop
    def set_train(self):
        for m in self.nets.values():
            m.train()

    def set_eval(self):
        for m in self.nets.values():
            m.eval()

    def train(self):
        self.epoch, self.step = 0, 0
        self.start_time = time.time()
        total = self.num_total_steps * self.opt.batch_size * self.dist.world_size
        self.bar = tqdm(total=total, unit="ex", unit_scale=True, dynamic_ncols=True,
                        disable=self.opt.no_progress or not self.dist.is_main)
        for self.epoch in range(self.opt.num_epochs):
            self.run_epoch()
            self.model_lr_scheduler.step()  # after the epoch's optimizer steps: 15 full epochs at the initial LR
            if (self.epoch + 1) % self.opt.save_frequency == 0 or self.epoch + 1 == self.opt.num_epochs:
                self.save_model()
        self.bar.close()
        for w in self.writers.values():
            w.close()

    def run_epoch(self):
        self.set_train()
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        self.bar.set_description(f"epoch {self.epoch + 1}/{self.opt.num_epochs}")
        for batch_idx, batch in enumerate(self.train_loader):
            before = time.time()
            inputs, outputs, losses = self.train_step(batch)
            self.bar.update(self.opt.batch_size * self.dist.world_size)
            early = batch_idx % self.opt.log_frequency == 0 and self.step < 2000
            late = self.step % 2000 == 0
            if early or late:
                self.check_nonfinite()  # every rank, at the same steps (their gradients are the same)
            if (early or late) and self.dist.is_main:
                self.log_time(batch_idx, time.time() - before, float(losses["loss"].detach()))
                if int(self.nonfinite_total):
                    self.log(f"  {int(self.nonfinite_total)} step(s) skipped so far: non-finite loss or gradients")
                if "depth_gt" in inputs:
                    self.compute_depth_losses(inputs, outputs, losses)
                self.log_tb("train", inputs, outputs, losses)
                self.val()
            self.step += 1

    def train_step(self, batch):
        """One optimisation step on a collated CPU batch; no host synchronisation."""
        inputs = prepare_batch(batch, self.device, 4, augment=True, channels_last=self.channels_last,
                               generator=self.aug_generator)
        outputs, losses = self.process_batch(inputs)
        self.model_optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.guarded_optimizer_step(losses["loss"])
        return inputs, outputs, losses

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
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def process_batch(self, inputs):
        opt = self.opt
        with self.autocast():
            if opt.pose_model_type == "shared":
                b = inputs[("color_aug", 0, 0)].shape[0]
                all_aug = torch.cat([inputs[("color_aug", i, 0)] for i in self.frame_ids])
                all_features = [torch.split(f, b) for f in self.nets["encoder"](all_aug)]
                features = {k: [f[i] for f in all_features] for i, k in enumerate(self.frame_ids)}
                outputs = self.nets["depth"](features[0])
            else:
                features = {0: self.nets["encoder"](inputs[("color_aug", 0, 0)])}
                outputs = self.nets["depth"](features[0])
            if opt.predictive_mask:
                mask_out = self.nets["predictive_mask"](features[0])
                outputs.update({("predictive_mask", "disp", s): v for (_, s), v in mask_out.items()})
            if self.use_pose_net:
                outputs.update(self.predict_poses(inputs, features))
        outputs = {k: v.float() for k, v in outputs.items()}
        self.generate_images_pred(inputs, outputs)
        losses = self.compute_losses(inputs, outputs)
        return outputs, losses

    def predict_poses(self, inputs, features):
        """Relative camera poses target<->source; pairs are always fed in temporal order."""
        opt, outputs = self.opt, {}
        sources = [f for f in self.frame_ids[1:] if f != "s"]
        if opt.pose_model_type == "shared":
            feats = features
        else:
            feats = {f: inputs[("color_aug", f, 0)] for f in self.frame_ids if f != "s"}
        if self.num_pose_frames == 2:
            for f_i in sources:
                pair = [feats[f_i], feats[0]] if f_i < 0 else [feats[0], feats[f_i]]
                axisangle, translation = self.nets["pose"](self.pose_inputs(pair))
                outputs[("axisangle", 0, f_i)] = axisangle
                outputs[("translation", 0, f_i)] = translation
                outputs[("cam_T_cam", 0, f_i)] = geometry.transformation_from_parameters(
                    axisangle[:, 0].float(), translation[:, 0].float(), invert=(f_i < 0))
        else:
            axisangle, translation = self.nets["pose"](self.pose_inputs([feats[f] for f in [0] + sources]))
            for i, f_i in enumerate(sources):
                outputs[("axisangle", 0, f_i)] = axisangle[:, i:i + 1]
                outputs[("translation", 0, f_i)] = translation[:, i:i + 1]
                outputs[("cam_T_cam", 0, f_i)] = geometry.transformation_from_parameters(
                    axisangle[:, i].float(), translation[:, i].float())
        return outputs

    def pose_inputs(self, frames):
        kind = self.opt.pose_model_type
        if kind == "shared":
            return frames
        stacked = torch.cat(frames, 1)
        return [self.nets["pose_encoder"](stacked)] if kind == "separate_resnet" else stacked

    def generate_images_pred(self, inputs, outputs):
        """Warp every source frame into the target view with the predicted depth, at every loss scale."""
        opt = self.opt
        for scale in opt.scales:
            disp = outputs[("disp", scale)]
            if opt.v1_multiscale:
                source_scale = scale
            else:
                disp = F.interpolate(disp, [opt.height, opt.width], mode="bilinear", align_corners=False)
                source_scale = 0
            _, depth = geometry.disp_to_depth(disp, opt.min_depth, opt.max_depth)
            outputs[("depth", 0, scale)] = depth
            for frame_id in self.frame_ids[1:]:
                if frame_id == "s":
                    T = inputs["stereo_T"]
                elif opt.pose_model_type == "posecnn":
                    # PoseCNN translation is scaled by the mean inverse depth (Wang et al., arXiv 1712.00175).
                    mean_inv_depth = (1 / depth).mean(dim=(2, 3))
                    T = geometry.transformation_from_parameters(
                        outputs[("axisangle", 0, frame_id)][:, 0],
                        outputs[("translation", 0, frame_id)][:, 0] * mean_inv_depth[:, None],
                        invert=frame_id < 0)
                else:
                    T = outputs[("cam_T_cam", 0, frame_id)]
                pix = geometry.rigid_pixels(depth, inputs[("K", source_scale)], inputs[("inv_K", source_scale)], T)
                outputs[("color", frame_id, scale)] = geometry.sample(inputs[("color", frame_id, source_scale)],
                                                                      pix, padding_mode="border")

    def active_loss_cfg(self) -> MinReprojectionConfig:
        """The reprojection-loss settings at the current step (auto-masking is off during --automask_warmup)."""
        return self.warmup_loss_cfg if self.step < self.opt.automask_warmup else self.loss_cfg

    def compute_losses(self, inputs, outputs):
        opt, losses, total = self.opt, {}, 0.0
        cfg = self.active_loss_cfg()
        sources = self.frame_ids[1:]
        identity = {}  # auto-masking errors per comparison resolution, shared by the scales that use it
        for scale in opt.scales:
            source_scale = scale if opt.v1_multiscale else 0
            target = inputs[("color", 0, source_scale)]
            if cfg.automask and source_scale not in identity:
                identity[source_scale] = identity_reprojection_errors(
                    [inputs[("color", f, source_scale)] for f in sources], target, opt.no_ssim)
            mask = None
            if opt.predictive_mask:
                mask = outputs[("predictive_mask", "disp", scale)]
                if not opt.v1_multiscale:
                    mask = F.interpolate(mask, [opt.height, opt.width], mode="bilinear", align_corners=False)
            loss, selection, _ = min_reprojection_loss(
                [outputs[("color", f, scale)] for f in sources],
                [inputs[("color", f, source_scale)] for f in sources], target, cfg, mask,
                identity.get(source_scale))
            if mask is not None:
                loss = loss + 0.2 * F.binary_cross_entropy(mask, torch.ones_like(mask))
            if selection is not None:
                outputs[f"identity_selection/{scale}"] = selection
            smooth = normalised_smooth_loss(outputs[("disp", scale)], inputs[("color", 0, scale)])
            loss = loss + opt.disparity_smoothness * smooth / (2 ** scale)
            total = total + loss
            losses[f"loss/{scale}"] = loss
        losses["loss"] = total / self.num_scales
        return losses

    # ------------------------------------------------------------------ monitoring
    @torch.no_grad()
    def compute_depth_losses(self, inputs, outputs, losses):
        """Depth metrics on a batch with ground truth (batch median scaling, Eigen crop, 80 m cap)."""
        gt = inputs["depth_gt"]
        pred = F.interpolate(outputs[("depth", 0, 0)].detach(), gt.shape[-2:], mode="bilinear",
                             align_corners=False).clamp(MIN_DEPTH, MAX_DEPTH)
        crop = torch.from_numpy(eigen_crop_mask(*gt.shape[-2:])).to(gt.device)
        mask = (gt > 0) & crop
        gt_v, pred_v = gt[mask], pred[mask]
        if gt_v.numel() == 0:
            return
        pred_v = (pred_v * torch.median(gt_v) / torch.median(pred_v)).clamp(MIN_DEPTH, MAX_DEPTH)
        errors = compute_depth_errors(gt_v, pred_v)
        for name, key in zip(DEPTH_METRIC_NAMES, ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")):
            losses[name] = float(errors[key])

    def val(self):
        self.set_eval()
        try:
            batch = next(self.val_iter)
        except StopIteration:
            self.val_iter = iter(self.val_loader)
            batch = next(self.val_iter)
        # Validation runs on rank 0 only, so it must not go through the DDP wrappers (their forward
        # broadcasts buffers, a collective the other ranks would never join).
        wrapped, self.nets = self.nets, {k: checkpoint.unwrap(m) for k, m in self.nets.items()}
        try:
            with torch.no_grad():
                inputs = prepare_batch(batch, self.device, 4, channels_last=self.channels_last)
                outputs, losses = self.process_batch(inputs)
                if "depth_gt" in inputs:
                    self.compute_depth_losses(inputs, outputs, losses)
                self.log_tb("val", inputs, outputs, losses)
        finally:
            self.nets = wrapped
        self.set_train()

    def log(self, text: str) -> None:
        if self.dist.is_main:
            tqdm.write(text)

    def log_time(self, batch_idx, duration, loss):
        done = self.step * self.opt.batch_size * self.dist.world_size
        elapsed = time.time() - self.start_time
        left = (self.num_total_steps / max(self.step, 1) - 1.0) * elapsed if self.step > 0 else 0
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
        if writer is None:
            return
        for j in range(min(4, self.opt.batch_size, inputs[("color", 0, 0)].shape[0])):
            for s in self.opt.scales:
                for f in self.frame_ids:
                    writer.add_image(f"color_{f}_{s}/{j}", inputs[("color", f, s)][j].float(), self.step)
                    if s == 0 and f != 0:
                        writer.add_image(f"color_pred_{f}_{s}/{j}", outputs[("color", f, s)][j].float(), self.step)
                writer.add_image(f"disp_{s}/{j}", normalize_image(outputs[("disp", s)][j].float()), self.step)
                if self.opt.predictive_mask:
                    for f_idx, f in enumerate(self.frame_ids[1:]):
                        writer.add_image(f"predictive_mask_{f}_{s}/{j}",
                                         outputs[("predictive_mask", "disp", s)][j, f_idx][None].float(), self.step)
                elif f"identity_selection/{s}" in outputs:
                    writer.add_image(f"automask_{s}/{j}", outputs[f"identity_selection/{s}"][j][None], self.step)

    # ------------------------------------------------------------------ checkpoints
    def save_opts(self):
        checkpoint.save_options(self.opt, os.path.join(self.log_path, "models"),
                                derived={"frame_ids": self.frame_ids, "device": str(self.device)})

    def encoder_meta(self) -> dict:
        """The metadata Monodepth2 stores in encoder.pth."""
        return {"height": self.opt.height, "width": self.opt.width, "use_stereo": self.opt.use_stereo}

    def save_model(self):
        if not self.dist.is_main:
            return
        folder = os.path.join(self.log_path, "models", f"weights_{self.epoch}")
        checkpoint.save_weights_folder(folder, self.models, self.model_optimizer, encoder_meta=self.encoder_meta())
        self.log(f"saved {folder}")

    def load_model(self):
        names = []
        for name in self.opt.models_to_load:
            if name in self.models:
                names.append(name)
            else:
                self.log(f"  skipping {name}: this run has no such model")
        self.load_networks(names, "drop it from --models_to_load or point --load_weights_folder at a complete "
                                  "weights folder")

    def load_networks(self, names, why: str) -> None:
        """Load ``<name>.pth`` of --load_weights_folder into each named model, in order, each file checked first."""
        folder = checkpoint.require_weight_files(os.path.expanduser(self.opt.load_weights_folder), (), why)
        self.log(f"loading model from folder {folder}")
        for name in names:
            checkpoint.require_weight_files(folder, [f"{name}.pth"], why)
            checkpoint.load_into(self.models[name], folder / f"{name}.pth", name)
            self.log(f"  loaded {name}")

    def load_optimizer(self):
        path = Path(os.path.expanduser(self.opt.load_weights_folder)) / "adam.pth"
        if not path.is_file():
            self.log("  adam.pth not found: the optimiser starts fresh")
            return
        try:
            layout = checkpoint.load_optimizer_state(self.model_optimizer,
                                                     torch.load(path, map_location=self.device, weights_only=True))
            self.log(f"  loaded adam.pth ({layout} layout)")
        except (ValueError, KeyError, RuntimeError) as err:
            self.log(f"  adam.pth does not match this run's parameters ({err}); the optimiser starts fresh")

    def load_geopt(self, path):
        """Initialise the depth encoder (and optionally the pose encoder) from Geometric Pretraining."""
        from monodepth2_geopt.geopt import load_geopt_encoder, load_geopt_pose_encoder
        n = load_geopt_encoder(self.models["encoder"], path)
        self.log(f"GeoPt: loaded {n} tensors into the depth encoder from {path}")
        if self.opt.geopt_pose:
            if "pose_encoder" not in self.models:
                raise InputError("--geopt_pose needs --pose_model_type separate_resnet")
            n = load_geopt_pose_encoder(self.models["pose_encoder"], path)
            self.log(f"GeoPt: loaded {n} tensors into the pose encoder from the motion encoder")
