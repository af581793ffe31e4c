"""Does Geometric Pretraining learn motion, and does it help depth? (issue: GeoPt must learn motion)

    python benchmarks/bench_geopt.py --part pretext     # synthetic world 320x96: diagnostics curve vs GT flow
    python benchmarks/bench_geopt.py --part real        # frames of ../shared/data/videos: vs TV-L1 reference
    python benchmarks/bench_geopt.py --part overfit     # Middlebury motorcycle pair, true flow = -disparity
    python benchmarks/bench_geopt.py --part transfer --seeds 0 1 2 3 4   # depth from scratch / GeoPt / controls

Every part runs ``pretrain_flow.py``'s *defaults* (only data, size, budget and seed are given) through the same
FlowTrainer, and writes its table to RESULTS.md whatever it shows.

``pretext``: pretrain on the training drives of a synthetic world for ``--steps``; every ``--every`` steps the
diagnostics of ``monodepth2_geopt.flow_diagnostics`` on the held-out drive (flow t -> t+1 ground truth): EPE, EPE
of zero flow, Fl-all, latent sensitivity, direction cosine, structure usage. ``--recipe previous`` runs the
defaults before this issue (ResNet motion encoder with a global pool, concat conditioning, per-pixel minimum, full-
resolution loss, lr 1e-4) for comparison.
``real``: the same on frames extracted at ``--fps`` from the real videos; their ``val_files.txt`` (the last 10 % of
each clip) is held out and scored against TV-L1 (a classical reference, not truth).
``overfit``: one real stereo pair as a two-frame "video", learnt at the default options; EPE against the true
flow (-disparity, horizontal) on pixels with finite disparity.
``transfer``: for each seed, pretrain on synthetic video of other worlds, once with the defaults, once with the motion
latent zeroed (an average-flow predictor) and once with the sources of another triplet (no consistent motion); then
train depth (``--modes``) from scratch and from each pretrained encoder, same seed and data; held-out abs_rel.
"""
from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import common
import numpy as np
import torch

from monodepth2_geopt.tools.experiments import (MODE_FLAGS, evaluate_weights, make_trainer, prepare_synthetic,
                                          train_steps)
from monodepth2_geopt.flow_diagnostics import diagnose_samples, ground_truth_samples

# The pretext recipe before this issue (ImageNet initialisation aside: both start from scratch here).
PREVIOUS = ["--flow_conditioning", "concat", "--motion_encoder", "resnet", "--motion_pool_grid", "0", "0",
            "--flow_min_reprojection", "--flow_loss_resolution", "full", "--learning_rate", "1e-4"]
# Recipes: pretrain_flow.py's defaults, the previous defaults, and single-change ablations of the new recipe.
RECIPES = {"default": [], "previous": PREVIOUS, "no_bottleneck": ["--bottleneck_channels", "0"],
           "min_reprojection": ["--flow_min_reprojection"], "resnet_motion": ["--motion_encoder", "resnet"],
           "film": ["--flow_conditioning", "film"], "full_resolution_loss": ["--flow_loss_resolution", "full"],
           "no_fixed_basis": ["--flow_fixed_basis", "off"], "lr_1e-3": ["--learning_rate", "1e-3"]}
DIAG_COLUMNS = ["EPE (px)", "zero-flow EPE", "EPE / zero", "Fl-all", "latent sensitivity", "direction cosine",
                "structure usage"]


def flow_args(args, data, name, seed, extra=()):
    return ["--data_path", data, "--height", args.height, "--width", args.width, "--batch_size", args.batch_size,
            "--num_workers", args.num_workers, "--no_progress", "--log_dir", args.log_dir, "--model_name", name,
            "--seed", seed, *device_flags(args), *extra]


def device_flags(args) -> list[str]:
    return [] if args.cuda else ["--no_cuda"]


def _one_thread():
    torch.set_num_threads(1)  # several runs side by side: one CPU thread each (oversubscription is 5-10x slower)


def run_jobs(fn, jobs: list[tuple], n: int) -> list:
    """``fn(*job)`` for each job, in ``n`` processes side by side (spawned, so CUDA works in them)."""
    if n <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    with ProcessPoolExecutor(min(n, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_one_thread) as pool:
        return list(pool.map(fn, *zip(*jobs)))


def diag_row(d):
    ratio = d["epe"] / d["epe_zero_flow"] if d.get("epe") is not None and d.get("epe_zero_flow") else None
    vals = [d.get("epe"), d.get("epe_zero_flow"), ratio, None if d.get("fl_all") is None else 100 * d["fl_all"],
            d.get("latent_sensitivity"), d.get("direction_cosine"), d.get("structure_usage")]
    return ["n/a" if v is None else round(v, 3) for v in vals]


def diagnostics(trainer, samples, kind):
    m = trainer.models
    trainer.set_eval()
    try:
        return diagnose_samples(m["encoder"], m["motion_encoder"], m["flow"], samples, kind, trainer.device)
    finally:
        trainer.set_train()


def curve(trainer, samples, kind, steps, every, label):
    """Train ``steps`` steps, with diagnostics every ``every`` steps; rows [label, step, seconds, *diag]."""
    rows, start, trained = [], time.time(), 0.0
    for i in sorted(set(range(0, steps, every)) | {steps}):
        if i > trainer.step:
            t = time.time()
            trainer.train(max_steps=i, save_at_stop=i == steps)  # the one training loop, continued per round
            trained += time.time() - t
        d = diagnostics(trainer, samples, kind)
        rows.append([label, i, round(trained), *diag_row(d)])
        print(rows[-1], flush=True)
    print(f"{label}: {time.time() - start:.0f} s with diagnostics", flush=True)
    return rows


def pretext_run(args, data, samples, kind, name, seed, extra, label):
    """One pretraining curve (a job of ``run_jobs``)."""
    torch.manual_seed(seed)
    trainer = make_trainer(flow_args(args, data, name, seed, extra), flow=True)
    return curve(trainer, samples, kind, args.steps, args.every, label)


def part_pretext(args):
    from monodepth2_geopt.tools.synthetic import generate_dataset
    root = Path(args.work) / "pretext_world"
    if not (root / "splits").is_dir():
        generate_dataset(root, num_drives=args.drives, frames_per_drive=args.frames, width=args.width,
                         height=args.height, seed=0, velodyne=False)
    test = root / "splits" / "test_files.txt"
    samples = ground_truth_samples(root, test, args.height, args.width)
    extra = ["--flow_split", root / "splits" / "train_files.txt"]  # validates on the world's val_files
    jobs = [(args, root, samples, "ground_truth", f"pretext_{r}_{seed}", seed, extra + RECIPES[r], f"{r}, seed {seed}")
            for r in args.recipes for seed in args.pretext_seeds]
    rows = [row for rows in run_jobs(pretext_run, jobs, args.jobs) for row in rows]
    head = (f"Synthetic world at {args.width}x{args.height}: {args.drives - 1} training drives and 1 held-out drive of "
            f"{args.frames} frames; batch {args.batch_size}; `default` = pretrain_flow.py's defaults, `previous` = "
            "the defaults before this change. Diagnostics on the held-out drive against its ground-truth flow "
            "(t -> t+1); train s = optimisation time without the diagnostics.\n\n")
    return head + common.table(["recipe", "step", "train s", *DIAG_COLUMNS], rows)


def part_real(args):
    from monodepth2_geopt.flow_diagnostics import frames_dataset, video_samples
    from monodepth2_geopt.tools.video import ExtractOptions, extract_videos
    frames = Path(args.work) / f"real_frames_stride{args.frame_stride}"
    if not (frames / "train_files.txt").is_file():
        extract_videos(args.videos, frames, ExtractOptions(fps=args.fps, max_side=640, stride=args.frame_stride),
                       progress=False)
    samples = video_samples(frames_dataset(frames, frames / "val_files.txt", args.height, args.width,
                                           args.frame_stride))
    stride = ["--frame_stride", args.frame_stride]
    jobs = [(args, frames, samples, "reference", f"real_{r}_{seed}", seed, stride + RECIPES[r], f"{r}, seed {seed}")
            for r in args.recipes for seed in args.pretext_seeds]
    rows = [row for rows in run_jobs(pretext_run, jobs, args.jobs) for row in rows]
    n_train = len((frames / "train_files.txt").read_text().splitlines())
    head = (f"Real video: the clips in {args.videos} extracted at {args.fps} fps, triplets t-{args.frame_stride}, t, "
            f"t+{args.frame_stride} "
            f"({n_train} training triplets); {len(samples)} held-out triplets (the last 10 % of each clip) scored "
            f"against TV-L1 with a forward-backward check, a classical **reference, not ground truth**; "
            f"{args.width}x{args.height}, batch {args.batch_size}.\n\n")
    return head + common.table(["recipe", "step", "train s", *DIAG_COLUMNS], rows)


def part_overfit(args):
    from PIL import Image
    from skimage.data import stereo_motorcycle

    from monodepth2_geopt.flow_diagnostics import diagnose
    from monodepth2_geopt.kitti_layout import load_image_uint8
    left, right, disp = stereo_motorcycle()
    h, w = args.overfit_height, args.overfit_width
    folder = Path(args.work) / "motorcycle"
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate((left, right)):
        Image.fromarray(img).resize((w, h), Image.Resampling.LANCZOS).save(folder / f"{i:06d}.png")
    gt = torch.zeros(2, *disp.shape)
    gt[0] = -torch.from_numpy(np.nan_to_num(disp.astype(np.float32), nan=0.0, posinf=0.0))
    valid = torch.from_numpy(np.isfinite(disp) & (disp > 0))
    rows = []
    for recipe in args.recipes:
        torch.manual_seed(0)
        trainer = make_trainer(["--data_path", folder, "--frame_ids", "0", "1", "--height", h, "--width", w,
                                "--batch_size", 1, "--num_workers", 0, "--no_progress", "--log_dir", args.log_dir,
                                "--model_name", f"overfit_{recipe}", "--seed", 0, *device_flags(args), *RECIPES[recipe]],
                               flow=True)
        item = {("color", f): load_image_uint8(folder / f"{i:06d}.png", h, w)[None]
                for i, f in enumerate((0, 1))}
        batch = dict(item, flip=torch.zeros(1, dtype=torch.bool), index=torch.zeros(1, dtype=torch.long))
        target, source = item[("color", 0)].float() / 255, item[("color", 1)].float() / 255
        start = time.time()
        for i in range(args.overfit_steps + 1):
            if i % args.every == 0 or i == args.overfit_steps:
                trainer.set_eval()
                m = trainer.models
                with torch.no_grad():
                    d = diagnose(m["encoder"], m["motion_encoder"], m["flow"], target.to(trainer.device),
                                 {1: source.to(trainer.device)}, [(gt, valid)])
                trainer.set_train()
                rows.append([recipe, i, round(time.time() - start), round(d["epe"], 2), round(d["epe_zero_flow"], 2),
                             round(100 * d["fl_all"], 1)])
                print(rows[-1], flush=True)
            if i < args.overfit_steps:
                trainer.train_step(batch)
                trainer.step += 1
    head = (f"Middlebury 2014 motorcycle pair (scikit-image), left -> right as a two-frame video at {w}x{h}; true "
            f"flow = -disparity at the original {disp.shape[1]}x{disp.shape[0]} (prediction resized, vectors "
            "rescaled); defaults of pretrain_flow.py (lr included), batch 1, no geometric augmentation.\n\n")
    return head + common.table(["recipe", "step", "s", "EPE (px)", "zero-flow EPE", "Fl-all %"], rows)


TRANSFER_INITS = ["scratch", "geopt", "zero_latent", "shuffled_sources"]


def transfer_seed(args, data, split, samples, seed) -> tuple[list, dict]:
    """One seed of the transfer part (a job of ``run_jobs``): (pretext diagnostic rows, {mode: [abs_rel per init]}).

    Every result goes to ``<work>/transfer_results.json`` as soon as it is measured, so an interrupted call (or
    seeds run by other calls with the same --work) is resumed, not recomputed."""
    from monodepth2_geopt.tools.synthetic import generate_video
    cache_file = Path(args.work) / "transfer_results.json"
    cache = common.read_json(cache_file)
    depth_names = [f"depth_{mode}_{init}_{seed}" for mode in args.modes for init in TRANSFER_INITS]
    pre_names = [f"pre_{init}_{seed}" for init in TRANSFER_INITS[1:]]
    weights = {}
    if args.from_cache:  # tables of what an earlier (e.g. cut-off GPU) call measured; missing = None
        pre_rows = [[seed, init, *(diag_row(cache[f"pre_{init}_{seed}"]) if f"pre_{init}_{seed}" in cache
                                   else ["not run"] * len(DIAG_COLUMNS))] for init in TRANSFER_INITS[1:]]
        return pre_rows, {mode: [cache.get(f"depth_{mode}_{init}_{seed}") for init in TRANSFER_INITS]
                          for mode in args.modes}
    if not all(k in cache for k in depth_names + pre_names):
        videos = Path(args.work) / f"videos_{seed}"
        if not videos.exists():
            generate_video(videos, num_sequences=3, frames=args.video_frames, width=args.width, height=args.height,
                           seed=100 + seed)
        for init in TRANSFER_INITS[1:]:
            torch.manual_seed(seed)
            extra = [] if init == "geopt" else ["--flow_control", init]
            done = Path(args.log_dir) / f"pre_{init}_{seed}" / "models" / "weights_0"
            reuse = (done / "flow.pth").is_file()  # a pretraining of an earlier call (e.g. --modes M, then S)
            if reuse:
                extra += ["--load_weights_folder", done]
            trainer = make_trainer(flow_args(args, videos, f"pre_{init}_{seed}", seed, extra), flow=True)
            weights[init] = done if reuse else train_steps(trainer, args.flow_steps)["weights"]
            if not reuse or f"pre_{init}_{seed}" not in cache:  # the diagnostics of the weights used below
                common.update_json(cache_file, f"pre_{init}_{seed}", diagnostics(trainer, samples, "ground_truth"))
        cache = common.read_json(cache_file)
    pre_rows = [[seed, init, *diag_row(cache[f"pre_{init}_{seed}"])] for init in TRANSFER_INITS[1:]]
    for row in pre_rows:
        print(row, flush=True)
    results = {}
    for mode in args.modes:
        results[mode] = []
        for init in TRANSFER_INITS:
            name = f"depth_{mode}_{init}_{seed}"
            if name not in cache:
                torch.manual_seed(seed)
                extra = [*MODE_FLAGS[mode]] + (["--automask_warmup", "75"] if mode != "S" else [])
                if init != "scratch":
                    extra += ["--geopt_weights", weights[init]]
                depth = make_trainer(["--data_path", data, "--png", "--split", split, "--height", args.depth_height,
                                      "--width", args.depth_width, "--batch_size", args.depth_batch_size,
                                      "--num_workers", args.num_workers, "--weights_init", "scratch", "--no_progress",
                                      "--log_dir", args.log_dir, "--model_name", name, "--seed", seed,
                                      "--learning_rate", "2e-4", "--init_depth", "2", *device_flags(args), *extra])
                stats = train_steps(depth, args.depth_steps)  # (the same depth_world, resized on loading)
                cache[name] = evaluate_weights(stats["weights"], data, split, mode != "M")["abs_rel"]
                common.update_json(cache_file, name, cache[name])
            results[mode].append(cache[name])
        print(mode, [seed, *(round(v, 4) for v in results[mode])], flush=True)
    return pre_rows, results


def part_transfer(args):
    # The depth world is rendered at the pretraining size (its held-out drive also scores the pretext flows against
    # ground truth); depth trains on it resized to --depth_width x --depth_height.
    if args.from_cache:
        data = split = samples = None
    else:
        data, split = prepare_synthetic(Path(args.work) / "depth_world", args.width, args.height, args.drives,
                                        args.frames)
        samples = ground_truth_samples(data, split / "test_files.txt", args.height, args.width)
    inits = TRANSFER_INITS
    per_seed = run_jobs(transfer_seed, [(args, data, split, samples, seed) for seed in args.seeds], args.jobs)
    pre_rows = [row for rows, _ in per_seed for row in rows]
    rows = {mode: [[seed, *("not run" if v is None else round(v, 4) for v in res[mode])]
                   for seed, (_, res) in zip(args.seeds, per_seed)] for mode in args.modes}
    results = {mode: {k: [res[mode][i] for _, res in per_seed] for i, k in enumerate(inits)} for mode in args.modes}
    body = (f"Pretraining: {args.flow_steps} steps at {args.width}x{args.height} on 3 sequences of synthetic video "
            f"(worlds 100 + seed, no ground truth used), pretrain_flow.py's defaults; depth: {args.depth_steps} steps at "
            f"{args.depth_width}x{args.depth_height}, batch {args.depth_batch_size}, lr 2e-4, --init_depth 2 "
            "(--automask_warmup 75 in M), held-out drive of another world, abs_rel (M: median-scaled, S: metric "
            "x5.4). Controls: `zero_latent` = the same pretraining with the motion latent replaced by zeros; "
            "`shuffled_sources` = each target paired with the source frames of another triplet.\n\n")
    body += ("Pretext diagnostics of each pretraining on the depth world's held-out drive (ground-truth flow t -> "
             "t+1), so the controls are seen to remove what they should:\n\n")
    body += common.table(["seed", "pretraining", *DIAG_COLUMNS], pre_rows) + "\n\n"
    for mode in args.modes:
        table_rows = rows[mode] + [["mean ± sd"] + [common.mean_sd(results[mode][k]) for k in inits]]
        gains = {k: [a - b for a, b in zip(results[mode]["scratch"], results[mode][k]) if None not in (a, b)]
                 for k in inits}
        table_rows.append(["gain over scratch, paired"] + [
            f"{common.mean_sd(gains[k], '+.4f')} ({sum(g > 0 for g in gains[k])}/{len(gains[k])} better)" if gains[k]
            else "not run" for k in inits])
        body += f"**{mode}** ({'metric' if mode != 'M' else 'median-scaled'} abs_rel, lower is better)\n\n"
        body += common.table(["seed", *inits], table_rows) + "\n\n"
    return body


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["pretext", "real", "overfit", "transfer"], required=True)
    p.add_argument("--recipes", nargs="+", default=["default"], choices=sorted(RECIPES))
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--num_workers", type=int, default=0)
    p.add_argument("--steps", type=int, default=300, help="pretraining steps (pretext, real)")
    p.add_argument("--every", type=int, default=50, help="steps between diagnostics")
    p.add_argument("--drives", type=int, default=6)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--videos", default=str(common.ROOT.parent / "shared" / "data" / "videos"))
    p.add_argument("--fps", type=float, default=10)
    p.add_argument("--frame_stride", type=int, default=2,
                   help="real part: triplet stride; at 10 fps and 320x96 one frame moves the held-out scenes by "
                        "about 2 px (TV-L1), close to the reference's own error, so 2 frames are used")
    p.add_argument("--overfit_width", type=int, default=384)
    p.add_argument("--overfit_height", type=int, default=256)
    p.add_argument("--overfit_steps", type=int, default=200)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="transfer seeds")
    p.add_argument("--pretext_seeds", nargs="+", type=int, default=[0], help="pretext / real seeds")
    p.add_argument("--modes", nargs="+", default=["M", "S"], choices=["M", "S", "MS"])
    p.add_argument("--flow_steps", type=int, default=200)
    p.add_argument("--video_frames", type=int, default=40)
    p.add_argument("--depth_width", type=int, default=160)
    p.add_argument("--depth_height", type=int, default=64)
    p.add_argument("--depth_steps", type=int, default=250)
    p.add_argument("--depth_batch_size", type=int, default=4)
    p.add_argument("--work", default=None, help="data folder (default: a temp folder)")
    p.add_argument("--cuda", action="store_true", help="train on the GPU (default: CPU, as the recorded tables)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs side by side (recipes x seeds; transfer: seeds), one CPU thread each")
    p.add_argument("--from_cache", action="store_true",
                   help="transfer: write the tables from <work>/transfer_results.json only (runs nothing)")
    p.add_argument("--measured_on", default=None, help="with --from_cache: the machine that measured the cache")
    p.add_argument("--no_write", action="store_true")
    args = p.parse_args()
    args.work = args.work or tempfile.mkdtemp(prefix="bench_geopt_")
    args.log_dir = str(Path(args.work) / "runs")
    titles = {"pretext": f"GeoPt pretext on the synthetic world ({args.width}x{args.height}, "
                         f"{', '.join(args.recipes)})",
              "real": f"GeoPt pretext on real video ({args.width}x{args.height})",
              "overfit": "GeoPt overfit check (Middlebury pair)",
              "transfer": f"GeoPt transfer with controls ({', '.join(args.modes)}, {len(args.seeds)} seeds)"}
    if args.cuda:  # kept apart from the CPU tables of the same part
        titles = {k: f"{v} (GPU)" for k, v in titles.items()}
    run = {"pretext": part_pretext, "real": part_real, "overfit": part_overfit, "transfer": part_transfer}
    start = time.time()
    body = run[args.part](args)
    if args.from_cache:
        body += (f"\n\nTables written by `--from_cache` from `transfer_results.json` of the measuring call(s), on "
                 f"{args.measured_on or 'this machine'}.\n")
    else:
        body += f"\n\nWall time of the whole command: {time.time() - start:.0f} s.\n"
    print(body)
    if not args.no_write:
        common.write_section(titles[args.part], body, common.command_line(), measured_on=args.measured_on)


if __name__ == "__main__":
    main()
