"""benchmarks/plot_results.py on a small fake RESULTS.md: which tables become which plots, PNGs written, one
"Plots:" line per plotted section, no other line changed, and a second run changes nothing."""
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

FAKE = """# Benchmark results

Written by the scripts in `benchmarks/`; rerun them to update.

## Pretext curves (CPU)

Machine: CPU. Date: 2026-12-01 10:00.
Command: `python benchmarks/bench_geopt.py --part pretext`

| recipe | step | train s | EPE (px) | zero-flow EPE | EPE / zero | Fl-all | direction cosine |
|---|---|---|---|---|---|---|---|
| default, seed 0 | 0 | 0 | 5.459 | 5.473 | 0.998 | 64.51 | 1 |
| default, seed 0 | 50 | 463 | 5.125 | 5.473 | 0.937 | 58.95 | 0.958 |
| default, seed 1 | 0 | 0 | 5.443 | 5.473 | 0.995 | n/a | 1 |
| default, seed 1 | 50 | 483 | 2.282 | 5.473 | 0.417 | n/a | -0.9 |

## Transfer with controls (M, 3 seeds)

Machine: GPU. Date: 2026-12-01 11:00.

| seed | pretraining | EPE / zero | latent sensitivity | direction cosine |
|---|---|---|---|---|
| 0 | geopt | 0.39 | 1.413 | -0.961 |
| 0 | zero_latent | 1.064 | 0.001 | 1 |
| 1 | geopt | 0.407 | 1.418 | -0.962 |
| 1 | zero_latent | 1.053 | 0.002 | 1 |

**M** (median-scaled abs_rel, lower is better)

| seed | scratch | geopt | zero_latent |
|---|---|---|---|
| 0 | 0.1965 | 0.1752 | 0.169 |
| 1 | 0.1884 | 0.1805 | not run |
| 2 | 0.1815 | 0.1749 | 0.1779 |
| mean ± sd | 0.1888 ± 0.0075 | 0.1769 ± 0.0031 | 0.1735 ± 0.0063 (n=2) |
| gain over scratch, paired | +0.0000 ± 0.0000 (0/3 better) | +0.0119 ± 0.0050 (3/3 better) | n/a |

## Training speed (CPU)

| mode | configuration | end-to-end ex/s |
|---|---|---|
| M | defaults | 3.9 |

## Decoder start, no mean row

| seed | abs_rel, start | abs_rel, init |
|---|---|---|
| 0 | 0.924 | 0.221 |
| 1 | 0.33 | 0.286 |
"""


@pytest.fixture
def plot_results(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    sys.modules.pop("plot_results", None)
    import plot_results
    return plot_results


def test_numbers_are_read_as_written(plot_results):
    n = plot_results.number
    assert n("0.5851 ± 0.0074") == 0.5851 and n("+0.0098 ± 0.0079 (4/5 better)") == 0.0098
    assert n("-0.961") == -0.961 and n("**2.358**") == 2.358 and n("1e-3") == 0.001
    assert n("n/a") is None and n("not run") is None and n("+8.3 / -19.2") is None and n("") is None


def test_tables_are_classified(plot_results):
    sections = plot_results.parse_results(FAKE)
    assert [s.title for s in sections] == ["Pretext curves (CPU)", "Transfer with controls (M, 3 seeds)",
                                           "Training speed (CPU)", "Decoder start, no mean row"]
    curves = sections[0].tables[0]
    # panels: EPE, EPE / zero, Fl-all, direction cosine; not the time, not the constant zero-flow EPE
    assert [curves.headers[c] for c in plot_results.curve_columns(curves)] == [
        "EPE (px)", "EPE / zero", "Fl-all", "direction cosine"]
    long, wide = sections[1].tables
    assert plot_results.is_long_seed_table(long) and not plot_results.is_wide_seed_table(long)
    assert plot_results.is_wide_seed_table(wide) and wide.caption.startswith("**M**")
    assert not any(plot_results.is_wide_seed_table(t) or plot_results.is_long_seed_table(t)
                   or plot_results.curve_columns(t) for s in sections[2:] for t in s.tables)


def test_plots_are_written_and_linked_once(plot_results, tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    results.write_text(FAKE)
    plot_results.main(["--results", str(results)])
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert [p.name for p in pngs] == ["pretext-curves-cpu.png", "transfer-with-controls-m-3-seeds_0_per_seed.png",
                                      "transfer-with-controls-m-3-seeds_m.png"]
    for p in pngs:
        with Image.open(p) as img:
            assert img.format == "PNG" and img.size[0] > 300 and img.size[1] > 200
    text = results.read_text()
    plot_lines = [ln for ln in text.splitlines() if ln.startswith("Plots: ")]
    assert len(plot_lines) == 2
    assert "(plots/pretext-curves-cpu.png)" in plot_lines[0] and "(plots/transfer-with-controls-m-3-seeds_m.png)" \
        in plot_lines[1]
    # the line sits right under its heading; nothing else changed
    lines = text.splitlines()
    assert lines[lines.index("## Pretext curves (CPU)") + 2] == plot_lines[0]
    kept = [ln for ln in lines if not ln.startswith("Plots: ")]
    original = FAKE.splitlines()
    assert [ln for ln in kept if ln] == [ln for ln in original if ln]
    assert "| 1 | 0.1884 | 0.1805 | not run |" in text
    # a second run changes nothing
    plot_results.main(["--results", str(results)])
    assert results.read_text() == text
    # a section whose plots disappear loses its line, and the file is the original again
    assert plot_results.with_plot_lines(text, [[] for _ in range(4)], tmp_path) == FAKE
