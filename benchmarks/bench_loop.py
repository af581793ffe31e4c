"""The training loop's own cost: whole-epoch throughput of ``train.py``'s loop and the non-finite guard's share.

    python benchmarks/bench_loop.py                                  # this checkout, CPU
    python benchmarks/bench_loop.py --roots . /path/to/older/checkout # before/after a change, interleaved

Each repeat trains one epoch of the built-in synthetic world (M, from scratch, --num_workers 0, seeded) through
``Trainer.train()`` as ``train.py`` does: data loading, the steps, the guard, logging at step 0 and the epoch's
checkpoint, timed from the first step to the end. Checkouts are run alternately (A B A B ...) in fresh processes,
so drift of the machine affects them alike. The guard row times the guard's work alone (the gradients' total
norm and the finiteness test, as ``Trainer.guarded_optimizer_step`` does it) against one training step.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common

CHILD = r"""
import json, sys, time, tempfile
root, data, split, args = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
sys.path.insert(0, root)
import torch
torch.set_num_threads(args["threads"])
from monodepth2_geopt.options import MonodepthOptions
opt = MonodepthOptions().parse(["--data_path", data, "--split", split, "--png", "--height", str(args["height"]),
    "--width", str(args["width"]), "--batch_size", str(args["batch_size"]), "--num_workers", "0", "--weights_init",
    "scratch", "--no_progress", "--seed", "0", "--no_cuda", "--num_epochs", "1", "--log_dir", tempfile.mkdtemp(),
    "--model_name", "loop"])
try:
    from monodepth2_geopt.depth_task import depth_trainer
    trainer = depth_trainer(opt)
except ImportError:  # a checkout from before the loop/task split
    from monodepth2_geopt.trainer import Trainer
    trainer = Trainer(opt)
steps = len(trainer.train_loader)
t = time.perf_counter()
trainer.train()
seconds = time.perf_counter() - t
out = {"steps": steps, "rate": steps * args["batch_size"] / seconds}
if args["guard"]:
    from monodepth2_geopt.trainer import total_norm
    batch = next(iter(trainer.train_loader))
    t = time.perf_counter()
    for _ in range(5):
        inputs, outputs, losses = trainer.train_step(batch)
    step = (time.perf_counter() - t) / 5
    grads = [p.grad for p in trainer.trainable_params if p.grad is not None]
    t = time.perf_counter()
    for _ in range(50):
        bool((torch.isfinite(losses["loss"].detach()) & torch.isfinite(total_norm(grads))).item())
    out.update(step_ms=1000 * step, guard_ms=1000 * (time.perf_counter() - t) / 50, params=len(grads))
print("RESULT " + json.dumps(out))
"""


def run(root: Path, data: Path, split: Path, args, guard: bool) -> dict:
    cfg = dict(height=args.height, width=args.width, batch_size=args.batch_size, threads=args.threads, guard=guard)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root), str(data), str(split), json.dumps(cfg)],
                          capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"error: the run in {root} failed:\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--roots", nargs="+", default=[str(common.ROOT)], help="checkouts to compare")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=192)
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--frames", type=int, default=26, help="frames per drive of the generated world (2 drives)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no_write", action="store_true")
    args = p.parse_args()
    from monodepth2_geopt.tools.experiments import prepare_synthetic
    data, split = prepare_synthetic(Path(tempfile.gettempdir()) / f"m2g_loop_{args.width}x{args.height}_{args.frames}",
                                    args.width, args.height, drives=2, frames=args.frames, seed=0)
    roots = [Path(r).resolve() for r in args.roots]
    rates = {r: [] for r in roots}
    guard = None
    for i in range(args.repeats):
        for root in roots:
            res = run(root, data, split, args, guard=(i == 0 and root == roots[0]))
            rates[root].append(res["rate"])
            if "guard_ms" in res:
                guard = res
            print(f"{root}: {res['steps']} steps, {res['rate']:.2f} ex/s", flush=True)
    rows = [[str(r) if len(roots) > 1 else "this checkout", args.repeats, round(statistics.mean(v), 2),
             round(statistics.stdev(v), 2) if len(v) > 1 else "n/a"] for r, v in rates.items()]
    body = (f"One epoch of the synthetic world ({args.width}x{args.height}, batch {args.batch_size}, M from scratch, "
            f"--num_workers 0, {args.threads} threads) through Trainer.train(); runs alternate between checkouts.\n\n"
            + common.table(["checkout", "runs", "ex/s mean", "sd"], rows))
    if guard:
        body += (f"\n\nNon-finite guard: {guard['guard_ms']:.2f} ms per step (total norm of {guard['params']} "
                 f"gradients + finiteness test + host read) against a {guard['step_ms']:.0f} ms step "
                 f"({100 * guard['guard_ms'] / guard['step_ms']:.2f} %).")
    print(body)
    if not args.no_write:
        common.write_section("Training loop throughput (CPU)", body, common.command_line())


if __name__ == "__main__":
    main()
