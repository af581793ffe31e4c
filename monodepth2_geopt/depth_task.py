"""Monodepth2 depth training (M, S, MS) as a task of the one training loop (``trainer.Trainer``).

The networks (depth encoder + decoder, a pose network from ``POSE_MODELS``, the optional predictive mask), the
KITTI-layout data, the warp of every source into the target view and Monodepth2's objective
(``losses.depth_objective``). Differences from Monodepth2 that change numbers are deliberate fixes (README "What
we fixed"): ``grid_sample`` uses ``align_corners=True`` to match the pixel normalisation; with
``--pose_model_type posecnn --pose_model_input all`` every source uses its own predicted pose.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from monodepth2_geopt import checkpoint, geometry, intrinsics, networks
from monodepth2_geopt.datasets import DATASETS
from monodepth2_geopt.datasets.mono_dataset import KITTI_NORMALISED_K
from monodepth2_geopt.errors import InputError, Problems
from monodepth2_geopt.kitti_layout import parse_split_line
from monodepth2_geopt.losses import MinReprojectionConfig, depth_objective, ssi_disparity_loss
from monodepth2_geopt.metrics import training_depth_errors
from monodepth2_geopt.networks.resnet_encoder import ensure_imagenet_weights
from monodepth2_geopt.splits import readlines, resolve_split_dir
from monodepth2_geopt.trainer import Runtime, TaskData, Trainer
from monodepth2_geopt.visualize import disparity_image

# TensorBoard names of the training-time depth metrics (Monodepth2's).
DEPTH_METRIC_NAMES = {"abs_rel": "de/abs_rel", "sq_rel": "de/sq_rel", "rmse": "de/rms", "rmse_log": "de/log_rms",
                      "a1": "da/a1", "a2": "da/a2", "a3": "da/a3"}


def validate_options(opt) -> None:
    """Reject bad depth-training flag combinations with one clear message each."""
    if not opt.frame_ids or opt.frame_ids[0] != 0:
        raise InputError(f"--frame_ids must start with 0 (the target frame), got {opt.frame_ids}")
    if len(set(opt.frame_ids)) != len(opt.frame_ids):
        raise InputError(f"--frame_ids has duplicates: {opt.frame_ids}")
    if opt.frame_ids == [0] and not opt.use_stereo:
        raise InputError("--frame_ids 0 alone needs --use_stereo (S mode): there is no source frame to warp")
    if not opt.scales or not set(opt.scales) <= {0, 1, 2, 3}:
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
    if opt.geopt_pose and opt.pose_model_type != "separate_resnet":
        raise InputError("--geopt_pose needs --pose_model_type separate_resnet")
    learn = getattr(opt, "learn_intrinsics", False)
    if learn and opt.use_stereo:
        raise InputError("--learn_intrinsics is for monocular (M) training: a stereo pair needs known intrinsics and "
                         "baseline; drop --use_stereo")
    if opt.dataset == "video" and opt.use_stereo:
        raise InputError("--dataset video has no stereo pairs (frame folders of one camera): drop --use_stereo")
    if opt.dataset == "video" and not learn and opt.intrinsics is None:
        raise InputError("--dataset video frames have no calibration: pass --learn_intrinsics (learn them) or "
                         "--intrinsics FX FY CX CY (normalised, if you know them)")
    if getattr(opt, "square_pixels", False) and not learn:
        raise InputError("--square_pixels ties the learned fy to the learned fx: it needs --learn_intrinsics")
    if getattr(opt, "focal_relative_pose", False) and not learn:
        raise InputError("--focal_relative_pose reads the pose in units of the learned focal length: it needs "
                         "--learn_intrinsics")
    warmup = getattr(opt, "intrinsics_warmup", 0)
    if warmup < 0:
        raise InputError(f"--intrinsics_warmup must be >= 0 steps, got {warmup}")
    if warmup and not learn:
        raise InputError("--intrinsics_warmup holds the learned intrinsics at the initial guess: it needs "
                         "--learn_intrinsics")
    if learn and opt.pose_model_type != "separate_resnet":
        raise InputError("--learn_intrinsics needs --pose_model_type separate_resnet (the intrinsics head reads the "
                         "pose encoder's features of each pair)")
    weight = getattr(opt, "pseudo_label_weight", 0.0)
    if getattr(opt, "pseudo_label_path", None) and not (math.isfinite(weight) and weight >= 0):
        raise InputError(f"--pseudo_label_weight {weight}: must be a finite number >= 0, e.g. 0.1")
    if opt.intrinsics is not None:
        intrinsics.check_intrinsics(opt.intrinsics)


def split_file_lines(split: str, name: str) -> list[str]:
    path = resolve_split_dir(split) / f"{name}_files.txt"
    lines = [ln for ln in readlines(path) if ln.strip()]
    if not lines:
        raise InputError(f"split file {path} is empty: list frames as 'folder frame_index side' "
                         "(make one with `python make_split.py`)")
    return lines


# ---------------------------------------------------------------------------------------------------- pose models
@dataclasses.dataclass(frozen=True)
class PoseModel:
    """How one ``--pose_model_type`` is built and fed. ``build(encoder, num_layers, pretrained, num_frames)`` returns
    the networks it adds; ``inputs(nets, frames)`` turns a list of frames (or encoder features) into its input."""
    build: Callable[[nn.Module, int, bool, int], dict[str, nn.Module]]
    inputs: Callable[[dict, list], object]
    shares_encoder: bool = False  # poses from the depth encoder's features of every frame


def _separate_resnet(encoder, num_layers, pretrained, num_frames):
    pose_encoder = networks.ResnetEncoder(num_layers, pretrained, num_frames)
    # Monodepth2 hard-codes 2 predicted frames (kept: released pose.pth has 12 outputs); with
    # --pose_model_input all and more than 2 source frames it needs one pose per source.
    return {"pose_encoder": pose_encoder,
            "pose": networks.PoseDecoder(pose_encoder.num_ch_enc, 1, max(2, num_frames - 1))}


POSE_MODELS: dict[str, PoseModel] = {
    "separate_resnet": PoseModel(_separate_resnet,
                                 lambda nets, frames: [nets["pose_encoder"](torch.cat(frames, 1))]),
    "shared": PoseModel(lambda enc, n, p, k: {"pose": networks.PoseDecoder(enc.num_ch_enc, k)},
                        lambda nets, frames: frames, shares_encoder=True),
    "posecnn": PoseModel(lambda enc, n, p, k: {"pose": networks.PoseCNN(k)},
                         lambda nets, frames: torch.cat(frames, 1)),
}


class DepthTask:
    """Self-supervised depth from monocular sequences and/or stereo pairs (Godard et al., ICCV 2019)."""
    kind = "depth"
    num_scales_in_batch = 4  # the image pyramid every loss scale compares against

    def __init__(self, options):
        self.opt = opt = options
        self.frame_ids = list(opt.frame_ids) + (["s"] if opt.use_stereo else [])
        self.num_scales = len(opt.scales)
        self.num_input_frames = len(opt.frame_ids)
        self.num_pose_frames = 2 if opt.pose_model_input == "pairs" else self.num_input_frames
        self.use_pose_net = not (opt.use_stereo and opt.frame_ids == [0])
        self.pose_model = POSE_MODELS[opt.pose_model_type]
        self.learn_intrinsics = bool(getattr(opt, "learn_intrinsics", False))
        self.square_pixels = self.learn_intrinsics and bool(getattr(opt, "square_pixels", False))
        self.focal_relative_pose = self.learn_intrinsics and bool(getattr(opt, "focal_relative_pose", False))
        self.intrinsics_warmup = int(getattr(opt, "intrinsics_warmup", 0)) if self.learn_intrinsics else 0
        self.loss_cfg = MinReprojectionConfig(avg_reprojection=opt.avg_reprojection,
                                              automask=not opt.disable_automasking, no_ssim=opt.no_ssim)
        self.warmup_loss_cfg = dataclasses.replace(self.loss_cfg, automask=False)
        self.pseudo_label_weight = opt.pseudo_label_weight if getattr(opt, "pseudo_label_path", None) else 0.0
        self.rt: Runtime | None = None

    def validate_options(self) -> None:
        validate_options(self.opt)

    def derived_options(self) -> dict:
        return {"frame_ids": self.frame_ids}

    # ------------------------------------------------------------------ set-up
    def build_data(self, rt: Runtime) -> TaskData:
        """The data, after checking every precondition of the run (data folder, split lists, their images, the
        ImageNet weights): all that fail are reported together, before any long work."""
        self.rt = rt
        opt = self.opt
        problems, data = Problems(), None
        if opt.dataset != "video" and not Path(opt.data_path).expanduser().is_dir():
            problems.add(f"--data_path {opt.data_path} is not a folder (KITTI raw data in Monodepth2's layout, see "
                         "README 'KITTI data')")
            for name in ("train", "val"):
                with problems.check():
                    split_file_lines(opt.split, name)
        else:
            with problems.check():
                data = self.build_split_data()
                for dataset in (data.train_dataset, data.val_dataset):
                    if dataset is not None:  # items carry "source_aspect" (fy = fx x it, --square_pixels)
                        dataset.return_source_aspect = self.square_pixels
        if opt.weights_init == "pretrained":  # last: it may download
            with problems.check():
                ensure_imagenet_weights(opt.num_layers)
        problems.raise_if_any()
        return data

    def build_split_data(self) -> TaskData:
        opt, rt = self.opt, self.rt
        if opt.dataset == "video":
            return self.build_video_data()
        dataset_cls = DATASETS[opt.dataset]
        train_files = split_file_lines(opt.split, "train")
        val_files = split_file_lines(opt.split, "val")
        ext = ".png" if opt.png else ".jpg"
        common = dict(num_scales=self.num_scales_in_batch, img_ext=ext, intrinsics=opt.intrinsics,
                      stereo_baseline=opt.stereo_baseline, image_cache=opt.image_cache)
        train = dataset_cls(opt.data_path, train_files, opt.height, opt.width, self.frame_ids, is_train=True,
                            **common)
        # Ground truth for monitoring is read only for the validation batch, never on the training path.
        probe = dataset_cls(opt.data_path, val_files, opt.height, opt.width, self.frame_ids, **common)
        val = dataset_cls(opt.data_path, val_files, opt.height, opt.width, self.frame_ids,
                          load_depth=probe.check_depth(), **common)
        for name, dataset in (("train", train), ("val", val)):
            self.check_split_images(dataset, name, rt)
        train.load_color(*parse_split_line(train.filenames[0]), False)  # a corrupt image fails fast, named
        train.skip_bad_images = opt.skip_bad_images
        self.attach_pseudo_labels(train, val, resolve_split_dir(opt.split) / "train_files.txt", rt)
        return TaskData(train, val_dataset=val,
                        description=f"Using split: {opt.split} | {len(train)} training items and "
                                    f"{len(val)} validation items")

    def video_split_dir(self):
        """Split lists of --dataset video: --split when given, else those extract_frames.py wrote in --data_path."""
        default = self.opt.split == "eigen_zhou"
        if default and (Path(self.opt.data_path) / "train_files.txt").is_file():
            return Path(self.opt.data_path)
        return resolve_split_dir(self.opt.split)

    def build_video_data(self) -> TaskData:
        from monodepth2_geopt.datasets.video_depth_dataset import VideoDepthDataset
        opt = self.opt
        split_dir = self.video_split_dir()
        train_files = split_file_lines(split_dir, "train")
        k = tuple(opt.intrinsics) if opt.intrinsics is not None else KITTI_NORMALISED_K
        common = dict(intrinsics=k)
        train = VideoDepthDataset(opt.data_path, train_files, opt.height, opt.width, opt.frame_ids, is_train=True,
                                  **common)
        val = None
        if (split_dir / "val_files.txt").is_file():
            val = VideoDepthDataset(opt.data_path, split_file_lines(split_dir, "val"), opt.height, opt.width,
                                    opt.frame_ids, **common)
        self.attach_pseudo_labels(train, val, split_dir / "train_files.txt", self.rt)
        return TaskData(train, val_dataset=val,
                        description=f"Frame folders (--dataset video, split {split_dir}): {len(train)} training items "
                                    f"and {len(val) if val is not None else 0} validation items")

    def check_split_images(self, dataset, name: str, rt: Runtime) -> None:
        """Every image of every split line exists, before the first step (a missing frame would otherwise end a
        long run mid-epoch); ``--skip_missing`` drops such lines instead, with a count."""
        missing = dataset.missing_lines(progress=len(dataset) > 5000 and rt.dist.is_main and not self.opt.no_progress)
        if not missing:
            return
        where = resolve_split_dir(self.opt.split) / f"{name}_files.txt"
        line, path = missing[0]
        if not self.opt.skip_missing:
            raise InputError(f"{len(missing)} of {len(dataset)} lines of {where} need images that do not exist, e.g. "
                             f"line {line + 1} {dataset.filenames[line]!r}: {path} (check --data_path and --png, or "
                             "pass --skip_missing to drop those lines)")
        dataset.drop_lines(i for i, _ in missing)
        if not len(dataset):
            raise InputError(f"--skip_missing: none of the lines of {where} has all its images (e.g. {path})")
        if rt.dist.is_main:
            print(f"--skip_missing: dropped {len(missing)} lines of {where} whose images do not exist "
                  f"(e.g. {path}); {len(dataset)} remain", flush=True)

    def attach_pseudo_labels(self, train, val, where: Path, rt: Runtime) -> None:
        """--pseudo_label_path: every training item's target frame has a label (or, with --skip_missing, the
        items without one are dropped, counted), checked before the first step. The validation batches get
        labels only when all of theirs exist (then the logged validation loss includes the term)."""
        opt = self.opt
        if not opt.pseudo_label_path:
            return
        from monodepth2_geopt.pseudo_labels import PseudoLabelStore, missing_labels
        store = PseudoLabelStore(opt.pseudo_label_path)
        missing = missing_labels(store, train)
        if missing:
            line, path = missing[0]
            image = train.target_image(line)
            if not opt.skip_missing:
                raise InputError(f"{len(missing)} of {len(train)} training items of {where} have no pseudo-label, "
                                 f"e.g. {path} (of {image}); make them with `python make_pseudo_labels.py --teacher "
                                 f"... --data_path {opt.data_path} --out_dir {store.root}` (labels that exist are "
                                 "kept), or pass --skip_missing to drop those items")
            train.drop_lines(i for i, _ in missing)
            if not len(train):
                raise InputError(f"--skip_missing: no training item of {where} has a pseudo-label in {store.root} "
                                 f"(e.g. {path})")
            if rt.dist.is_main:
                print(f"--skip_missing: dropped {len(missing)} training items without a pseudo-label (e.g. {path}); "
                      f"{len(train)} remain", flush=True)
        train.pseudo_labels = store
        if val is not None and not missing_labels(store, val):
            val.pseudo_labels = store
        elif val is not None and rt.dist.is_main:
            print(f"pseudo-labels: not every validation item has one in {store.root}, so the validation loss is "
                  "the self-supervised loss alone", flush=True)
        if rt.dist.is_main:
            print(f"pseudo-labels: {store.root} (teacher {store.teacher}), weight {opt.pseudo_label_weight}, "
                  f"alignment {opt.pseudo_label_align}", flush=True)

    def build_models(self) -> dict[str, nn.Module]:
        opt = self.opt
        pretrained = opt.weights_init == "pretrained"
        models = {"encoder": networks.ResnetEncoder(opt.num_layers, pretrained)}
        models["depth"] = networks.DepthDecoder(models["encoder"].num_ch_enc, opt.scales)
        if opt.init_depth is not None:  # (a --load_weights_folder depth.pth replaces this later)
            models["depth"].init_output(geometry.depth_to_sigmoid(opt.init_depth, opt.min_depth, opt.max_depth))
        if self.use_pose_net:
            models.update(self.pose_model.build(models["encoder"], opt.num_layers, pretrained,
                                                self.num_pose_frames))
        if self.learn_intrinsics:
            init = tuple(opt.intrinsics) if opt.intrinsics is not None else KITTI_NORMALISED_K
            models["intrinsics"] = networks.IntrinsicsHead(models["pose_encoder"].num_ch_enc[-1], init)
        if opt.predictive_mask:
            models["predictive_mask"] = networks.DepthDecoder(models["encoder"].num_ch_enc, opt.scales,
                                                              num_output_channels=len(self.frame_ids) - 1)
        for m in models.values():  # ResNet's classifier is kept for checkpoint compatibility, never trained
            if isinstance(m, networks.ResnetEncoder):
                m.encoder.fc.requires_grad_(False)
        return models

    def init_weights(self, models: dict[str, nn.Module], log) -> None:
        """--geopt_weights into the encoder(s), then --load_weights_folder (Monodepth2's fine-tuning start)."""
        opt = self.opt
        if opt.geopt_weights:
            from monodepth2_geopt.geopt import load_geopt_encoder, load_geopt_pose_encoder
            n = load_geopt_encoder(models["encoder"], opt.geopt_weights)
            log(f"GeoPt: loaded {n} tensors into the depth encoder from {opt.geopt_weights}")
            if opt.geopt_pose:
                n = load_geopt_pose_encoder(models["pose_encoder"], opt.geopt_weights)
                log(f"GeoPt: loaded {n} tensors into the pose encoder from the motion encoder")
        if opt.load_weights_folder:
            names = []
            for name in opt.models_to_load:
                if name in models:
                    names.append(name)
                else:
                    log(f"  skipping {name}: this run has no such model")
            load_networks(models, opt.load_weights_folder, names, log,
                          "drop it from --models_to_load or point --load_weights_folder at a complete weights folder")

    def encoder_meta(self) -> dict:
        """The metadata Monodepth2 stores in encoder.pth."""
        meta = {"height": self.opt.height, "width": self.opt.width, "use_stereo": self.opt.use_stereo}
        if self.square_pixels:  # evaluate_intrinsics.py ties fy to fx as training did
            meta["square_pixels"] = True
        if self.focal_relative_pose:  # evaluate_pose.py reads the pose network's outputs as training did
            meta["focal_relative_pose"] = True
        return meta

    # ------------------------------------------------------------------ forward and objective
    def forward(self, nets: dict[str, nn.Module], inputs: dict, step: int) -> tuple[dict, dict]:
        outputs = self.predict(nets, inputs, step)
        self.generate_images_pred(inputs, outputs)
        losses = self.compute_losses(inputs, outputs, step)
        return outputs, losses

    def predict(self, nets: dict[str, nn.Module], inputs: dict, step: int | None = None) -> dict:
        """Disparities (and masks, poses) from the networks, in bf16 under --amp, returned in fp32. ``step``: the
        training step (None: after training, so the intrinsics head is past --intrinsics_warmup)."""
        opt = self.opt
        with self.rt.autocast():
            if self.pose_model.shares_encoder:
                b = inputs[("color_aug", 0, 0)].shape[0]
                all_aug = torch.cat([inputs[("color_aug", i, 0)] for i in self.frame_ids])
                all_features = [torch.split(f, b) for f in nets["encoder"](all_aug)]
                features = {k: [f[i] for f in all_features] for i, k in enumerate(self.frame_ids)}
            else:
                features = {0: nets["encoder"](inputs[("color_aug", 0, 0)])}
            outputs = nets["depth"](features[0])
            if opt.predictive_mask:
                mask_out = nets["predictive_mask"](features[0])
                outputs.update({("predictive_mask", "disp", s): v for (_, s), v in mask_out.items()})
            if self.use_pose_net:
                outputs.update(self.predict_poses(nets, inputs, features, step))
        return {k: v.float() for k, v in outputs.items()}

    def predict_poses(self, nets: dict[str, nn.Module], inputs: dict, features: dict, step: int | None = None) -> dict:
        """Relative camera poses target<->source; pairs are always fed in temporal order."""
        outputs = {}
        sources = [f for f in self.frame_ids[1:] if f != "s"]
        aspect = inputs["source_aspect"] if self.square_pixels else None  # --square_pixels: fy from fx
        initial = checkpoint.unwrap(nets["intrinsics"]).initial if self.focal_relative_pose else None
        held = step is not None and step < self.intrinsics_warmup  # --intrinsics_warmup

        def head(features_):  # held: run without a graph (no gradient, and DDP expects none), so the head's
            with torch.set_grad_enabled(torch.is_grad_enabled() and not held):  # weights stay at the guess
                return nets["intrinsics"](features_, aspect)
        if self.pose_model.shares_encoder:
            feats = features
        else:
            feats = {f: inputs[("color_aug", f, 0)] for f in self.frame_ids if f != "s"}
        if self.num_pose_frames == 2:
            for f_i in sources:
                pair = [feats[f_i], feats[0]] if f_i < 0 else [feats[0], feats[f_i]]
                pose_inputs = self.pose_model.inputs(nets, pair)
                if self.learn_intrinsics:  # per pair: the warp of this pair uses its own K
                    outputs[("intrinsics", f_i)] = head(pose_inputs[0][-1])
                axisangle, translation = nets["pose"](pose_inputs)
                if self.focal_relative_pose:
                    axisangle, translation = intrinsics.focal_relative_pose(
                        axisangle, translation, outputs[("intrinsics", f_i)], initial, self.square_pixels)
                outputs[("axisangle", 0, f_i)] = axisangle
                outputs[("translation", 0, f_i)] = translation
                outputs[("cam_T_cam", 0, f_i)] = geometry.transformation_from_parameters(
                    axisangle[:, 0].float(), translation[:, 0].float(), invert=(f_i < 0))
        else:
            pose_inputs = self.pose_model.inputs(nets, [feats[f] for f in [0] + sources])
            if self.learn_intrinsics:  # one K for the whole snippet, shared by its sources
                k = head(pose_inputs[0][-1])
                outputs.update({("intrinsics", f_i): k for f_i in sources})
            axisangle, translation = nets["pose"](pose_inputs)
            if self.focal_relative_pose:
                axisangle, translation = intrinsics.focal_relative_pose(axisangle, translation, k, initial,
                                                                        self.square_pixels)
            for i, f_i in enumerate(sources):
                outputs[("axisangle", 0, f_i)] = axisangle[:, i:i + 1]
                outputs[("translation", 0, f_i)] = translation[:, i:i + 1]
                outputs[("cam_T_cam", 0, f_i)] = geometry.transformation_from_parameters(
                    axisangle[:, i].float(), translation[:, i].float())
        return outputs

    def generate_images_pred(self, inputs: dict, outputs: dict) -> None:
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
                if self.learn_intrinsics:
                    K, inv_K = intrinsics.matrices(outputs[("intrinsics", frame_id)], opt.height, opt.width,
                                                   source_scale)
                else:
                    K, inv_K = inputs[("K", source_scale)], inputs[("inv_K", source_scale)]
                pix = geometry.rigid_pixels(depth, K, inv_K, T)
                outputs[("color", frame_id, scale)] = geometry.sample(inputs[("color", frame_id, source_scale)],
                                                                      pix, padding_mode="border")

    def active_loss_cfg(self, step: int) -> MinReprojectionConfig:
        """The reprojection-loss settings at ``step`` (auto-masking is off during --automask_warmup)."""
        return self.warmup_loss_cfg if step < self.opt.automask_warmup else self.loss_cfg

    def compute_losses(self, inputs: dict, outputs: dict, step: int) -> dict:
        opt = self.opt
        sources = self.frame_ids[1:]
        masks = None
        if opt.predictive_mask:
            masks = {s: outputs[("predictive_mask", "disp", s)] if opt.v1_multiscale else
                     F.interpolate(outputs[("predictive_mask", "disp", s)], [opt.height, opt.width],
                                   mode="bilinear", align_corners=False) for s in opt.scales}
        colors = {(f, s): inputs[("color", f, s)] for f in self.frame_ids for s in range(self.num_scales_in_batch)}
        loss, per_scale, selections = depth_objective(
            {(f, s): outputs[("color", f, s)] for f in sources for s in opt.scales}, colors,
            {s: outputs[("disp", s)] for s in opt.scales}, sources, opt.scales, self.active_loss_cfg(step),
            opt.disparity_smoothness, opt.v1_multiscale, masks)
        for s, selection in selections.items():
            outputs[f"identity_selection/{s}"] = selection
        logged = {}
        if self.pseudo_label_weight and "pseudo_disp" in inputs:
            pseudo = self.pseudo_label_loss(inputs["pseudo_disp"], outputs)
            loss = loss + self.pseudo_label_weight * pseudo
            logged["loss/pseudo_label"] = pseudo
        if self.learn_intrinsics:  # TensorBoard scalars: the batch mean of the per-pair predictions
            k = torch.cat([outputs[("intrinsics", f)] for f in sources]).detach()
            logged.update({f"intrinsics/{n}": k[:, i].mean() for i, n in enumerate(intrinsics.NAMES)})
        return {**per_scale, **logged, "loss": loss}

    def pseudo_label_loss(self, target: torch.Tensor, outputs: dict) -> torch.Tensor:
        """NimbleD's distillation term: the scale-and-shift-invariant L1 (``losses.ssi_disparity_loss``) between
        the teacher's disparity and every loss scale's disparity upsampled to the training resolution (as NimbleD,
        and as Monodepth2 upsamples for the photometric loss), averaged over the scales."""
        opt = self.opt
        terms = []
        for s in opt.scales:
            disp = outputs[("disp", s)]
            if disp.shape[-2:] != target.shape[-2:]:
                disp = F.interpolate(disp, list(target.shape[-2:]), mode="bilinear", align_corners=False)
            terms.append(ssi_disparity_loss(disp, target, align=opt.pseudo_label_align))
        return sum(terms) / len(terms)

    # ------------------------------------------------------------------ monitoring
    @torch.no_grad()
    def batch_metrics(self, inputs: dict, outputs: dict) -> dict:
        """Depth metrics on a batch with ground truth (Monodepth2's training monitor, ``training_depth_errors``)."""
        if "depth_gt" not in inputs:
            return {}
        errors = training_depth_errors(inputs["depth_gt"], outputs[("depth", 0, 0)])
        return {DEPTH_METRIC_NAMES[k]: float(v) for k, v in errors.items()}

    def validate_extra(self, trainer: Trainer) -> None:
        """Nothing beyond the validation batch's losses and metrics."""

    def log_images(self, writer, inputs: dict, outputs: dict, step: int) -> None:
        opt = self.opt
        for j in range(min(4, opt.batch_size, inputs[("color", 0, 0)].shape[0])):
            for s in opt.scales:
                for f in self.frame_ids:
                    writer.add_image(f"color_{f}_{s}/{j}", inputs[("color", f, s)][j].float(), step)
                    if s == 0 and f != 0:
                        writer.add_image(f"color_pred_{f}_{s}/{j}", outputs[("color", f, s)][j].float(), step)
                writer.add_image(f"disp_{s}/{j}", disparity_image(outputs[("disp", s)][j]), step)  # magma
                if opt.predictive_mask:
                    for f_idx, f in enumerate(self.frame_ids[1:]):
                        writer.add_image(f"predictive_mask_{f}_{s}/{j}",
                                         outputs[("predictive_mask", "disp", s)][j, f_idx][None].float(), step)
                elif f"identity_selection/{s}" in outputs:
                    writer.add_image(f"automask_{s}/{j}", outputs[f"identity_selection/{s}"][j][None], step)


def load_networks(models: dict[str, nn.Module], weights_folder: str, names, log, why: str) -> None:
    """Load ``<name>.pth`` of ``weights_folder`` into each named model, in order, each file checked first."""
    folder = checkpoint.require_weight_files(os.path.expanduser(weights_folder), (), why)
    log(f"loading model from folder {folder}")
    for name in names:
        checkpoint.require_weight_files(folder, [f"{name}.pth"], why)
        checkpoint.load_into(models[name], folder / f"{name}.pth", name)
        log(f"  loaded {name}")


def depth_trainer(options) -> Trainer:
    """The training loop with the depth task: what ``train.py`` runs."""
    return Trainer(options, DepthTask(options))
