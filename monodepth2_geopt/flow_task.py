"""Geometric Pretraining (Wang et al., ICRA 2020): self-supervised flow on uncalibrated frame triplets.

A structure encoder (the ResNet later transferred to depth, ``train.py --geopt_weights``) sees the target
frame; a motion encoder turns each (target, source) pair into a latent motion vector; a conditional flow
decoder with a narrow bottleneck predicts target->source flow from the structure features and the latent.
The loss is Monodepth2's photometric loss with flow warping (``flow.flow_photometric_loss``).

``FlowTask`` is a task of the one training loop (``trainer.Trainer``), as depth training is.
"""
from __future__ import annotations


from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.data import default_collate

from monodepth2_geopt import checkpoint, networks
from monodepth2_geopt.batch import prepare_batch
from monodepth2_geopt.datasets.video_dataset import UncalibratedVideoDataset, VideoDatasetError, make_mixed_dataset
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.flow_diagnostics import (DIAGNOSTIC_KEYS, diagnose_samples, evaluate_flow, format_line,
                                               ground_truth_for, ground_truth_path, reference_flow, triplet_frames,
                                               triplet_sample)
from monodepth2_geopt.flow import find_flow_pairs, flow_photometric_loss, predict_flows
from monodepth2_geopt.visualize import flow_to_color, normalize_image
from monodepth2_geopt.losses import MinReprojectionConfig, photometric_error
from monodepth2_geopt.splits import EIGEN_TEST_DRIVES
from monodepth2_geopt.depth_task import load_networks
from monodepth2_geopt.trainer import Runtime, TaskData, Trainer
from monodepth2_geopt.networks.flow_decoder import FlowDecoder
from monodepth2_geopt.networks.motion_encoder import build_motion_encoder

# Shared between tasks: "encoder" (structure encoder, transferred to depth). Task-specific: "motion_encoder"
# (its ResNet can initialise the pose encoder, --geopt_pose) and "flow" (discarded after pretraining).
MODEL_NAMES = ("encoder", "motion_encoder", "flow")
EVAL_PAIRS_PER_LOG = 4  # ground-truth pairs evaluated at each log step with --flow_eval_path
VAL_IMAGES = 8  # held-out triplets of the fixed validation batch (loss and diagnostics at each log step)


def parse_flow_sources(data_path: str, flow_data: list[str] | None) -> list[tuple[str, float]]:
    """``--data_path`` (weight 1) plus each ``--flow_data DIR[:WEIGHT]`` -> [(dir, weight)]."""
    sources = [(data_path, 1.0)]
    for item in flow_data or []:
        folder, sep, tail = item.rpartition(":")
        try:
            weight = float(tail) if sep else None
        except ValueError:
            weight = None
        if weight is None:
            folder, weight = item, 1.0
        if not weight >= 0:
            raise InputError(f"--flow_data {item!r}: the weight must be a number >= 0")
        sources.append((folder, weight))
    return sources


def validate_flow_options(opt) -> None:
    if opt.use_stereo:
        raise InputError("--use_stereo does not apply to flow pretraining: it uses monocular frames only")
    ids = opt.frame_ids
    if len(ids) < 2 or ids[0] != 0 or len(set(ids)) != len(ids):
        raise InputError(f"--frame_ids must be 0 followed by distinct source offsets, got {opt.frame_ids}")
    if not set(opt.scales) <= {0, 1, 2, 3} or not opt.scales:
        raise InputError(f"--scales must be a subset of 0 1 2 3, got {opt.scales}")
    if opt.frame_stride < 1:
        raise InputError(f"--frame_stride must be >= 1, got {opt.frame_stride}")
    if min(opt.motion_pool_grid) < 0 or (0 in opt.motion_pool_grid and max(opt.motion_pool_grid) > 0):
        raise InputError(f"--motion_pool_grid must be two positive numbers, or 0 0 for a global average; got "
                         f"{opt.motion_pool_grid}")
    if opt.flow_conditioning == "basis" and opt.flow_basis < 1:
        raise InputError(f"--flow_basis must be >= 1 with --flow_conditioning basis, got {opt.flow_basis}")
    if opt.bottleneck_channels < 0:
        raise InputError(f"--bottleneck_channels must be >= 0 (0: no bottleneck), got {opt.bottleneck_channels}")


class FlowTask:
    """Pretrains structure encoder + motion encoder + flow decoder; saves Monodepth2-layout weight folders."""
    kind = "flow"
    num_scales_in_batch = 4

    def __init__(self, options):
        self.opt = opt = options
        self.frame_ids = list(opt.frame_ids)
        self.source_ids = self.frame_ids[1:]
        # Auto-masking is opt-in here (--flow_automask): measured on the synthetic world, with it the network
        # first drifts to a global shift that helps some pixels while the mask hides the rest (EPE rises).
        # The per-pixel minimum over the sources is opt-in too (--flow_min_reprojection): under the minimum, a
        # flow that explains one source costs nothing where it is wrong for the other, so predicting the same
        # flow towards t-1 and t+1 is free and the motion latent is never needed (measured: direction cosine
        # +1.0 between the two flows). Averaging over the sources makes each flow answer for its own source.
        self.loss_cfg = MinReprojectionConfig(avg_reprojection=not opt.flow_min_reprojection,
                                              automask=opt.flow_automask, no_ssim=opt.no_ssim)
        self.rt: Runtime | None = None

    def validate_options(self) -> None:
        validate_flow_options(self.opt)

    def derived_options(self) -> dict:
        return {"frame_ids": self.frame_ids}

    # ------------------------------------------------------------------ set-up
    def build_models(self) -> dict[str, nn.Module]:
        opt = self.opt
        pretrained = opt.weights_init == "pretrained"
        grid = tuple(opt.motion_pool_grid) if min(opt.motion_pool_grid) > 0 else None
        models = {"encoder": networks.ResnetEncoder(opt.num_layers, pretrained),
                  "motion_encoder": build_motion_encoder(opt.motion_encoder, opt.motion_num_layers, pretrained,
                                                         opt.latent_dim, grid)}
        models["flow"] = FlowDecoder(models["encoder"].num_ch_enc, opt.latent_dim, opt.bottleneck_channels or None,
                                     opt.scales, opt.flow_conditioning, num_basis=opt.flow_basis,
                                     fixed_basis=opt.flow_fixed_basis == "on")
        # ResNet classifiers are kept for checkpoint compatibility but never used (DDP needs them frozen).
        for m in (models["encoder"], getattr(models["motion_encoder"], "backbone", None)):
            if m is not None:
                m.encoder.fc.requires_grad_(False)
        return models

    def build_data(self, rt: Runtime) -> TaskData:
        self.rt = rt
        opt = self.opt
        self.sources = parse_flow_sources(opt.data_path, opt.flow_data)
        datasets, self.notes = [], []
        for i, (folder, _) in enumerate(self.sources):
            split = opt.flow_split if i == 0 else None
            if split is None and (Path(folder) / "train_files.txt").is_file():  # extract_frames.py's lists
                split = Path(folder) / "train_files.txt"
            try:
                ds = UncalibratedVideoDataset(folder, split, opt.height, opt.width, tuple(self.frame_ids),
                                              stride=opt.frame_stride, is_train=True)
            except VideoDatasetError as err:
                which = "--data_path" if i == 0 else "--flow_data"
                raise InputError(f"{which} {folder}: {err}") from None
            if split is not None:
                self.notes.append(f"{folder}: frames of {split}")
            if not opt.flow_include_test_drives:
                dropped = ds.exclude_folders(EIGEN_TEST_DRIVES)
                if dropped:
                    self.notes.append(f"{folder}: excluded {dropped} triplets of KITTI Eigen / Eigen-benchmark test "
                                      "drives (--flow_include_test_drives keeps them)")
                if not len(ds):
                    raise InputError(f"{folder}: every frame lies in a KITTI Eigen test drive; pass "
                                     "--flow_include_test_drives to pretrain on them anyway")
            datasets.append(ds)
        self.source_sizes = [len(d) for d in datasets]
        world = rt.dist.world_size
        if len(datasets) == 1 and opt.flow_epoch_size is None:
            train_dataset, sampler = datasets[0], None
            num_examples = len(train_dataset) // world
        else:  # weighted mixing; every process draws its own share of the epoch
            total = opt.flow_epoch_size or sum(self.source_sizes)
            num_examples = total // world
            try:
                train_dataset, sampler = make_mixed_dataset(datasets, [w for _, w in self.sources],
                                                            max(num_examples, 1))
            except ValueError as err:  # e.g. every weight 0
                raise InputError(f"--flow_data weights: {err}") from None
        if num_examples < opt.batch_size:
            raise InputError(f"the pretraining data has {num_examples} triplets per process, fewer than one batch "
                             f"(--batch_size {opt.batch_size}); add frames or lower --batch_size")
        self.eval_pairs = find_flow_pairs(opt.flow_eval_path, opt.flow_eval_split) if opt.flow_eval_path else []
        self.eval_cursor = 0
        self.build_val_data()
        sources = ", ".join(f"{d} (x{w:g}, {n} triplets)" for (d, w), n in zip(self.sources, self.source_sizes))
        description = (f"Data: {sources} | {(num_examples // opt.batch_size) * opt.batch_size} examples per epoch "
                       "per process" + (f" | {len(self.eval_pairs)} ground-truth flow pairs" if self.eval_pairs else "")
                       + "".join(f"\n  {note}" for note in self.notes))
        return TaskData(train_dataset, sampler=sampler, description=description)

    def build_val_data(self) -> None:
        """The fixed held-out batch of validation loss and diagnostics (``--flow_val_split``, else the
        val_files.txt beside the training list), with its ground truth or TV-L1 reference flows, computed once."""
        opt = self.opt
        self.val_batch, self.val_samples, self.val_kind = None, [], None
        self.val_frames, self.val_truth = [], []
        split = opt.flow_val_split
        if split is None:
            train_list = opt.flow_split or Path(opt.data_path) / "train_files.txt"
            cand = Path(train_list).with_name("val_files.txt")
            split = cand if cand.is_file() else None
        if split is None or not self.rt.dist.is_main:
            return
        offsets = sorted(set(self.frame_ids) | {0, -1, 1}, key=lambda f: (f != 0, f))
        ds, errors = None, []
        for root in dict.fromkeys([Path(opt.data_path), Path(split).parent]):  # extract_frames.py: lists beside frames
            try:
                ds = UncalibratedVideoDataset(root, split, opt.height, opt.width, tuple(offsets),
                                              stride=opt.frame_stride, is_train=False)
                break
            except VideoDatasetError as err:
                errors.append(str(err))
        if ds is None:
            first = next((e for e in errors if "folder not found" not in e), errors[0])
            raise InputError(f"--flow_val_split {split}: {first} (lines are read against --data_path, then against "
                             "the split file's folder; every line needs its neighbours at -1 and +1)")
        # Triplets with ground-truth flow (the synthetic world's left camera) are preferred; else every triplet.
        has_truth = [ground_truth_path(ds.get_paths(i)[0], opt.height, opt.width) is not None for i in range(len(ds))]
        pool = [i for i, t in enumerate(has_truth) if t] or list(range(len(ds)))
        n = min(VAL_IMAGES, len(pool))
        chosen = [pool[int(j)] for j in torch.linspace(0, len(pool) - 1, n).round()]
        items = [ds[i] for i in chosen]
        self.val_batch = default_collate([{k: v for k, v in it.items() if k == "index" or k[1] in self.frame_ids}
                                          for it in items])
        truth = [ground_truth_for(ds.get_paths(i)[0], opt.height, opt.width) for i in chosen]
        self.val_kind = "ground_truth" if all(t is not None for t in truth) else "reference"
        self.val_truth = truth  # the TV-L1 references are computed at the first validation (a few seconds)
        self.val_frames = [triplet_frames(it) for it in items]
        self.notes.append(f"validation: {n} held-out triplets of {split}, diagnostics against "
                          + ("ground-truth flow" if self.val_kind == "ground_truth" else "TV-L1 reference flow"))

    def init_weights(self, models: dict[str, nn.Module], log) -> None:
        """--load_weights_folder: every network of this run must be in it (adam.pth is optional)."""
        if self.opt.load_weights_folder:
            load_networks(models, self.opt.load_weights_folder, MODEL_NAMES, log,
                          "point --load_weights_folder at a weights folder written by pretrain_flow.py")

    def encoder_meta(self) -> dict:
        """The metadata Monodepth2 stores in encoder.pth; pretraining never sees a stereo pair."""
        return {"height": self.opt.height, "width": self.opt.width, "use_stereo": False}

    # ------------------------------------------------------------------ training
    def forward(self, nets: dict[str, nn.Module], inputs: dict, step: int) -> tuple[dict, dict]:
        """Flow target->each source (same structure features, one latent per pair) and the flow loss."""
        if self.opt.flow_control == "shuffled_sources":  # control: sources of another triplet, no shared motion
            inputs = {k: (v.roll(1, 0) if isinstance(k, tuple) and k[0] in ("color", "color_aug") and k[1] != 0
                          else v) for k, v in inputs.items()}
        # The networks see the colour-augmented frames; the loss compares the original ones (as Monodepth2).
        aug_sources = {f: inputs[("color_aug", f, 0)] for f in self.source_ids}
        with self.rt.autocast():
            flows = predict_flows(nets["encoder"], nets["motion_encoder"], nets["flow"],
                                  inputs[("color_aug", 0, 0)], aug_sources,
                                  zero_latent=self.opt.flow_control == "zero_latent")
        outputs = {k: v.float() for k, v in flows.items()}
        sources = {f: inputs[("color", f, 0)] for f in self.source_ids}
        pyramid = None
        if self.opt.flow_loss_resolution == "pyramid":
            pyramid = {s: (inputs[("color", 0, s)], {f: inputs[("color", f, s)] for f in self.source_ids})
                       for s in self.opt.scales}
        loss, details = flow_photometric_loss(inputs[("color", 0, 0)], sources, outputs, self.opt.scales,
                                              self.opt.flow_smoothness, self.loss_cfg, pyramid)
        losses = {"loss": loss}
        for key, value in details.items():
            if isinstance(key, str) and not key.startswith("identity_selection"):
                losses[key] = value
            else:
                outputs[key] = value
        return outputs, losses

    # ------------------------------------------------------------------ monitoring
    def batch_metrics(self, inputs: dict, outputs: dict) -> dict:
        """No ground truth rides in the training batch (flow metrics come from ``validate_extra``)."""
        return {}

    def validate_extra(self, trainer: Trainer) -> None:
        """Validation loss and GeoPt diagnostics on the fixed held-out batch; EPE / Fl-all on the next few
        ``--flow_eval_path`` pairs. Called by the loop on rank 0 in eval mode, without gradients."""
        if self.val_batch is None and not self.eval_pairs:
            return
        opt, device = self.opt, self.rt.device
        models = {k: checkpoint.unwrap(m) for k, m in trainer.nets.items()}
        writer = trainer.writers.get("val")
        with self.rt.autocast():
            if self.val_batch is not None:
                inputs = prepare_batch(self.val_batch, device, self.num_scales_in_batch,
                                       channels_last=self.rt.channels_last)
                outputs, losses = self.forward(models, inputs, trainer.step)
                trainer.log_tb("val", inputs, outputs, losses)
                if not self.val_samples:
                    self.val_samples = [
                        triplet_sample(fr, gt if self.val_kind == "ground_truth" else reference_flow(fr[0], fr[1]))
                        for fr, gt in zip(self.val_frames, self.val_truth)]
                diag = diagnose_samples(models["encoder"], models["motion_encoder"], models["flow"],
                                        self.val_samples, self.val_kind, device)
                if writer is not None:
                    for name in DIAGNOSTIC_KEYS:
                        if diag[name] is not None:
                            writer.add_scalar(f"geopt/{name}", diag[name], trainer.step)
                trainer.log("  val: " + format_line(diag))
            if self.eval_pairs:
                n = min(EVAL_PAIRS_PER_LOG, len(self.eval_pairs))
                pairs = [self.eval_pairs[(self.eval_cursor + i) % len(self.eval_pairs)] for i in range(n)]
                self.eval_cursor = (self.eval_cursor + n) % len(self.eval_pairs)
                metrics = evaluate_flow(models["encoder"], models["motion_encoder"], models["flow"], pairs,
                                        opt.height, opt.width, device)
                if writer is not None:
                    for name in ("epe", "fl_all", "zero_epe"):
                        writer.add_scalar(f"flow/{name}", metrics[name], trainer.step)
                trainer.log(f"  flow ground truth ({n} pairs): EPE {metrics['epe']:.3f} px (zero flow "
                            f"{metrics['zero_epe']:.3f}) | Fl-all {metrics['fl_all']:.2f} %")

    @torch.no_grad()
    def log_images(self, writer, inputs: dict, outputs: dict, step: int) -> None:
        """Per shown sample: the frames, each source warped into the target with the predicted flow, the flow
        (Middlebury colour wheel, scaled to the image's largest motion), the per-pixel photometric error of the
        warp (0.85 SSIM + 0.15 L1, as in the loss; white = large, scaled per image) and the auto-mask if used."""
        s = min(self.opt.scales)
        n = min(4, inputs[("color", 0, 0)].shape[0])
        errors = {}
        for f in self.source_ids:
            warped = outputs[("color", f, s)][:n].float()
            # the loss compares at the warp's resolution (scale s with --flow_loss_resolution pyramid, else full)
            target = inputs[("color", 0, s)]
            if target.shape[-2:] != warped.shape[-2:]:
                target = inputs[("color", 0, 0)]
            errors[f] = photometric_error(warped, target[:n].float(), self.opt.no_ssim)  # [n, 1, h, w]
        for j in range(n):
            for f in self.frame_ids:
                writer.add_image(f"color_{f}_0/{j}", inputs[("color", f, 0)][j].float(), step)
            for f in self.source_ids:
                writer.add_image(f"color_pred_{f}_{s}/{j}", outputs[("color", f, s)][j].float(), step)
                writer.add_image(f"flow_{f}_{s}/{j}", flow_to_color(outputs[("flow", f, s)][j]), step)
                writer.add_image(f"photometric_error_{f}_{s}/{j}",
                                 normalize_image(errors[f][j]), step)
            if f"identity_selection/{s}" in outputs:
                writer.add_image(f"automask_{s}/{j}", outputs[f"identity_selection/{s}"][j][None], step)


def flow_trainer(options) -> Trainer:
    """The training loop with the flow pretraining task: what ``pretrain_flow.py`` runs."""
    return Trainer(options, FlowTask(options))
