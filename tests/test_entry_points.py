"""The one entry-point contract of the scripts: ``main()`` parses, builds and calls the library, ``run_cli(main)``
runs it; bad input is one line on stderr and exit status 2, before any long work."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import run_script

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in REPO.glob("*.py") if p.name != "hubconf.py")  # hubconf.py: torch.hub's, not a script


def test_every_script_has_main_and_runs_it_through_run_cli():
    assert len(SCRIPTS) >= 12, SCRIPTS
    for name in SCRIPTS:
        tree = ast.parse((REPO / name).read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), f"{name}: no main()"
        guard = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
        assert guard and ast.unparse(guard[0].body[0]).strip() == "run_cli(main)", \
            f"{name}: the __main__ block must be run_cli(main)"
        assert "sys.exit(" not in (REPO / name).read_text(), f"{name}: exits itself instead of through run_cli"


def bad_inputs(tmp: Path) -> list[tuple[str, list, str]]:
    """(script, arguments with one bad input, a word the one-line error must contain)."""
    missing = tmp / "missing"
    return [
        ("train.py", ["--data_path", missing, "--split", missing, "--log_dir", tmp, "--num_workers", 0], "missing"),
        ("pretrain_flow.py", ["--data_path", missing, "--log_dir", tmp, "--num_workers", 0], "missing"),
        ("evaluate_depth.py", ["--load_weights_folder", missing, "--eval_mono", "--eval_split", missing], "missing"),
        ("evaluate_pose.py", ["--load_weights_folder", missing, "--eval_split", "odom_9"], "split"),
        ("evaluate_flow.py", ["--load_weights_folder", missing, "--data_path", missing], "--flow_eval_path"),
        ("export_gt_depth.py", ["--data_path", missing, "--split", missing], "missing"),
        ("make_split.py", ["--data_path", missing, "--out_dir", tmp / "split"], "missing"),
        ("prepare_cache.py", ["--data_path", missing, "--split", missing, "--image_cache", tmp / "c"], "missing"),
        ("test_simple.py", ["--image_path", missing, "--load_weights_folder", missing], "missing"),
        ("extract_frames.py", [missing, "--out_dir", tmp / "frames"], "missing"),
        ("generate_synthetic.py", ["--out_dir", tmp / "world", "--num_drives", 0], "num_drives"),
        ("train.py", ["--learning_rate", "-1"], "--learning_rate"),
    ]


@pytest.mark.parametrize("case", range(12))
def test_bad_input_is_one_line_and_exit_status_2(case, tmp_path, capsys):
    script, args, word = bad_inputs(tmp_path)[case]
    code, err = run_script(capsys, script, *args)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (script, code, lines)
    assert len(lines) == 1 and lines[0].startswith("error: ") and word in lines[0], (script, lines)


def test_output_folders_share_one_flag_name_and_keep_the_old_ones():
    """--out_dir everywhere a script writes a folder; the earlier names (--out, --output_dir, --dest) still parse."""
    for name, old in (("extract_frames.py", "--out"), ("test_simple.py", "--output_dir"),
                      ("download_splits.py", "--dest"), ("make_split.py", None), ("generate_synthetic.py", None),
                      ("run_demo.py", None)):
        text = (REPO / name).read_text()
        assert '"--out_dir"' in text, name
        if old:
            assert f'"{old}"' in text, name
