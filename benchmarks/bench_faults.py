"""Kill harness: ``train.py`` killed with SIGKILL at random moments, resumed each time with ``--resume last``.

    python benchmarks/bench_faults.py                 # 5 trials, up to 3 kills each (CPU, a few minutes)

Every trial trains the same 2-epoch run (synthetic world, 96x64, batch 2, seeded, --num_workers 0,
--save_every_steps 2, so many kills fall into or near a save). After every kill the run folder is checked: every
checkpoint folder must load (every .pth with weights_only, every float finite) and no half-written folder may be
taken for a checkpoint; then the run is resumed. At the end its final weights are compared, bit for bit, with an
uninterrupted run of the same command. The table lists what happened, whatever it shows.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import torch

from monodepth2_geopt import checkpoint
from monodepth2_geopt.tools.experiments import prepare_synthetic


def train_py(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(common.ROOT))
    return subprocess.Popen([sys.executable, str(common.ROOT / "train.py"), *args], env=env, cwd=common.ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def check_folder(run: Path) -> tuple[int, int, int]:
    """(checkpoint folders that load and are finite, folders that do not, hidden temporary folders)."""
    good = bad = 0
    models = run / "models"
    for folder in checkpoint.checkpoint_folders(models):
        try:
            ts = checkpoint.folder_tensors(folder)
            if (folder / "trainer_state.pth").is_file():
                checkpoint.read_trainer_state(folder)
            ok = all(torch.isfinite(t).all() for t in ts.values() if t.is_floating_point()) and ts
        except Exception:  # noqa: BLE001  (any failure to load is what this harness counts)
            ok = False
        good, bad = good + bool(ok), bad + (not ok)
    hidden = sum(1 for p in models.iterdir() if p.name.startswith(".")) if models.is_dir() else 0
    return good, bad, hidden


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--max_kills", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no_write", action="store_true")
    args = p.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="m2g_faults_"))
    data, split = prepare_synthetic(work / "world", 96, 64, drives=2, frames=10, seed=0)
    base = ["--data_path", str(data), "--split", str(split), "--png", "--height", "64", "--width", "96",
            "--batch_size", "2", "--num_workers", "0", "--weights_init", "scratch", "--no_progress", "--seed", "0",
            "--no_cuda", "--num_epochs", "2", "--log_frequency", "4", "--save_every_steps", "2",
            "--log_dir", str(work / "runs")]
    start = time.time()
    ref = train_py(base + ["--model_name", "reference"])
    out, _ = ref.communicate()
    if ref.returncode != 0:
        raise SystemExit(f"error: the reference run failed:\n{out[-2000:]}")
    duration = time.time() - start
    reference = checkpoint.folder_tensors(work / "runs/reference/models/weights_1")
    rows, totals = [], dict(kills=0, checks=0, bad=0, identical=0)
    for trial in range(args.trials):
        name = f"trial{trial}"
        run = work / "runs" / name
        kills, good_seen, bad_seen, hidden_seen, resumes = 0, 0, 0, 0, 0
        proc = train_py(base + ["--model_name", name])
        while True:
            if kills < args.max_kills:
                try:
                    proc.wait(timeout=rng.uniform(0.2, 0.9) * duration)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
            proc.communicate()
            if proc.returncode == 0:
                break
            good, bad, hidden = check_folder(run)
            good_seen, bad_seen, hidden_seen = good_seen + good, bad_seen + bad, hidden_seen + hidden
            resumable = any((f / "trainer_state.pth").is_file() for f in checkpoint.checkpoint_folders(run / "models"))
            proc = train_py(base + ["--model_name", name] + (["--resume", "last"] if resumable else []))
            resumes += resumable
        final = checkpoint.folder_tensors(run / "models/weights_1")
        identical = final.keys() == reference.keys() and all(torch.equal(final[k], reference[k]) for k in final)
        rows.append([trial, kills, resumes, good_seen, bad_seen, hidden_seen, "yes" if identical else "NO"])
        print(rows[-1], flush=True)
        totals["kills"] += kills
        totals["checks"] += good_seen + bad_seen
        totals["bad"] += bad_seen
        totals["identical"] += identical
    body = ("`train.py` (synthetic world 96x64, batch 2, 2 epochs of 7 steps, seed 0, --num_workers 0, "
            "--save_every_steps 2) killed with SIGKILL at uniformly random moments (0.2-0.9 of a run's length after "
            "each start), then resumed with --resume last; after every kill every checkpoint folder is loaded "
            "(weights_only, all values finite).\n\n"
            + common.table(["trial", "SIGKILLs", "resumes", "checkpoint folders loaded after kills",
                            "folders that failed to load", "hidden temp folders left by a kill (cleaned at the "
                            "next start)", "final weights bit-identical to the uninterrupted run"], rows)
            + f"\n\nTotal: {totals['kills']} kills, {totals['checks']} checkpoint-folder checks, {totals['bad']} "
              f"failed; {totals['identical']} of {args.trials} resumed runs bit-identical.")
    print(body)
    import shutil
    shutil.rmtree(work, ignore_errors=True)  # ~1 GB of checkpoints per trial
    if not args.no_write:
        common.write_section("Fault harness: SIGKILL and resume (CPU)", body, common.command_line())


if __name__ == "__main__":
    main()
