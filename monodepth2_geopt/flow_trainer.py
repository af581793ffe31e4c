"""Geometric Pretraining (Wang et al., ICRA 2020): self-supervised flow on uncalibrated frame triplets.

A structure encoder (the ResNet later transferred to depth, ``train.py --geopt_weights``) sees the target
frame; a motion encoder turns each (target, source) pair into a latent motion vector; a conditional flow
decoder with a narrow bottleneck predicts target->source flow from the structure features and the latent.
The loss is Monodepth2's photometric loss with flow warping (``flow.flow_photometric_loss``).

``FlowTrainer`` reuses the depth ``Trainer``'s loop unchanged (``train``, ``run_epoch``, ``train_step``,
``wrap``, ``autocast``, ``log``, ``log_time``, ``load_optimizer``, ``save_opts``) and replaces the parts
that are task specific: set-up, models, data, ``process_batch``, monitoring and checkpoint loading.
"""
from __future__ import annotations


import torch.nn as nn

import networks
from datasets.video_dataset import UncalibratedVideoDataset, VideoDatasetError, make_mixed_dataset
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.flow import evaluate_flow, find_flow_pairs, flow_photometric_loss, flow_to_color, predict_flows
from monodepth2_geopt.losses import MinReprojectionConfig
from monodepth2_geopt.trainer import Trainer
from monodepth2_geopt.utils import make_loader
from networks.flow_decoder import FlowDecoder
from networks.motion_encoder import MotionEncoder

# Shared between tasks: "encoder" (structure encoder, transferred to depth). Task-specific: "motion_encoder"
# (its ResNet can initialise the pose encoder, --geopt_pose) and "flow" (discarded after pretraining).
MODEL_NAMES = ("encoder", "motion_encoder", "flow")
EVAL_PAIRS_PER_LOG = 4  # ground-truth pairs evaluated at each log step with --flow_eval_path


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
    if opt.height % 32 or opt.width % 32:
        raise InputError(f"--height {opt.height} and --width {opt.width} must both be multiples of 32 "
                         "(the encoder downsamples by 32); e.g. --height 192 --width 640")
    if opt.use_stereo:
        raise InputError("--use_stereo does not apply to flow pretraining: it uses monocular frames only")
    ids = opt.frame_ids
    if len(ids) < 2 or ids[0] != 0 or len(set(ids)) != len(ids):
        raise InputError(f"--frame_ids must be 0 followed by distinct source offsets, got {opt.frame_ids}")
    if not set(opt.scales) <= {0, 1, 2, 3} or not opt.scales:
        raise InputError(f"--scales must be a subset of 0 1 2 3, got {opt.scales}")
    if opt.frame_stride < 1:
        raise InputError(f"--frame_stride must be >= 1, got {opt.frame_stride}")


class FlowTrainer(Trainer):
    """Pretrains structure encoder + motion encoder + flow decoder; saves Monodepth2-layout weight folders."""

    def __init__(self, options):  # replaces Trainer.__init__, which builds the depth task
        self.opt = opt = options
        validate_flow_options(opt)
        self.setup_runtime()
        self.frame_ids = list(opt.frame_ids)
        self.source_ids = self.frame_ids[1:]
        # Auto-masking is opt-in here (--flow_automask): measured on the synthetic world, with it the network
        # first drifts to a global shift that helps some pixels while the mask hides the rest (EPE rises);
        # without it the same run learns the true flow. Occlusions are handled by the per-source minimum.
        self.loss_cfg = MinReprojectionConfig(avg_reprojection=opt.avg_reprojection, automask=opt.flow_automask,
                                              no_ssim=opt.no_ssim)

        self.build_data()  # first: a wrong data path fails before any weights are read
        self.models = self.build_models()
        if opt.load_weights_folder:
            self.load_model()
        self.setup_optimisation()
        self.setup_logging()
        sources = ", ".join(f"{d} (x{w:g}, {n} triplets)" for (d, w), n in zip(self.sources, self.source_sizes))
        self.log(f"Flow pretraining model named: {opt.model_name} | models and tensorboard files in {self.log_path}\n"
                 f"Training is using: {self.device} (bf16 autocast {'on' if self.amp else 'off'}, "
                 f"channels_last {'on' if self.channels_last else 'off'}, {self.dist.world_size} process(es))\n"
                 f"Data: {sources} | {len(self.train_loader) * opt.batch_size} examples per epoch per process"
                 + (f" | {len(self.eval_pairs)} ground-truth flow pairs" if self.eval_pairs else ""))

    # ------------------------------------------------------------------ set-up
    def build_models(self) -> dict[str, nn.Module]:
        opt = self.opt
        pretrained = opt.weights_init == "pretrained"
        models = {"encoder": networks.ResnetEncoder(opt.num_layers, pretrained),
                  "motion_encoder": MotionEncoder(opt.motion_num_layers, pretrained, opt.latent_dim)}
        models["flow"] = FlowDecoder(models["encoder"].num_ch_enc, opt.latent_dim, opt.bottleneck_channels,
                                     opt.scales, opt.flow_conditioning)
        # ResNet classifiers are kept for checkpoint compatibility but never used (DDP needs them frozen).
        for m in (models["encoder"], models["motion_encoder"].backbone):
            m.encoder.fc.requires_grad_(False)
        return models

    def build_data(self) -> None:
        opt = self.opt
        self.sources = parse_flow_sources(opt.data_path, opt.flow_data)
        datasets = []
        for i, (folder, _) in enumerate(self.sources):
            try:
                datasets.append(UncalibratedVideoDataset(
                    folder, opt.flow_split if i == 0 else None, opt.height, opt.width, tuple(self.frame_ids),
                    stride=opt.frame_stride, is_train=True))
            except VideoDatasetError as err:
                which = "--data_path" if i == 0 else "--flow_data"
                raise InputError(f"{which} {folder}: {err}") from None
        self.source_sizes = [len(d) for d in datasets]
        world = self.dist.world_size
        pin = self.device.type == "cuda"
        if len(datasets) == 1 and opt.flow_epoch_size is None:
            self.train_dataset, sampler = datasets[0], None
            num_examples = len(self.train_dataset) // world
        else:  # weighted mixing; every process draws its own share of the epoch
            total = opt.flow_epoch_size or sum(self.source_sizes)
            num_examples = total // world
            try:
                self.train_dataset, sampler = make_mixed_dataset(datasets, [w for _, w in self.sources],
                                                                 max(num_examples, 1))
            except ValueError as err:  # e.g. every weight 0
                raise InputError(f"--flow_data weights: {err}") from None
        if num_examples < opt.batch_size:
            raise InputError(f"the pretraining data has {num_examples} triplets per process, fewer than one batch "
                             f"(--batch_size {opt.batch_size}); add frames or lower --batch_size")
        self.train_loader = make_loader(self.train_dataset, opt.batch_size, True, opt.num_workers, self.dist,
                                        drop_last=True, pin_memory=pin, sampler=sampler)
        self.num_total_steps = len(self.train_loader) * opt.num_epochs
        self.eval_pairs = find_flow_pairs(opt.flow_eval_path, opt.flow_eval_split) if opt.flow_eval_path else []
        self.eval_cursor = 0

    # ------------------------------------------------------------------ training
    def process_batch(self, inputs):
        """Flow target->each source (same structure features, one latent per pair) and the flow loss."""
        # The networks see the colour-augmented frames; the loss compares the original ones (as Monodepth2).
        aug_sources = {f: inputs[("color_aug", f, 0)] for f in self.source_ids}
        with self.autocast():
            flows = predict_flows(self.nets["encoder"], self.nets["motion_encoder"], self.nets["flow"],
                                  inputs[("color_aug", 0, 0)], aug_sources)
        outputs = {k: v.float() for k, v in flows.items()}
        sources = {f: inputs[("color", f, 0)] for f in self.source_ids}
        loss, details = flow_photometric_loss(inputs[("color", 0, 0)], sources, outputs, self.opt.scales,
                                              self.opt.flow_smoothness, self.loss_cfg)
        losses = {"loss": loss}
        for key, value in details.items():
            if isinstance(key, str) and not key.startswith("identity_selection"):
                losses[key] = value
            else:
                outputs[key] = value
        return outputs, losses

    # ------------------------------------------------------------------ monitoring
    def val(self):
        """EPE / Fl-all on the next few ground-truth pairs (rank 0 only, through the unwrapped models)."""
        if not self.eval_pairs:
            return
        n = min(EVAL_PAIRS_PER_LOG, len(self.eval_pairs))
        pairs = [self.eval_pairs[(self.eval_cursor + i) % len(self.eval_pairs)] for i in range(n)]
        self.eval_cursor = (self.eval_cursor + n) % len(self.eval_pairs)
        self.set_eval()
        try:
            with self.autocast():
                metrics = evaluate_flow(self.models["encoder"], self.models["motion_encoder"], self.models["flow"],
                                        pairs, self.opt.height, self.opt.width, self.device)
        finally:
            self.set_train()
        writer = self.writers.get("val")
        if writer is not None:
            for name in ("epe", "fl_all", "zero_epe"):
                writer.add_scalar(f"flow/{name}", metrics[name], self.step)
        self.log(f"  flow ground truth ({n} pairs): EPE {metrics['epe']:.3f} px (zero flow {metrics['zero_epe']:.3f}) "
                 f"| Fl-all {metrics['fl_all']:.2f} %")

    def log_tb(self, mode, inputs, outputs, losses):
        writer = self.log_scalars(mode, losses)
        if writer is None:
            return
        s = min(self.opt.scales)
        for j in range(min(4, inputs[("color", 0, 0)].shape[0])):
            for f in self.frame_ids:
                writer.add_image(f"color_{f}_0/{j}", inputs[("color", f, 0)][j].float(), self.step)
            for f in self.source_ids:
                writer.add_image(f"color_pred_{f}_{s}/{j}", outputs[("color", f, s)][j].float(), self.step)
                writer.add_image(f"flow_{f}_{s}/{j}", flow_to_color(outputs[("flow", f, s)][j]), self.step)
            if f"identity_selection/{s}" in outputs:
                writer.add_image(f"automask_{s}/{j}", outputs[f"identity_selection/{s}"][j][None], self.step)

    # ------------------------------------------------------------------ checkpoints
    def encoder_meta(self) -> dict:
        """Pretraining never sees a stereo pair."""
        return dict(super().encoder_meta(), use_stereo=False)

    def load_model(self):
        """Resume: every network of this run must be in --load_weights_folder (adam.pth is optional)."""
        self.load_networks(MODEL_NAMES, "point --load_weights_folder at a weights folder written by pretrain_flow.py")
