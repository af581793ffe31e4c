"""run_demo.py's output, with the steps faked (the real demo takes minutes): the trainings show a progress bar,
throttled when the output is not a terminal; the run's numerics flags are unchanged; the summary states the disk
space the demo folder uses."""
import subprocess
from pathlib import Path

from monodepth2_geopt.tools import demo


def test_disk_usage_by_hand(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "adam.pth").write_bytes(b"x" * 1500)
    (tmp_path / "world").mkdir()
    (tmp_path / "world" / "f.png").write_bytes(b"x" * 200)
    (tmp_path / "runs" / "link").symlink_to(tmp_path / "world" / "f.png")  # not counted twice
    assert demo.disk_usage(tmp_path) == 1700 and demo.disk_usage(tmp_path / "missing") == 0
    assert demo.format_bytes(1700) == "1.7 kB" and demo.format_bytes(999) == "999 B"
    assert demo.format_bytes(1_900_000_000) == "1.9 GB"
    assert demo.disk_summary(tmp_path).endswith("uses 1.7 kB on disk (runs/ 1.5 kB, world/ 200 B)")


def test_demo_steps_show_progress_without_changing_the_runs(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_run(cmd, cwd=None, env=None):
        calls.append((cmd, env))
        args = cmd[2:]
        out = Path(args[args.index("--out_dir") + 1]) if "--out_dir" in args else None
        if cmd[1] == "generate_synthetic.py" and "--video" not in args:
            (out / "splits").mkdir(parents=True)
            (out / "splits" / "test_files.txt").write_text("2000_01_01/2000_01_01_drive_0004_sync 0 l\n")
        elif cmd[1] == "generate_synthetic.py":
            (out / "seq_000").mkdir(parents=True)
        elif cmd[1] in ("pretrain_flow.py", "train.py"):
            name = args[args.index("--model_name") + 1]
            folder = Path(args[args.index("--log_dir") + 1]) / name / "models" / "weights_0"
            folder.mkdir(parents=True)
            (folder / "adam.pth").write_bytes(b"x" * 2000)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(demo.subprocess, "run", fake_run)
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    monkeypatch.delenv("TQDM_MAXINTERVAL", raising=False)
    demo.run_demo(tmp_path / "demo")
    trainings = [(cmd, env) for cmd, env in calls if cmd[1] in ("pretrain_flow.py", "train.py")]
    assert len(trainings) == 2
    for cmd, env in trainings:
        assert "--no_progress" not in cmd  # the progress bar is on ...
        # ... and throttled: pytest's stderr is no tty
        assert env["TQDM_MININTERVAL"] == env["TQDM_MAXINTERVAL"] == str(demo.QUIET_BAR_INTERVAL)
        i = cmd.index("--log_frequency")
        assert cmd[i + 1] == "50" and cmd[cmd.index("--seed") + 1] == "0"  # the runs themselves are as before
        assert cmd[cmd.index("--num_threads") + 1] == "1"  # pinned: the result depends on the thread count
    out = capsys.readouterr().out
    assert "uses 4.0 kB on disk (runs/ 4.0 kB, world/" in out
