"""Command-line options: every Monodepth2 option with its name and default, plus this fork's additions.

One option set for all scripts (train, evaluate, pretrain_flow). Each script's parser shows only the options it
uses (``SCRIPT_OPTIONS``); the others keep their defaults in the Namespace, so library code reads every option of
any script. The parsed Namespace is treated as read-only: derived values live on the objects that use them.
"""
from __future__ import annotations

import argparse
import os

from monodepth2_geopt import paths


# pretrain_flow.py / evaluate_flow.py defaults that differ from train.py's (Monodepth2's). From scratch: GeoPt's
# claim is pretraining *instead of* ImageNet, so starting from ImageNet would confound the comparison.
# The other values are the pretext recipe measured to learn motion (benchmarks/RESULTS.md, README).
FLOW_DEFAULTS = {"weights_init": "scratch", "learning_rate": 5e-4}

# What each script's parser shows: whole groups (by title) and single options (by dest); "-dest" leaves one out.
# A script given an option it does not show stops with "unrecognized arguments" instead of ignoring it.
_EVAL_SYSTEM = {"no_cuda", "num_workers", "num_threads", "load_weights_folder"}
SCRIPT_OPTIONS: dict[str, set[str]] = {
    "train": {"PATHS", "TRAINING options", "PSEUDO-LABEL options (distillation from a teacher, NimbleD)",
              "OPTIMIZATION options", "ABLATION options", "SYSTEM options", "LOADING options", "LOGGING options"},
    "pretrain_flow": {"PATHS", "OPTIMIZATION options", "SYSTEM options", "LOGGING options",
                      "FLOW PRETRAINING options (pretrain_flow.py)", "-flow_eval_max", "-json", "-out_dir",
                      "model_name", "num_layers", "height", "width", "scales", "frame_ids", "weights_init", "no_ssim",
                      "load_weights_folder", "resume", "overwrite"},
    "evaluate_depth": {"EVALUATION options", "data_path", "png", "height", "width", "dataset", "min_depth",
                       "max_depth", "overwrite"} | _EVAL_SYSTEM,
    "evaluate_pose": {"data_path", "png", "height", "width", "eval_split", "eval_out_dir"} | _EVAL_SYSTEM,
    "evaluate_flow": {"flow_eval_path", "flow_eval_split", "flow_eval_max", "json", "out_dir", "frame_stride", "height",
                      "width", "no_progress", "overwrite"} | (_EVAL_SYSTEM - {"num_workers"}),
    "prepare_cache": {"data_path", "split", "dataset", "png", "height", "width", "frame_ids", "use_stereo",
                      "image_cache", "no_progress", "overwrite"},
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default; flags (off unless given) and options without a default show none."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class _Group:
    """An argument group of ``MonodepthOptions`` that adds to the script's parser only the options it shows; the
    others go to a parser that is never given arguments, only asked for its defaults."""

    def __init__(self, options: "MonodepthOptions", title: str):
        self.options, self.title, self.group = options, title, None

    def add_argument(self, *flags, **kwargs):
        dest = kwargs.get("dest") or flags[0].lstrip("-").replace("-", "_")
        if not self.options.shows(self.title, dest):
            return self.options.hidden.add_argument(*flags, **kwargs)
        if self.group is None:
            self.group = self.options.parser.add_argument_group(self.title)
        return self.group.add_argument(*flags, **kwargs)


class MonodepthOptions:
    def __init__(self, description: str = "Monodepth2-GeoPt options", task: str = "depth", script: str | None = None):
        """``task``: "depth" (train.py and the evaluation scripts: Monodepth2's defaults) or "flow"
        (pretrain_flow.py, evaluate_flow.py: ``FLOW_DEFAULTS`` replace some of them). ``script``: a key of
        ``SCRIPT_OPTIONS`` (its parser shows only that script's options); None shows every option."""
        if task not in ("depth", "flow"):
            raise ValueError(f"task must be 'depth' or 'flow', got {task!r}")
        if script is not None and script not in SCRIPT_OPTIONS:
            raise ValueError(f"script must be one of {sorted(SCRIPT_OPTIONS)} or None, got {script!r}")
        self.shown = SCRIPT_OPTIONS.get(script)
        p = self.parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
        self.hidden = argparse.ArgumentParser(add_help=False)

        g = self._group("PATHS")
        g.add_argument("--data_path", type=str, default=str(paths.default_data_path()),
                       help="path to the training data; by default kitti_data in $M2G_HOME, else in the clone, else "
                            "in the working directory (monodepth2_geopt/paths.py)")
        g.add_argument("--log_dir", type=str, default=os.path.join(os.path.expanduser("~"), "tmp"),
                       help="log directory; the run goes in <log_dir>/<model_name>")

        g = self._group("TRAINING options")
        g.add_argument("--model_name", type=str, default="mdp", help="the name of the folder to save the model in")
        g.add_argument("--split", type=str, default="eigen_zhou",
                       help="a split name under splits/ (eigen_zhou, eigen_full, odom, benchmark, or your own) "
                            "or a path to a folder holding train_files.txt and val_files.txt")
        g.add_argument("--num_layers", type=int, default=18, choices=[18, 34, 50, 101, 152],
                       help="number of resnet layers")
        g.add_argument("--dataset", type=str, default="kitti", choices=["kitti", "kitti_odom", "kitti_depth", "video"],
                       help="dataset to train on; video: folders of frames from extract_frames.py (no calibration: "
                            "with --learn_intrinsics, or --intrinsics when known), split lists from --split or, "
                            "with the default --split, the train_files.txt / val_files.txt in --data_path")
        g.add_argument("--png", action="store_true", help="if set, trains from raw KITTI png files (instead of jpgs)")
        g.add_argument("--height", type=int, default=192, help="input image height (multiple of 32)")
        g.add_argument("--width", type=int, default=640, help="input image width (multiple of 32)")
        g.add_argument("--disparity_smoothness", type=float, default=1e-3, help="disparity smoothness weight")
        g.add_argument("--scales", nargs="+", type=int, default=[0, 1, 2, 3], help="scales used in the loss")
        g.add_argument("--min_depth", type=float, default=0.1, help="minimum depth")
        g.add_argument("--max_depth", type=float, default=100.0, help="maximum depth")
        g.add_argument("--init_depth", type=float, default=None,
                       help="depth (training units, like --min_depth) the untrained disparity heads start at; "
                            "default: Monodepth2's zero bias, about 2 x --min_depth = 0.2 (1 m after x5.4). "
                            "A typical scene depth (e.g. 2, about 11 m) helps runs whose decoder starts from "
                            "scratch (see README)")
        g.add_argument("--use_stereo", action="store_true", help="if set, uses stereo pair for training")
        g.add_argument("--frame_ids", nargs="+", type=int, default=[0, -1, 1], help="frames to load (first must be 0)")
        g.add_argument("--intrinsics", nargs=4, type=float, default=None, metavar=("FX", "FY", "CX", "CY"),
                       help="normalised intrinsics of your own data (fx/width, fy/height, cx/width, cy/height); "
                            "default: Monodepth2's KITTI values 0.58 1.92 0.5 0.5")
        g.add_argument("--learn_intrinsics", action="store_true",
                       help="M training with no calibration (Depth from Video in the Wild): the pose network also "
                            "predicts the normalised intrinsics of each frame pair, used for that pair's warp; the "
                            "dataset's K is ignored and --intrinsics (default KITTI's) is the initial guess. "
                            "Saved as intrinsics.pth; print them per sequence with evaluate_intrinsics.py")
        g.add_argument("--square_pixels", action="store_true",
                       help="with --learn_intrinsics: the camera's pixels are square (nearly every camera and video), "
                            "so one focal length is learned and fy follows it (fy/H = fx/W x the width/height of the "
                            "source image region the input shows). A free fy is observable only when the camera "
                            "pitches or rolls; fx when it yaws. Not for stretched pixels (anamorphic video, frames "
                            "resized without keeping their aspect)")
        g.add_argument("--focal_relative_pose", action="store_true",
                       help="with --learn_intrinsics: the pose network's pitch, yaw and lateral translation are read "
                            "in units of the learned focal length (x initial / learned), so the first-order image "
                            "motion does not depend on the focal length and only what does (rotation's "
                            "second-order flow) trains it (experimental, issue 14)")
        g.add_argument("--intrinsics_warmup", type=int, default=0,
                       help="with --learn_intrinsics: steps for which the intrinsics stay at the initial guess (the "
                            "head gets no gradient) while depth and pose learn the scene; a focal length learned "
                            "from an untrained depth network first drifts away from the truth (issue 14)")
        g.add_argument("--image_cache", type=str, default=None,
                       help="folder of pre-resized uint8 frames written by prepare_cache.py (workers then skip "
                            "JPEG decoding and resizing)")
        g.add_argument("--stereo_baseline", type=float, default=0.1,
                       help="stereo baseline used for the 's' frame in training units (Monodepth2: 0.1, i.e. "
                            "KITTI's 0.54 m / 5.4)")

        g = self._group("PSEUDO-LABEL options (distillation from a teacher, NimbleD)")
        g.add_argument("--pseudo_label_path", type=str, default=None,
                       help="folder of teacher disparities written by make_pseudo_labels.py (it mirrors the image "
                            "tree under --data_path); adds --pseudo_label_weight x a scale-and-shift-invariant L1 "
                            "between each scale's disparity and the target frame's label (M, S, MS, "
                            "--learn_intrinsics). Every training item needs a label (checked before the first step; "
                            "--skip_missing drops the others)")
        g.add_argument("--pseudo_label_weight", type=float, default=0.1,
                       help="weight of the pseudo-label loss against the self-supervised one (NimbleD's lambda 0.9 "
                            "is 0.1 / 0.9 = 0.11 in this form); used only with --pseudo_label_path")
        g.add_argument("--pseudo_label_align", type=str, default="median", choices=["median", "lsq"],
                       help="how the loss removes scale and shift per image: median (each map minus its median, "
                            "over its mean absolute deviation: NimbleD / MiDaS) or lsq (least-squares scale and shift "
                            "of the prediction; also forgives a flipped sign)")

        g = self._group("OPTIMIZATION options")
        g.add_argument("--batch_size", type=int, default=12, help="batch size")
        g.add_argument("--learning_rate", type=float, default=1e-4, help="learning rate")
        g.add_argument("--num_epochs", type=int, default=20, help="number of epochs")
        g.add_argument("--scheduler_step_size", type=int, default=15,
                       help="epochs at the initial learning rate before it is multiplied by 0.1")
        g.add_argument("--seed", type=int, default=None, help="random seed (default: not seeded)")
        g.add_argument("--skip_missing", action="store_true",
                       help="drop split lines whose images do not exist (counted) instead of refusing to start; "
                            "every line is checked before the first step either way")
        g.add_argument("--skip_bad_images", action="store_true",
                       help="an image that cannot be read during training is reported by path and its item "
                            "replaced by the next one, instead of ending the run")
        g.add_argument("--max_nonfinite_steps", type=int, default=25,
                       help="a step whose loss or gradient is NaN/inf is skipped (weights and Adam untouched); this "
                            "many in a row stop the run with an error")

        g = self._group("ABLATION options")
        g.add_argument("--v1_multiscale", action="store_true", help="if set, uses monodepth v1 multiscale")
        g.add_argument("--avg_reprojection", action="store_true", help="if set, uses average reprojection loss")
        g.add_argument("--disable_automasking", action="store_true", help="if set, doesn't do auto-masking")
        g.add_argument("--automask_warmup", type=int, default=0,
                       help="optimisation steps at the start with auto-masking off (0: on from the first step, as in "
                            "Monodepth2). From scratch in M mode, auto-masking from step 0 can trap the pose network "
                            "in a sideways motion; a warm-up of ~100 steps lets it find the forward motion first")
        g.add_argument("--predictive_mask", action="store_true",
                       help="if set, uses a predictive masking scheme as in Zhou et al (needs --disable_automasking)")
        g.add_argument("--no_ssim", action="store_true", help="if set, disables ssim in the loss")
        g.add_argument("--weights_init", type=str, default="pretrained", choices=["pretrained", "scratch"],
                       help="pretrained (torchvision's ImageNet weights, downloaded once into the torch cache) or "
                            "scratch; pretrain_flow.py defaults to scratch (GeoPt replaces ImageNet pretraining)")
        g.add_argument("--pose_model_input", type=str, default="pairs", choices=["pairs", "all"],
                       help="how many images the pose network gets")
        g.add_argument("--pose_model_type", type=str, default="separate_resnet",
                       choices=["posecnn", "separate_resnet", "shared"], help="normal or shared")

        g = self._group("SYSTEM options")
        g.add_argument("--no_cuda", action="store_true", help="if set disables CUDA")
        g.add_argument("--num_workers", type=int, default=12, help="number of dataloader workers")
        g.add_argument("--amp", type=str, default="auto", choices=["auto", "bf16", "off"],
                       help="bf16 autocast for the networks (geometry and losses stay fp32): auto = on for CUDA, "
                            "off on the CPU; off = Monodepth2's fp32")
        g.add_argument("--channels_last", type=str, default="auto", choices=["auto", "on", "off"],
                       help="channels_last memory format: auto = on for CUDA")
        g.add_argument("--compile", action="store_true", help="torch.compile the networks")
        g.add_argument("--num_threads", type=int, default=None,
                       help="PyTorch CPU threads (default on the CPU: the free cores, i.e. the cores this process "
                            "may use minus the loader workers and other processes' load, at least 1; kept as it is "
                            "when OMP_NUM_THREADS is set or on CUDA)")

        g = self._group("LOADING options")
        g.add_argument("--load_weights_folder", type=str, help="name of model to load")
        g.add_argument("--models_to_load", nargs="+", type=str, default=["encoder", "depth", "pose_encoder", "pose"],
                       help="models to load")
        g.add_argument("--geopt_weights", type=str, default=None,
                       help="Geometric Pretraining weights (a weights folder from pretrain_flow.py or its "
                            "encoder.pth) loaded into the depth encoder before training")
        g.add_argument("--geopt_pose", action="store_true",
                       help="also initialise the pose encoder from the pretrained motion encoder")
        g.add_argument("--resume", type=str, default=None,
                       help="continue an interrupted run exactly where it stopped (weights, Adam, schedule, epoch, "
                            "step, RNG states, data order): 'last' (this --model_name's latest checkpoint), a run "
                            "folder <log_dir>/<model_name>, or a models/last or models/weights_N folder")
        g.add_argument("--overwrite", action="store_true",
                       help="allow replacing existing outputs (a run folder with checkpoints, a split, ground "
                            "truth, a cache, a synthetic world, predictions); without it such commands refuse")

        g = self._group("LOGGING options")
        g.add_argument("--log_frequency", type=int, default=250, help="number of batches between each tensorboard log")
        g.add_argument("--save_frequency", type=int, default=1, help="number of epochs between each save")
        g.add_argument("--save_every_steps", type=int, default=1000,
                       help="also write models/last (everything --resume needs) every this many steps, and on "
                            "Ctrl-C / SIGTERM; 0: only at the end of each epoch")
        g.add_argument("--no_progress", action="store_true", help="disable the progress bar")
        g.add_argument("--keep_last", type=int, default=0,
                       help="keep only the newest N models/weights_<epoch> folders (each holds an adam.pth, about "
                            "215 MB with ResNet-18); 0 keeps all, as Monodepth2. models/last and the newest "
                            "folder are never deleted")

        g = self._group("EVALUATION options")
        g.add_argument("--eval_stereo", action="store_true", help="if set evaluates in stereo mode")
        g.add_argument("--eval_mono", action="store_true", help="if set evaluates in mono mode")
        g.add_argument("--disable_median_scaling", action="store_true", help="if set disables median scaling")
        g.add_argument("--pred_depth_scale_factor", type=float, default=1,
                       help="if set multiplies predictions by this number")
        g.add_argument("--ext_disp_to_eval", type=str, help="optional path to a .npy disparities file to evaluate")
        g.add_argument("--allow_pickle", action="store_true",
                       help="read a gt_depths.npz in Monodepth2's pickled format; unpickling runs any code the file "
                            "holds, so only for files you made or trust (this project writes them without pickle)")
        g.add_argument("--eval_split", type=str, default="eigen",
                       help="eigen, eigen_benchmark, benchmark, odom_9, odom_10, or a split folder path")
        g.add_argument("--save_pred_disps", action="store_true", help="if set saves predicted disparities")
        g.add_argument("--no_eval", action="store_true", help="if set disables evaluation")
        g.add_argument("--eval_eigen_to_benchmark", action="store_true",
                       help="if set assume we are loading eigen results from npy but we want to evaluate "
                            "using the new benchmark")
        g.add_argument("--eval_out_dir", type=str, help="if set will output the disparities to this folder")
        g.add_argument("--post_process", action="store_true",
                       help="if set will perform the flipping post processing from the original monodepth paper")
        g.add_argument("--align", type=str, default="median", choices=["median", "lsqr"],
                       help="mono alignment: per-image median scaling (Monodepth2) or least-squares scale and "
                            "shift in disparity (NimbleD's eigen_benchmark protocol)")

        g = self._group("FLOW PRETRAINING options (pretrain_flow.py)")
        g.add_argument("--latent_dim", type=int, default=128, help="size of the latent motion vector")
        g.add_argument("--bottleneck_channels", type=int, default=32,
                       help="channels of the 1x1 bottleneck on the deepest structure features (0: none)")
        g.add_argument("--motion_encoder", type=str, default="corr", choices=["corr", "resnet"],
                       help="motion encoder: corr (siamese features and a local correlation volume) or resnet (a "
                            "ResNet on the stacked frames, like Monodepth2's pose encoder; needed for --geopt_pose)")
        g.add_argument("--motion_num_layers", type=int, default=18, choices=[18, 34, 50],
                       help="resnet depth of the motion encoder")
        g.add_argument("--frame_stride", type=int, default=1, help="frame stride of pretraining triplets")
        g.add_argument("--flow_smoothness", type=float, default=1e-2, help="edge-aware flow smoothness weight")
        g.add_argument("--flow_conditioning", type=str, default="basis", choices=["concat", "film", "basis"],
                       help="how the latent motion vector enters the flow decoder: basis (flow = sum of basis fields "
                            "decoded from the structure, weighted by coefficients of the latent), film "
                            "(feature-wise affine) or concat (a latent-dependent bias)")
        g.add_argument("--flow_loss_resolution", type=str, default="pyramid", choices=["pyramid", "full"],
                       help="pyramid: each scale's flow is compared at that scale's resolution (a gradient for "
                            "motions of many pixels); full: every scale upsampled to full resolution (Monodepth2)")
        g.add_argument("--flow_basis", type=int, default=8,
                       help="with --flow_conditioning basis: number of learnt basis flow fields")
        g.add_argument("--flow_fixed_basis", type=str, default="on", choices=["on", "off"],
                       help="with --flow_conditioning basis: add the 8 analytic fields of planar / rotational motion "
                            "(and start the learnt fields at zero)")
        g.add_argument("--motion_pool_grid", nargs=2, type=int, default=[2, 4], metavar=("ROWS", "COLS"),
                       help="motion encoder: average-pool its deepest features to this grid of cells before the MLP "
                            "(0 0: one global average)")
        g.add_argument("--flow_data", nargs="+", default=None, metavar="DIR[:WEIGHT]",
                       help="extra pretraining sources mixed with --data_path, each DIR or DIR:WEIGHT")
        g.add_argument("--flow_epoch_size", type=int, default=None,
                       help="examples per pretraining epoch when sources are mixed (default: their total)")
        g.add_argument("--flow_automask", action="store_true",
                       help="use Monodepth2's auto-masking in the flow loss (off by default: a free flow can "
                            "represent static pixels itself, and auto-masking rewards a spurious global shift "
                            "early in training; the per-pixel minimum over the sources is always used)")
        g.add_argument("--flow_min_reprojection", action="store_true",
                       help="per-pixel minimum over the sources in the flow loss (Monodepth2's occlusion handling); "
                            "off by default: under the minimum the flow towards one source may be wrong for free, "
                            "and the motion latent is then never needed")
        g.add_argument("--flow_control", type=str, default="none", choices=["none", "zero_latent", "shuffled_sources"],
                       help="negative controls for experiments: zero_latent replaces the motion latent by zeros (an "
                            "average-flow predictor); shuffled_sources pairs each target with the source frames of "
                            "another triplet of the batch (no consistent motion)")
        g.add_argument("--flow_split", type=str, default=None,
                       help="split file ('<folder> <frame_index> [side]' lines) selecting the --data_path frames "
                            "to pretrain on (default: <data_path>/train_files.txt as extract_frames.py writes it, "
                            "else every frame with neighbours)")
        g.add_argument("--flow_val_split", type=str, default=None,
                       help="split file of held-out frames for the validation loss and the GeoPt diagnostics, its "
                            "folders under --data_path or else beside the split file (extract_frames.py's layout); "
                            "default: val_files.txt beside the training list")
        g.add_argument("--flow_include_test_drives", action="store_true",
                       help="also pretrain on frames of the KITTI Eigen and Eigen-benchmark test drives (excluded by "
                            "default: pretraining on them leaks the test set into KITTI depth results)")
        g.add_argument("--flow_eval_path", type=str, default=None,
                       help="folder with KITTI flow PNG ground truth (<drive>/flow/image_02/*.png, flow t -> t+1, "
                            "or KITTI 2015 flow_occ/): EPE and Fl-all are logged at log steps and reported by "
                            "evaluate_flow.py")
        g.add_argument("--flow_eval_max", type=int, default=None,
                       help="evaluate_flow.py: at most this many images, evenly spaced (TV-L1 references take "
                            "about a second each on a CPU)")
        g.add_argument("--json", type=str, default=None,
                       help="evaluate_flow.py: also write the diagnostics to this JSON file")
        g.add_argument("--out_dir", type=str, default=None,
                       help="evaluate_flow.py: also write each evaluated pair's predicted flow t -> t+1 here, as a "
                            "colour-wheel PNG and a Middlebury .flo (<frame>_flow.png/.flo, at the model's size)")
        g.add_argument("--flow_eval_split", type=str, default=None,
                       help="split file of '<drive> <frame> [l|r]' lines restricting --flow_eval_path "
                            "(default: every ground-truth file found)")

        p.set_defaults(**vars(self.hidden.parse_args([])))  # the options this script does not show
        if task == "flow":
            p.set_defaults(**FLOW_DEFAULTS)

    def shows(self, title: str, dest: str) -> bool:
        """Whether this script's parser shows option ``dest`` of group ``title``."""
        if self.shown is None:
            return True
        return (title in self.shown or dest in self.shown) and f"-{dest}" not in self.shown

    def _group(self, title: str) -> _Group:
        return _Group(self, title)

    def parse(self, args=None) -> argparse.Namespace:
        return self.parser.parse_args(args)
