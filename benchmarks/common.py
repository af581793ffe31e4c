"""Shared helpers for the benchmark scripts: machine description, tables, RESULTS.md sections."""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import platform
import re
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
if str(ROOT) not in sys.path:  # benchmarks run as `python benchmarks/x.py` from the repo root
    sys.path.insert(0, str(ROOT))

from monodepth2_geopt.fileio import atomic_write_text  # noqa: E402  (needs ROOT on sys.path)


def cpu_model() -> str:
    """The CPU's model name and the vector instructions PyTorch uses on it ("AMD EPYC, AVX2"): float results of
    the same seed differ between CPUs that differ here (the order of sums in the kernels)."""
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}"


def machine() -> str:
    if torch.cuda.is_available():
        dev = f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    else:
        dev = f"CPU only ({os.cpu_count()} cores, {platform.machine()}, {cpu_model()})"
    return f"{dev}; torch {torch.__version__}; Python {platform.python_version()}"


def table(headers: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def machines_of(runs) -> str:
    """RESULTS.md's Machine line for a table of cached runs: the machines they were made on (each run's "machine",
    "not recorded" where it has none), not the machine that writes the table."""
    hosts = sorted({r.get("machine", "not recorded") for r in runs})
    return hosts[0] if len(hosts) == 1 else "runs from " + " / ".join(hosts)


def mean_sd(values, fmt: str = ".4f") -> str:
    """'mean ± sd' (sample sd, over seeds) of the measured values, ``fmt`` for both (the sd without a sign);
    None = not run: counted as "(n=k)", and "not run" when nothing was. One value says it has no spread."""
    values = list(values)
    vals = [v for v in values if v is not None]
    if not vals:
        return "not run"
    missing = f" (n={len(vals)})" if len(vals) < len(values) else ""
    if len(vals) == 1:
        return f"{vals[0]:{fmt}} (one seed: no spread)" + missing
    return f"{statistics.mean(vals):{fmt}} ± {statistics.stdev(vals):{fmt.lstrip('+ ')}}" + missing


def write_section(name: str, body: str, command: str, measured_on: str | None = None) -> None:
    """Replace (or append) the section ``## name`` of RESULTS.md with the body, machine, date and command."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    section = (f"## {name}\n\nMachine: {measured_on or machine()}. Date: {stamp}.\nCommand: `{command}`\n\n{body.strip()}\n")
    with locked(RESULTS):  # benchmark processes running side by side each replace their own section
        text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by the scripts in `benchmarks/`; rerun them to update.\n"
        pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
        text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
        atomic_write_text(RESULTS, text)


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on ``<path>.lock`` (read-modify-write of a file shared by processes)."""
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def update_json(path: Path, key: str, value) -> None:
    """Set one key of a JSON cache that several benchmark processes may update at once."""
    with locked(path):
        data = read_json(path)
        data[key] = value
        atomic_write_text(path, json.dumps(data, indent=1))


def command_line() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
