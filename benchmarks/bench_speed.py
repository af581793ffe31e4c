"""Training throughput: end-to-end, compute-only and loader-only examples/s, peak memory, per-option ablation.

    python benchmarks/bench_speed.py                      # GPU: 640x192, batch 12, 12 workers, KITTI-size JPEGs
    python benchmarks/bench_speed.py --quick              # CPU smoke: tiny sizes, a few steps (used by CI tests)
    python benchmarks/bench_speed.py --write_results      # also replace the section of benchmarks/RESULTS.md

Data: KITTI-size (1242x375) JPEG frames of the built-in synthetic world are generated once under
``--data_path`` (or an existing KITTI-layout folder with train/val split files is used as is).
Rows: each mode with all speed options on, then one row per option switched off (the ablation).
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts the repo root on sys.path)
import torch

from monodepth2_geopt.errors import InputError, run_cli
from monodepth2_geopt.options import MonodepthOptions


def make_data(root: Path, width: int, height: int, frames: int) -> Path:
    """KITTI-layout JPEG frames + split files (built-in synthetic world), written once."""
    from monodepth2_geopt.tools.synthetic import generate_dataset
    if not (root / "splits" / "train_files.txt").exists():
        generate_dataset(root, num_drives=2, frames_per_drive=frames, width=width, height=height, seed=0, ext="jpg")
    return root


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # process peak RSS (Linux: KiB)


def build(mode: str, args, extra: list[str]):
    base = ["--data_path", str(args.data_path), "--split", str(Path(args.data_path) / "splits"),
            "--height", str(args.height), "--width", str(args.width), "--batch_size", str(args.batch_size),
            "--num_workers", str(args.num_workers), "--weights_init", "scratch", "--num_epochs", "1",
            "--log_dir", args.log_dir, "--model_name", f"bench_{mode}", "--no_progress", "--seed", "0"]
    if args.no_cuda:
        base.append("--no_cuda")
    if mode == "flow":
        from monodepth2_geopt.flow_task import flow_trainer
        return flow_trainer(MonodepthOptions().parse(base + extra))
    from monodepth2_geopt.depth_task import depth_trainer
    mode_flags = {"M": [], "MS": ["--use_stereo"], "S": ["--use_stereo", "--frame_ids", "0"]}[mode]
    return depth_trainer(MonodepthOptions().parse(base + mode_flags + extra))


def measure(trainer, steps: int, warmup: int) -> dict:
    device, bs = trainer.device, trainer.opt.batch_size
    loader = trainer.train_loader
    it = iter(loader)

    def next_batch():
        nonlocal it
        try:
            return next(it)
        except StopIteration:
            it = iter(loader)
            return next(it)

    # loader alone
    for _ in range(min(warmup, 2)):
        next_batch()
    t = time.perf_counter()
    for _ in range(steps):
        next_batch()
    loader_rate = steps * bs / (time.perf_counter() - t)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # compute only: one batch, repeated
    batch = next_batch()
    if device.type == "cuda":
        batch = {k: (v.pin_memory() if torch.is_tensor(v) else v) for k, v in batch.items()}
    for _ in range(warmup):
        trainer.train_step(batch)
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    sync(device)
    compute_rate = steps * bs / (time.perf_counter() - t)

    # end to end: loader + transfer + step
    for _ in range(2):
        trainer.train_step(next_batch())
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next_batch())
    sync(device)
    e2e_rate = steps * bs / (time.perf_counter() - t)
    return {"e2e": e2e_rate, "compute": compute_rate, "loader": loader_rate, "mem": peak_memory_gb(device)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_path", default=None, help="KITTI-layout data with splits/; default: generated")
    p.add_argument("--height", type=int, default=192)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--batch_size", type=int, default=12)
    p.add_argument("--num_workers", type=int, default=12)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--modes", nargs="+", default=["M", "MS", "flow"], choices=["M", "MS", "S", "flow"])
    p.add_argument("--no_ablation", action="store_true")
    p.add_argument("--no_cuda", action="store_true")
    p.add_argument("--no_compile", action="store_true",
                   help="GPU: leave torch.compile out (its compilation takes minutes per configuration)")
    p.add_argument("--quick", action="store_true", help="tiny CPU smoke run (64x192, batch 2, 2 steps)")
    p.add_argument("--write_results", action="store_true",
                   help="replace this benchmark's section of the tracked benchmarks/RESULTS.md (default: only print)")
    p.add_argument("--no_write", action="store_true", help="the earlier opt-out; printing only is now the default")
    p.add_argument("--data_size", nargs=2, type=int, default=[1242, 375], metavar=("W", "H"),
                   help="size of the generated frames (KITTI's by default)")
    args = p.parse_args(argv)
    if args.quick:
        args.height, args.width, args.batch_size, args.num_workers, args.steps, args.warmup = 64, 192, 2, 0, 2, 1
        args.write_results = False
    if args.data_path is not None and not (Path(args.data_path) / "splits" / "train_files.txt").is_file():
        what = "is not a folder" if not Path(args.data_path).is_dir() else "has no splits/train_files.txt"
        raise InputError(f"--data_path {args.data_path} {what}: give a KITTI-layout tree with "
                         "splits/train_files.txt and val_files.txt (e.g. from generate_synthetic.py), or leave "
                         "--data_path out to generate one")
    return args


def main(argv=None):
    args = parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="bench_speed_")
    args.log_dir = tmp
    if args.data_path is None:
        size = (320, 96) if args.quick else tuple(args.data_size)
        args.data_path = make_data(Path(tempfile.gettempdir()) / f"m2g_bench_{size[0]}x{size[1]}", *size,
                                   frames=12 if args.quick else 60)
    cuda = torch.cuda.is_available() and not args.no_cuda
    compile_ = ["--compile"] if cuda and not args.no_compile else []
    speed_on = ["--amp", "bf16", "--channels_last", "on"] + compile_
    ablations = [("bf16 autocast off", ["--amp", "off", "--channels_last", "on"] + compile_),
                 ("channels_last off", ["--amp", "bf16", "--channels_last", "off"] + compile_),
                 ("torch.compile off", ["--amp", "bf16", "--channels_last", "on"]),
                 ("all speed options off (fp32)", ["--amp", "off", "--channels_last", "off"])]
    if not compile_:
        ablations = [a for a in ablations if a[0] != "torch.compile off"]
    if not cuda:  # on the CPU bf16 autocast is slower; default CPU configuration is fp32
        speed_on = ["--amp", "off", "--channels_last", "off"]
        ablations = [("bf16 autocast on", ["--amp", "bf16"])]
    rows = []
    for mode in args.modes:
        configs = [("all speed options on" if cuda else "defaults (CPU: fp32)", speed_on)]
        if not args.no_ablation:
            configs += ablations
        for name, flags in configs:
            trainer = build(mode, args, flags)
            r = measure(trainer, args.steps, args.warmup)
            rows.append([mode, name, round(r["e2e"], 1), round(r["compute"], 1), round(r["loader"], 1),
                         round(r["mem"], 2)])
            print(f"{mode:5s} {name:32s} e2e {r['e2e']:8.1f} ex/s | compute {r['compute']:8.1f} | "
                  f"loader {r['loader']:8.1f} | peak mem {r['mem']:.2f} GB", flush=True)
            del trainer
            if cuda:
                torch.cuda.empty_cache()
    mem = "peak GPU memory (GB)" if cuda else "peak process RSS (GB)"
    body = common.table(["mode", "configuration", "end-to-end ex/s", "compute-only ex/s", "loader-only ex/s", mem],
                        rows)
    body = (f"{args.width}x{args.height}, batch {args.batch_size}, {args.num_workers} workers, ResNet-18, "
            f"{args.steps} timed steps after {args.warmup} warm-up"
            f"{'; torch.compile not used (--no_compile)' if cuda and not compile_ else ''}.\n\n" + body)
    print(body)
    if args.write_results:
        common.write_section(f"Training speed ({'GPU' if cuda else 'CPU'})", body, common.command_line())


if __name__ == "__main__":
    run_cli(main)
