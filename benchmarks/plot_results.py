"""Plots of the experiment tables in benchmarks/RESULTS.md, written to benchmarks/plots/ and linked from RESULTS.md.

    python benchmarks/plot_results.py                      # all sections; refreshes the "Plots:" lines
    python benchmarks/plot_results.py --no_update          # only the PNGs
    python benchmarks/plot_results.py --results R.md --out_dir plots/

What is plotted (tables are read as they are; no number in RESULTS.md is changed):
- **Curves**: a table with a ``step`` column. One line per value of its first column (e.g. ``default, seed 0``;
  colour per recipe, line style per seed), one panel per numeric column that varies (EPE, Fl-all, latent
  sensitivity, direction cosine, losses, intrinsics, ...); times (``train s``, ``s``) are left out.
- **Seed scatter**: a table whose first column is ``seed`` and which has a ``mean ± sd`` row with a value in every
  column (the transfer benchmark: one point per seed and starting point, the mean of the plotted points as a bar),
  and a per-seed table with a category column (the pretext diagnostics per pretraining and seed: EPE / zero flow,
  latent sensitivity, direction cosine).
Other tables are not plotted. Each plotted section gets one line under its heading, ``Plots: [...](plots/x.png)``;
a later run replaces that line (a benchmark rewriting its section drops it: run this script again).
"""
from __future__ import annotations

import argparse
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import common

PLOTS_PREFIX = "Plots: "
TIME_COLUMNS = {"s", "train s", "time", "train time"}
PREFERRED_DIAGNOSTICS = ("EPE / zero", "latent sensitivity", "direction cosine")
_NUMBER = re.compile(r"^\**([+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\**(?:\s*±.*)?$")


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str | None = None  # a bold line just above the table, e.g. "**M** (median-scaled abs_rel, ...)"


@dataclass
class Section:
    title: str
    tables: list[Table] = field(default_factory=list)


def number(cell: str) -> float | None:
    """The value of a table cell: ``0.5851 ± 0.0074`` -> 0.5851, ``+0.01`` -> 0.01; None for text, ``n/a``,
    ``not run``, ranges (``+8 / -19``) and empty cells."""
    m = _NUMBER.match(cell.strip())
    return float(m.group(1)) if m else None


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_results(text: str) -> list[Section]:
    """The ``## `` sections of RESULTS.md with their markdown tables (header row, separator, rows)."""
    sections: list[Section] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            sections.append(Section(line[3:].strip()))
        elif (line.startswith("|") and sections and i + 1 < len(lines)
              and re.match(r"^\|(\s*:?-+:?\s*\|)+\s*$", lines[i + 1])):
            headers = _cells(line)
            rows, j = [], i + 2
            while j < len(lines) and lines[j].startswith("|"):
                rows.append(_cells(lines[j]))
                j += 1
            above = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            caption = above if above.startswith("**") else None
            sections[-1].tables.append(Table(headers, rows, caption))
            i = j
            continue
        i += 1
    return sections


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:70]


# ------------------------------------------------------------------------------------------ which plot
def curve_columns(table: Table) -> list[int]:
    """Columns worth a panel in a step table: numeric, not times, not constant."""
    if "step" not in table.headers:
        return []
    step = table.headers.index("step")
    keep = []
    for c, name in enumerate(table.headers):
        if c in (0, step) or name.lower() in TIME_COLUMNS:
            continue
        values = [number(r[c]) for r in table.rows if c < len(r)]
        values = [v for v in values if v is not None]
        if len(values) >= 2 and max(values) > min(values):
            keep.append(c)
    return keep


def seed_rows(table: Table) -> list[list[str]]:
    return [r for r in table.rows if r and r[0].strip().isdigit()]


def is_wide_seed_table(table: Table) -> bool:
    """Seeds as rows, starting points as columns, a ``mean ± sd`` row with a value (or "not run") in every column."""
    if not table.headers or table.headers[0].lower() != "seed" or len(table.headers) < 3:
        return False
    mean = next((r for r in table.rows if r and r[0].lower().startswith("mean")), None)
    if mean is None or len(seed_rows(table)) < 2:
        return False
    cells = mean[1:len(table.headers)]
    return all(number(c) is not None or c.lower() in ("not run", "n/a") for c in cells) and \
        sum(number(c) is not None for c in cells) >= 2


def is_long_seed_table(table: Table) -> bool:
    """Seed, a category column (e.g. the pretraining), then numbers: one row per (seed, category)."""
    rows = seed_rows(table)
    if not table.headers or table.headers[0].lower() != "seed" or len(table.headers) < 3 or len(rows) < 2:
        return False
    categories = {r[1] for r in rows}
    return all(number(r[1]) is None for r in rows) and 1 < len(categories) < len(rows)


# ------------------------------------------------------------------------------------------ drawing
def _figure(n_panels: int, width_per: float = 4.2, height: float = 3.2):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, n_panels)
    rows = math.ceil(n_panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width_per * cols, height * rows), squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return plt, fig, list(axes.flat[:n_panels])


def _save(plt, fig, path: Path) -> Path:
    from monodepth2_geopt.fileio import atomic_path

    if not fig.get_layout_engine():
        fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path


def plot_curves(table: Table, title: str, path: Path) -> Path:
    """One panel per ``curve_columns`` column against ``step``; one line per first-column value."""
    step = table.headers.index("step")
    columns = curve_columns(table)
    plt, fig, axes = _figure(len(columns))
    series: dict[str, list[list[str]]] = {}
    for r in table.rows:
        if len(r) > step and number(r[step]) is not None:
            series.setdefault(r[0] if step != 0 else "", []).append(r)
    recipes = list(dict.fromkeys(label.split(", seed")[0] for label in series))
    colours = plt.get_cmap("tab10")
    styles = ["-", "--", ":", "-."]
    for ax, c in zip(axes, columns):
        for k, (label, rows) in enumerate(series.items()):
            pts = [(number(r[step]), number(r[c])) for r in rows if c < len(r) and number(r[c]) is not None]
            if not pts:
                continue
            recipe = label.split(", seed")[0]
            seed = label.split(", seed")[1].strip() if ", seed" in label else ""
            style = styles[int(seed) % len(styles)] if seed.isdigit() else "-"
            ax.plot(*zip(*pts), marker="o", markersize=3, linestyle=style,
                    color=colours(recipes.index(recipe) % 10), label=label or None)
        ax.set_xlabel("step")
        ax.set_ylabel(table.headers[c])
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    if any(series):  # a table without a label column has one unnamed line
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center right", fontsize=6)
        fig.tight_layout(rect=(0, 0, 0.86, 1))
    return _save(plt, fig, path)


def plot_wide_seeds(table: Table, title: str, path: Path) -> Path:
    """One point per (seed, column); a bar at the mean of the plotted points of each column."""
    rows = seed_rows(table)
    names = table.headers[1:]
    plt, fig, (ax,) = _figure(1, width_per=1.2 * len(names) + 2.5, height=3.6)
    colours = plt.get_cmap("tab10")
    for k, r in enumerate(rows):
        xs = [j for j in range(len(names)) if j + 1 < len(r) and number(r[j + 1]) is not None]
        ax.scatter([x + 0.06 * (k - len(rows) / 2) for x in xs], [number(r[j + 1]) for j in xs], s=22,
                   color=colours(k % 10), label=f"seed {r[0]}", zorder=3)
    for j in range(len(names)):
        vals = [number(r[j + 1]) for r in rows if j + 1 < len(r) and number(r[j + 1]) is not None]
        if vals:
            mean = sum(vals) / len(vals)
            ax.hlines(mean, j - 0.3, j + 0.3, color="black", linewidth=1.5, zorder=2)
            ax.annotate(f"{mean:.4g} (n={len(vals)})", (j, mean), xytext=(0, 4), textcoords="offset points",
                        ha="center", fontsize=6)
    ax.set_xticks(range(len(names)), names, fontsize=7, rotation=15)
    ax.set_ylabel(_value_label(table))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=6)
    ax.set_title((title + (" | " + table.caption.replace("*", "") if table.caption else ""))[:120], fontsize=8)
    return _save(plt, fig, path)


def plot_long_seeds(table: Table, title: str, path: Path) -> Path:
    """The preferred diagnostics (or the first three numeric columns) per category, one point per seed."""
    rows = seed_rows(table)
    numeric = [c for c in range(2, len(table.headers)) if any(number(r[c]) is not None for r in rows if c < len(r))]
    chosen = [table.headers.index(n) for n in PREFERRED_DIAGNOSTICS if table.headers.index(n) in numeric] \
        if all(n in table.headers for n in PREFERRED_DIAGNOSTICS) else numeric[:3]
    categories = list(dict.fromkeys(r[1] for r in rows))
    seeds = list(dict.fromkeys(r[0] for r in rows))
    plt, fig, axes = _figure(len(chosen), width_per=1.0 * len(categories) + 2.2)
    colours = plt.get_cmap("tab10")
    for ax, c in zip(axes, chosen):
        for k, seed in enumerate(seeds):
            pts = [(categories.index(r[1]) + 0.06 * (k - len(seeds) / 2), number(r[c])) for r in rows
                   if r[0] == seed and c < len(r) and number(r[c]) is not None]
            if pts:
                ax.scatter(*zip(*pts), s=18, color=colours(k % 10), label=f"seed {seed}")
        values = [number(r[c]) for r in rows if c < len(r) and number(r[c]) is not None]
        if values and min(values) > 0 and max(values) / min(values) > 20:
            ax.set_yscale("log")  # e.g. EPE / zero flow: 0.4 for GeoPt, 18 for a control that diverged
        ax.set_xticks(range(len(categories)), categories, fontsize=7, rotation=15)
        ax.set_ylabel(table.headers[c])
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    return _save(plt, fig, path)


def _value_label(table: Table) -> str:
    if table.caption:
        m = re.search(r"\(([^)]*)\)", table.caption)
        if m:
            return m.group(1).split(",")[0]
    return "value"


def plot_section(section: Section, out_dir: Path) -> list[tuple[str, Path]]:
    """(description, PNG path) of every plot of one section."""
    made, base = [], slug(section.title)
    for t, table in enumerate(section.tables):
        suffix = "" if len(section.tables) == 1 else f"_{t}"
        if curve_columns(table):
            made.append(("curves", plot_curves(table, section.title, out_dir / f"{base}{suffix}.png")))
        elif is_wide_seed_table(table):
            bold = table.caption.split("**")[1] if table.caption and table.caption.count("**") >= 2 else ""
            name = f"{base}_{slug(bold)}.png" if bold else f"{base}{suffix}.png"
            made.append((f"{bold} seeds".strip(), plot_wide_seeds(table, section.title, out_dir / name)))
        elif is_long_seed_table(table):
            made.append(("diagnostics per seed", plot_long_seeds(table, section.title,
                                                                 out_dir / f"{base}{suffix}_per_seed.png")))
    return made


# ------------------------------------------------------------------------------------------ RESULTS.md
def with_plot_lines(text: str, plots: list[list[tuple[str, Path]]], results_dir: Path) -> str:
    """``text`` with one ``Plots:`` line (after a blank line) right under the heading of each section that has
    plots; ``plots[k]`` belongs to the k-th ``## `` section. Earlier ``Plots:`` lines go, with the blank line
    before them; every other line is kept as it is, so running this twice changes nothing."""
    out: list[str] = []
    k = -1
    for line in text.splitlines():
        if line.startswith(PLOTS_PREFIX) and k >= 0:
            if out and out[-1] == "":
                out.pop()
            continue
        out.append(line)
        if line.startswith("## "):
            k += 1
            if k < len(plots) and plots[k]:
                links = ", ".join(f"[{what}]({Path(os.path.relpath(p, results_dir)).as_posix()})"
                                  for what, p in plots[k])
                out += ["", f"{PLOTS_PREFIX}{links} (`python benchmarks/plot_results.py`)"]
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(common.RESULTS), help="the RESULTS.md to read (default: this repo's)")
    p.add_argument("--out_dir", default=None, help="folder for the PNGs (default: plots/ beside --results)")
    p.add_argument("--no_update", action="store_true", help="write the PNGs only; leave RESULTS.md as it is")
    a = p.parse_args(argv)
    from monodepth2_geopt.errors import InputError

    results = Path(a.results)
    if not results.is_file():
        raise InputError(f"--results {results} does not exist")
    out_dir = Path(a.out_dir) if a.out_dir else results.parent / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    with common.locked(results):  # benchmark processes replace their sections under the same lock
        text = results.read_text()
        sections = parse_results(text)
        plots = [plot_section(s, out_dir) for s in sections]
        if not a.no_update:
            new = with_plot_lines(text, plots, results.parent)
            if new != text:
                common.atomic_write_text(results, new)
    n, m = sum(len(v) for v in plots), sum(bool(v) for v in plots)
    print(f"{n} plots of {m} sections in {out_dir}" + ("" if a.no_update else f"; linked from {results}"))
    for section, made in zip(sections, plots):
        for what, path in made:
            print(f"  {path.name}: {section.title} ({what})")


if __name__ == "__main__":
    from monodepth2_geopt.errors import run_cli
    run_cli(main)
