"""Shared helpers for the benchmark scripts: machine description, tables, RESULTS.md sections."""
from __future__ import annotations

import datetime
import os
import platform
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
if str(ROOT) not in sys.path:  # benchmarks run as `python benchmarks/x.py` from the repo root
    sys.path.insert(0, str(ROOT))


def machine() -> str:
    if torch.cuda.is_available():
        dev = f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    else:
        dev = f"CPU only ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    return f"{dev}; torch {torch.__version__}; Python {platform.python_version()}"


def table(headers: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def write_section(name: str, body: str, command: str) -> None:
    """Replace (or append) the section ``## name`` of RESULTS.md with the body, machine, date and command."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    section = (f"## {name}\n\nMachine: {machine()}. Date: {stamp}.\nCommand: `{command}`\n\n{body.strip()}\n")
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by the scripts in `benchmarks/`; rerun them to update.\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    RESULTS.write_text(text)


def command_line() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
