"""Pseudo-label distillation (--pseudo_label_path, issue 14 part 2) on the synthetic world, whose depth is exact.

    python benchmarks/bench_pseudo_labels.py --steps 100 --seeds 0 1 2
    python benchmarks/bench_pseudo_labels.py --steps 400 --conditions none perfect   # a longer budget

Four M conditions, each trained from scratch with the same seed, data and step budget (128x64, batch 4, ResNet-18,
lr 2e-4, --automask_warmup 30% of the steps), 3 seeds each:

  (a) none:    no pseudo-labels (the control);
  (b) noisy:   the world's exact disparity (1 / depth, sky 0) x per-pixel log-normal noise (sd 0.15), then a wrong
               global scale and shift (x 3, + 0.5): an imperfect teacher whose labels are right only up to noise,
               scale and shift;
  (c) model:   a weaker model of this project as the teacher: one M run of --teacher_steps steps (its own seed),
               labels written by make_pseudo_labels' package code (pseudo_labels.make_pseudo_labels);
  (d) perfect: the exact disparity.

--pseudo_label_weight 0.1 (the default), median/MAD alignment (the default). Evaluation on the held-out drives
(the world's test split, 2 drives never trained on): abs_rel and delta < 1.25 with per-image median scaling (the
mono protocol), and with --align lsqr (scale and shift in disparity: the invariance the loss has). The teachers'
own held-out accuracy is measured the same way (labels as --ext_disp_to_eval). --seen_frames also evaluates
every run on 50 frames it was trained on (target frames of the train split, spread over its drives), where the
perfect teacher's labels were the student's targets: it separates how closely the student fits its teacher from
how well that fit carries to new drives (the held-out number mixes both). Runs are cached in
benchmarks/measured/pseudo_labels.json (a killed benchmark resumes), and the table goes to RESULTS.md whatever it
shows. CPU: OMP_NUM_THREADS=1, one training at a time.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import common
import numpy as np
import torch

from monodepth2_geopt import pseudo_labels as pl
from monodepth2_geopt.evaluation import evaluate
from monodepth2_geopt.kitti_layout import frame_path, parse_split_line
from monodepth2_geopt.options import MonodepthOptions
from monodepth2_geopt.splits import readlines
from monodepth2_geopt.tools.experiments import make_trainer, prepare_synthetic, train_steps

CACHE = common.ROOT / "benchmarks" / "measured" / "pseudo_labels.json"
SECTION = "Pseudo-label distillation on the synthetic world (issue 14, part 2)"
WIDTH, HEIGHT = 128, 64
NOISE_SD, WRONG_SCALE, WRONG_SHIFT = 0.15, 3.0, 0.5
CONDITIONS = ("none", "noisy", "model", "perfect")
REACH_MARGIN = 0.05  # "reaches the teacher": held-out abs_rel (lsqr) within this of the teacher's


def exact_disparity(data: Path, line: str) -> np.ndarray:
    """1 / depth of a split line's frame from the world's exact .npy depth (sky, depth 0, is disparity 0)."""
    folder, index, side = parse_split_line(line)
    depth = np.load(data / folder / "depth" / f"image_0{2 if side in ('l', None) else 3}" / f"{index:010d}.npy")
    return np.where(depth > 0, 1.0 / np.maximum(depth, 1e-6), 0.0).astype(np.float32)


def noisy_disparity(disp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (WRONG_SCALE * disp * np.exp(NOISE_SD * rng.standard_normal(disp.shape)) + WRONG_SHIFT).astype(np.float32)


def image_of(data: Path, line: str) -> str:
    folder, index, side = parse_split_line(line)
    return frame_path(data, folder, index, side, ".png")


def write_synthetic_labels(data: Path, split: Path, out: Path, kind: str) -> Path:
    """Labels (b) or (d) for the target frames of the train and val lines, in make_pseudo_labels.py's layout."""
    if (out / pl.MANIFEST_NAME).is_file():
        return out
    rng = np.random.default_rng(1234)
    for name in ("train", "val"):
        for line in readlines(split / f"{name}_files.txt"):
            disp = exact_disparity(data, line)
            if kind == "noisy":
                disp = noisy_disparity(disp, rng)
            pl.write_label(pl.label_path(out, data, image_of(data, line), "png"), disp, "png")
    (out / pl.MANIFEST_NAME).write_text(f'{{"teacher": "synthetic {kind}", "format": "png"}}\n')
    return out


def trainer_for(data, split, logs, name, seed, steps, labels=None, weight=0.1):
    torch.manual_seed(seed)
    extra = ["--pseudo_label_path", labels, "--pseudo_label_weight", weight] if labels else []
    return make_trainer(["--data_path", data, "--png", "--split", split, "--height", HEIGHT, "--width", WIDTH,
                         "--batch_size", 4, "--num_workers", 0, "--weights_init", "scratch", "--no_progress",
                         "--log_dir", logs, "--model_name", name, "--seed", seed, "--learning_rate", "2e-4",
                         "--no_cuda", "--automask_warmup", int(0.3 * steps), *extra])


SEEN_FRAMES = 50


def seen_split(data: Path, split: Path) -> Path:
    """A split whose test lines are SEEN_FRAMES target frames of the train split (evenly spread), with their GT."""
    from monodepth2_geopt.gt_depth import export_gt_depths
    out = Path(data) / "seen_splits"
    if not (out / "gt_depths.npz").is_file():
        lines = [ln for ln in readlines(Path(split) / "train_files.txt") if ln.strip()]
        n = min(SEEN_FRAMES, len(lines))
        picks = [lines[round(i * (len(lines) - 1) / max(n - 1, 1))] for i in range(n)]
        out.mkdir(parents=True, exist_ok=True)
        (out / "test_files.txt").write_text("\n".join(picks) + "\n")
        export_gt_depths(data, out, "depth_png", overwrite=True)
    return out


def held_out(data, split, weights=None, disps=None) -> dict:
    """abs_rel and a1 on the test lines of ``split`` (the held-out drives), median-scaled and lsqr-aligned."""
    out = {}
    for align in ("median", "lsqr"):
        args = ["--eval_split", split, "--data_path", data, "--png", "--eval_mono", "--align", align,
                "--num_workers", "0", "--no_cuda"]
        args += ["--ext_disp_to_eval", disps] if disps is not None else ["--load_weights_folder", weights]
        r = evaluate(MonodepthOptions().parse([str(a) for a in args]), log=lambda *a, **k: None)
        out[align] = {"abs_rel": r["abs_rel"], "a1": r["a1"]}
    return out


def teacher_metrics(data, split, tmp: Path, kind: str) -> dict:
    """The synthetic teachers' own held-out accuracy (their labels of the test frames as predictions)."""
    rng = np.random.default_rng(99)
    lines = [ln for ln in readlines(split / "test_files.txt") if ln.strip()]
    disps = np.stack([noisy_disparity(exact_disparity(data, ln), rng) if kind == "noisy" else exact_disparity(data, ln)
                      for ln in lines])
    path = tmp / f"{kind}_test_disps.npy"
    np.save(path, np.maximum(disps, 1e-6))  # disparity 0 (sky) -> far, where the ground truth has no value anyway
    return held_out(data, split, disps=path)


def run(world, logs, labels, seed, steps, condition, weight=0.1, seen=False):
    data, split = world
    trainer = trainer_for(data, split, logs, f"{condition}_{seed}", seed, steps,
                          labels.get(condition), weight)
    stats = train_steps(trainer, steps)
    out = {"metrics": held_out(data, split, weights=stats["weights"]), "seconds": stats["seconds"],
           "last_loss": stats["last_loss"], "machine": common.machine()}
    if seen:
        out["seen"] = held_out(data, seen_split(data, split), weights=stats["weights"])
    shutil.rmtree(Path(logs) / f"{condition}_{seed}")  # checkpoints are ~0.3 GB each
    print(condition, seed, out, flush=True)
    return out


SIZES_SECTION = "Frame and pseudo-label sizes, 854x480 video (issue 14, part 3)"


def file_sizes(paths) -> tuple[int, float]:
    sizes = [Path(p).stat().st_size for p in paths]
    return len(sizes), float(np.mean(sizes))


def sizes(video: str, work: Path, world, teacher_steps: int, fps: float) -> str:
    """Per-file sizes of frames (extract_frames.py at 854x480, --fps) and of their labels, and per-frame CPU costs."""
    import time

    from monodepth2_geopt.kitti_layout import pil_loader
    from monodepth2_geopt.tools.synthetic import generate_dataset
    from monodepth2_geopt.tools.video import ExtractOptions, extract_videos
    frames = work / "frames"
    if not frames.is_dir():
        extract_videos(video, frames, ExtractOptions(fps=fps, width=854, height=480), progress=False)
    images = pl.folder_images(frames)
    n_frames, jpg = file_sizes(images)
    size = pil_loader(images[0]).size
    t0 = time.perf_counter()
    for image in images[:20]:
        np.asarray(pil_loader(image))
    decode_ms = 1000 * (time.perf_counter() - t0) / min(20, len(images))
    # a teacher of this project: M, teacher_steps steps on the synthetic world at 128x64 (its maps are smooth:
    # a lower bound of what a sharp teacher's labels take)
    data, split = world
    trainer = trainer_for(data, split, work / "runs", "size_teacher", 7, teacher_steps)
    weights = train_steps(trainer, teacher_steps)["weights"]
    rows = []
    for fmt in ("png", "npy"):
        out = work / f"labels_{fmt}"
        pl.make_pseudo_labels(pl.load_teacher(str(weights)), images, frames, out, fmt, overwrite=True,
                              progress=False, log=lambda *a: None)
        n, mean = file_sizes(out.rglob(f"*.{fmt}"))
        rows.append([f"label, {fmt}, this project's 128x64 model (smooth, upsampled)", n, f"{mean / 1024:.1f}",
                     f"{mean * 3600 * fps / 1e9:.2f}"])
    # the cost per frame of make_pseudo_labels.py with a 640x192 ResNet-18 (untrained: the same arithmetic)
    from monodepth2_geopt import checkpoint
    from monodepth2_geopt.networks import DepthDecoder, ResnetEncoder
    encoder = ResnetEncoder(18, False)
    big = checkpoint.save_weights_folder(work / "timing_weights", {"encoder": encoder,
                                                                   "depth": DepthDecoder(encoder.num_ch_enc)},
                                         encoder_meta={"height": 192, "width": 640, "use_stereo": False})
    per_image_s = {}
    for fmt in ("png", "npy"):
        t0 = time.perf_counter()
        pl.make_pseudo_labels(pl.load_teacher(str(big)), images[:20], frames, work / f"timing_{fmt}", fmt,
                              overwrite=True, progress=False, log=lambda *a: None)
        per_image_s[fmt] = (time.perf_counter() - t0) / min(20, len(images))
    store = pl.PseudoLabelStore(work / "labels_png")
    crop_h = 854 / (640 / 192) / 480  # the training crop of a 854x480 frame at 640x192's aspect, centred
    t0 = time.perf_counter()
    for image in images[:20]:
        store.load(frames, image, 640, 192, box=(0.0, 0.5 - crop_h / 2, 1.0, 0.5 + crop_h / 2), flip=True)
    load_ms = 1000 * (time.perf_counter() - t0) / min(20, len(images))
    # a sharp teacher: the synthetic world's exact disparity rendered at 854x480 (and with 2 % per-pixel noise)
    sharp = work / "sharp"
    if not (sharp / "splits").is_dir():
        generate_dataset(sharp, num_drives=1, frames_per_drive=4, width=854, height=480, velodyne=False, seed=3)
    lines = [ln for ln in readlines(sharp / "splits" / "test_files.txt") if ln.strip()]
    rng = np.random.default_rng(0)
    for name, noise in (("exact synthetic disparity (sharp edges)", 0.0), ("the same x 2 % per-pixel noise", 0.02)):
        paths = []
        for i, line in enumerate(lines):
            disp = exact_disparity(sharp, line) * np.exp(noise * rng.standard_normal((480, 854)))
            paths.append(work / "sharp_labels" / f"{noise}_{i}.png")
            pl.write_label(paths[-1], disp.astype(np.float32), "png")
        n, mean = file_sizes(paths)
        rows.insert(-1, [f"label, png, {name}", n, f"{mean / 1024:.1f}", f"{mean * 3600 * fps / 1e9:.2f}"])
    rows.insert(0, [f"frame, JPEG quality 95 ({size[0]}x{size[1]}, extract_frames.py)", n_frames, f"{jpg / 1024:.1f}",
                    f"{jpg * 3600 * fps / 1e9:.2f}"])
    for folder in ("runs", "timing_weights", "timing_png", "timing_npy"):
        shutil.rmtree(work / folder, ignore_errors=True)
    return (f"`{video}` extracted with `extract_frames.py --fps {fps:g} --width 854 --height 480`; an hour of video at "
            f"{fps:g} fps is {int(3600 * fps)} frames (before static-frame removal).\n\n"
            + common.table(["file", "files measured", "mean KiB per file", f"GB per hour at {fps:g} fps"], rows)
            + f"\n\nCPU costs per frame, one core of a shared 2-core machine: JPEG decode {decode_ms:.1f} ms; "
            f"make_pseudo_labels.py with a ResNet-18 teacher at 640x192, decode + predict + resize + encode: "
            f"{1000 * per_image_s['png']:.0f} ms (png) / {1000 * per_image_s['npy']:.0f} ms (npy); reading a label "
            f"and resampling it to 640x192 in the training loader: {load_ms:.1f} ms.")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--teacher_steps", type=int, default=200)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--world", default=None, help="folder of the synthetic world (default: a temporary one)")
    p.add_argument("--drives", type=int, default=8, help="drives of the world (the last 20 %% are held out)")
    p.add_argument("--frames", type=int, default=25, help="frames per drive")
    p.add_argument("--cache", default=str(CACHE), help="JSON file of finished runs (a rerun skips them)")
    p.add_argument("--no_write", action="store_true", help="print the table only (smoke runs)")
    p.add_argument("--sizes", default=None, metavar="VIDEO",
                   help="measure frame and label sizes on this video at 854x480 instead (RESULTS.md: sizes section)")
    p.add_argument("--fps", type=float, default=10.0, help="--sizes: extraction frame rate")
    p.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS,
                   help="a subset (with 'none', the control) gets its own RESULTS.md section")
    p.add_argument("--pseudo_label_weight", type=float, default=0.1, help="train.py's --pseudo_label_weight")
    p.add_argument("--seen_frames", action="store_true",
                   help=f"also evaluate each run on {SEEN_FRAMES} frames it was trained on (its own cache entries "
                        "and RESULTS.md section)")
    args = p.parse_args()
    if "none" not in args.conditions:
        p.error("--conditions must include none (the control every condition is compared with)")
    conditions = [c for c in CONDITIONS if c in args.conditions]
    cache_path = Path(args.cache)
    torch.set_num_threads(1)
    root = Path(args.world or tempfile.mkdtemp(prefix="pl_world_"))
    data, split = prepare_synthetic(root / "world", WIDTH, HEIGHT, drives=args.drives, frames=args.frames, seed=0)
    world = (data, split)
    if args.sizes:
        body = sizes(args.sizes, root / "sizes", world, args.teacher_steps, args.fps)
        if not args.no_write:
            common.write_section(SIZES_SECTION, body, common.command_line())
        print(body)
        return
    tag = f"{WIDTH}x{HEIGHT}_steps{args.steps}_teacher{args.teacher_steps}"
    if (args.drives, args.frames) != (8, 25):  # the default world has no suffix (the first measured runs)
        tag += f"_d{args.drives}x{args.frames}"
    if args.seen_frames:  # new runs, evaluated twice; the runs cached without it are not mixed in
        tag += "_seen"
    base_tag = tag  # runs without labels (none) and the teachers do not depend on the weight
    if args.pseudo_label_weight != 0.1:
        tag += f"_w{args.pseudo_label_weight:g}"

    def key(seed, condition):
        return f"{base_tag if condition == 'none' else tag}/seed{seed}/{condition}"
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        tmp = Path(tmp)
        logs = tmp / "runs"
        cache = common.read_json(cache_path)
        labels = {k: write_synthetic_labels(data, split, root / f"labels_{k}", k) for k in ("noisy", "perfect")}
        for kind in ("noisy", "perfect"):
            if f"{base_tag}/teacher_{kind}" not in cache:
                common.update_json(cache_path, f"{base_tag}/teacher_{kind}", teacher_metrics(data, split, tmp, kind))
            if args.seen_frames and f"{base_tag}/teacher_{kind}_seen" not in cache:
                common.update_json(cache_path, f"{base_tag}/teacher_{kind}_seen",
                                   teacher_metrics(data, seen_split(data, split), tmp, kind))
        model_labels = root / "labels_model"
        if "model" in conditions and (not (model_labels / pl.MANIFEST_NAME).is_file()
                                      or f"{base_tag}/teacher_model" not in cache):
            teacher = trainer_for(data, split, logs, "teacher", 100, args.teacher_steps)
            stats = train_steps(teacher, args.teacher_steps)
            images = pl.split_images(data, split, "kitti", png=True)
            pl.make_pseudo_labels(pl.load_teacher(str(stats["weights"])), images, data, model_labels, overwrite=True)
            metrics = held_out(data, split, weights=stats["weights"])
            shutil.rmtree(logs / "teacher")
            common.update_json(cache_path, f"{base_tag}/teacher_model",
                               {"metrics": metrics, "seconds": stats["seconds"]})
            print("teacher", metrics, flush=True)
        labels["model"] = model_labels
        if f"{base_tag}/untrained" not in cache:  # context: the networks before any step (seed 0's initialisation)
            from monodepth2_geopt.tools.experiments import save_initial
            fresh = trainer_for(data, split, logs, "untrained", 0, args.steps)
            common.update_json(cache_path, f"{base_tag}/untrained",
                               held_out(data, split, weights=save_initial(fresh, tmp / "untrained")))
        for seed in args.seeds:
            for condition in conditions:
                if key(seed, condition) not in common.read_json(cache_path):
                    common.update_json(cache_path, key(seed, condition),
                                       run(world, logs, labels, seed, args.steps, condition, args.pseudo_label_weight,
                                           args.seen_frames))
    cache = common.read_json(cache_path)
    def row(condition, runs, teacher, per_seed):
        """A table row: mean ± sd of each metric over seeds, the per-seed abs_rel (``per_seed`` alignment), the
        teacher's own."""
        return [condition, *(common.mean_sd([r[align][m] for r in runs], ".3f") for align in ("median", "lsqr")
                             for m in ("abs_rel", "a1")),
                " / ".join(f"{r[per_seed]['abs_rel']:.3f}" for r in runs),
                f"{teacher['median']['abs_rel']:.3f} / {teacher['lsqr']['abs_rel']:.3f}" if teacher else "-"]

    rows = []
    for condition in conditions:
        teacher = cache.get(f"{base_tag}/teacher_{condition}")
        rows.append(row(condition, [cache[key(s, condition)]["metrics"] for s in args.seeds],
                        teacher["metrics"] if teacher and "metrics" in teacher else teacher, "median"))
    seen_rows = [row(condition, [cache[key(s, condition)]["seen"] for s in args.seeds],  # frames they trained on
                     cache.get(f"{base_tag}/teacher_{condition}_seen"), "lsqr")
                 for condition in conditions] if args.seen_frames else []
    untrained = cache[f"{base_tag}/untrained"]
    rows.insert(0, ["untrained (seed 0's initialisation)", f"{untrained['median']['abs_rel']:.3f}",
                    f"{untrained['median']['a1']:.3f}", f"{untrained['lsqr']['abs_rel']:.3f}",
                    f"{untrained['lsqr']['a1']:.3f}", "-", "-"])
    base = [cache[key(s, "none")]["metrics"]["median"]["abs_rel"] for s in args.seeds]
    verdicts = []
    for condition in conditions[1:]:
        runs = [cache[key(s, condition)]["metrics"]["median"]["abs_rel"] for s in args.seeds]
        lsqr = [cache[key(s, condition)]["metrics"]["lsqr"]["abs_rel"] for s in args.seeds]
        teacher = cache[f"{base_tag}/teacher_{condition}"]
        t_lsqr = (teacher.get("metrics") or teacher)["lsqr"]["abs_rel"]
        gap = statistics.mean(lsqr) - t_lsqr
        wins = sum(r < b for r, b in zip(runs, base))
        verdicts.append(f"{condition}: beats (a) on {wins} of {len(base)} seeds (paired abs_rel change "
                        f"{common.mean_sd([r - b for r, b in zip(runs, base)], '.3f')}); against its teacher, "
                        "lsqr abs_rel "
                        f"{statistics.mean(lsqr):.3f} vs {t_lsqr:.3f} ({gap:+.3f}): "
                        f"{'reaches' if gap <= REACH_MARGIN else 'does not reach'} it within {REACH_MARGIN}")
        if args.seen_frames and condition in ("noisy", "perfect"):
            seen = [cache[key(s, condition)]["seen"]["lsqr"]["abs_rel"] for s in args.seeds]
            t_seen = cache[f"{base_tag}/teacher_{condition}_seen"]["lsqr"]["abs_rel"]
            gap = statistics.mean(seen) - t_seen
            verdicts[-1] += (f"; on {SEEN_FRAMES} frames it was trained on, lsqr abs_rel {common.mean_sd(seen, '.3f')} "
                             f"vs the teacher's {t_seen:.3f} ({gap:+.3f}): "
                             f"{'within' if gap <= REACH_MARGIN else 'not within'} {REACH_MARGIN}")
    n_test = max(1, round(0.2 * args.drives))
    seconds = sum(v.get("seconds", 0) for k, v in cache.items() if k.startswith(tag) and isinstance(v, dict))
    body = (f"M from scratch at {WIDTH}x{HEIGHT}, batch 4, {args.steps} steps per run (the teacher of (c): "
            f"{args.teacher_steps} steps, seed 100), seeds {args.seeds}; synthetic world of {args.drives} drives x "
            f"{args.frames} frames, the last {n_test} drive(s) held out ({n_test * args.frames} test frames). "
            f"--pseudo_label_weight {args.pseudo_label_weight:g}, median/MAD alignment. Training time in all: "
            f"{seconds / 60:.0f} min of one CPU core on a shared machine; every run is far from converged: these are "
            f"short-budget effects.\n\n"
            + common.table(["condition", "abs_rel (median)", "δ<1.25 (median)", "abs_rel (lsqr)", "δ<1.25 (lsqr)",
                            "abs_rel per seed", "teacher's own abs_rel median / lsqr"], rows)
            + (f"\n\nThe same runs on {SEEN_FRAMES} frames of the train split (target frames they were trained on; "
               "abs_rel per seed in lsqr here):\n\n"
               + common.table(["condition", "abs_rel (median)", "δ<1.25 (median)", "abs_rel (lsqr)", "δ<1.25 (lsqr)",
                               "abs_rel (lsqr) per seed", "teacher's own abs_rel median / lsqr"], seen_rows)
               if seen_rows else "")
            + "\n\nmean ± sd over seeds. Teachers' own accuracy: (b) its noisy labels of the test frames (median "
              "scaling cannot undo their shift; lsqr can), (c) the teacher model, (d) the exact disparity.\n\n"
            + "\n".join(f"- {v}" for v in verdicts)
            + f"\n\n\"Reaches the teacher\": the student's held-out abs_rel after least-squares scale and shift in "
              f"disparity (the invariance the loss has) within {REACH_MARGIN} of the teacher's own, a margin stated "
              f"before the runs.\n")
    section = SECTION if conditions == list(CONDITIONS) else (
        f"{SECTION}: {', '.join(conditions)}, {args.steps} steps, weight {args.pseudo_label_weight:g}")
    if args.seen_frames:
        section += ", held-out and trained frames"
    if not args.no_write:
        common.write_section(section, body, common.command_line(),
                             common.machines_of(cache[key(s, c)] for s in args.seeds for c in conditions))
    print(body)


if __name__ == "__main__":
    main()
