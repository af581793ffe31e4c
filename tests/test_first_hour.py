"""What a new user meets in the first hour: ImageNet weights fetched as torchvision fetches them (served here by a
local HTTP server, never the internet), every precondition reported in one message, each script's own --help,
console commands, default paths outside site-packages, --keep_last, --num_threads, warnings that are one line,
one metrics file per evaluation protocol, "not a video", and the speed benchmark's manners."""
from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import os
import sys
import threading
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from monodepth2_geopt import checkpoint, errors, evaluation, paths, utils
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.networks import resnet_encoder
from monodepth2_geopt.options import SCRIPT_OPTIONS, MonodepthOptions

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------------- ImageNet
@contextlib.contextmanager
def serve(folder: Path):
    """A local HTTP server for ``folder``: yields (base URL, list of requested paths)."""
    requested = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(folder), **kw)

        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()


def fake_weights(folder: Path, hash_prefix: str | None = None) -> tuple[str, dict]:
    """A small state dict saved as ``resnet18-<sha256 prefix>.pth`` in torchvision's naming (a wrong prefix
    if given); returns (file name, state)."""
    state = {"conv1.weight": torch.arange(6.0).reshape(1, 1, 2, 3)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    name = f"resnet18-{hash_prefix or hashlib.sha256(data).hexdigest()[:8]}.pth"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return name, state


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch cache (TORCH_HOME) with downloads allowed (conftest forbids them everywhere else)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(resnet_encoder.OFFLINE_ENV, raising=False)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def test_imagenet_weights_are_downloaded_once_into_the_torch_cache(tmp_path, torch_home, monkeypatch, capsys):
    name, state = fake_weights(tmp_path / "server")
    with serve(tmp_path / "server") as (base, requested):
        monkeypatch.setattr(resnet_encoder, "imagenet_url", lambda n: f"{base}/{name}")
        assert resnet_encoder.ensure_imagenet_weights(18) == str(torch_home / name)  # torchvision's cache path
        loaded = resnet_encoder.imagenet_state_dict(18)  # cached now: no second request
    assert requested == [f"/{name}"]
    torch.testing.assert_close(loaded["conv1.weight"], state["conv1.weight"])
    assert f'Downloading: "{base}/{name}" to {torch_home / name}' in capsys.readouterr().out  # torch.hub's line


def test_a_download_with_the_wrong_hash_is_refused_and_not_kept(tmp_path, torch_home, monkeypatch):
    name, _ = fake_weights(tmp_path / "server", hash_prefix="00000000")  # the name promises another file
    with serve(tmp_path / "server") as (base, _):
        monkeypatch.setattr(resnet_encoder, "imagenet_url", lambda n: f"{base}/{name}")
        with pytest.raises(InputError, match="SHA-256") as err:
            resnet_encoder.ensure_imagenet_weights(18)
    assert "\n" not in str(err.value) and "--weights_init scratch" in str(err.value)
    assert not torch_home.exists() or not any(torch_home.iterdir())


def test_offline_names_the_file_the_cache_and_scratch(tmp_path, torch_home, monkeypatch):
    with serve(tmp_path) as (base, _):
        pass  # the port is closed again: connection refused, as on a machine without network
    monkeypatch.setattr(resnet_encoder, "imagenet_url", lambda n: f"{base}/resnet18-f37072fd.pth")
    with pytest.raises(InputError) as err:
        resnet_encoder.ensure_imagenet_weights(18)
    msg = str(err.value)
    assert "\n" not in msg and "could not be downloaded" in msg
    assert str(torch_home / "resnet18-f37072fd.pth") in msg and f"{base}/resnet18-f37072fd.pth" in msg
    assert "--weights_init scratch" in msg


def test_m2g_offline_never_touches_the_network(torch_home, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("downloaded although M2G_OFFLINE=1")

    monkeypatch.setenv(resnet_encoder.OFFLINE_ENV, "1")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(InputError, match="M2G_OFFLINE=1 forbids") as err:
        resnet_encoder.ensure_imagenet_weights(34)
    assert "resnet34" in str(err.value) and "--weights_init scratch" in str(err.value)


# ---------------------------------------------------------------------------------------------------- preconditions
def train_args(tmp_path, *extra):
    return ["--data_path", str(tmp_path / "no_data"), "--split", str(tmp_path / "no_split"), "--log_dir",
            str(tmp_path / "log"), "--num_workers", "0", "--height", "64", "--width", "96", "--no_progress", *extra]


def test_every_failed_precondition_is_reported_in_one_message(tmp_path, monkeypatch):
    """Missing data folder, missing split folder and ImageNet weights that cannot be fetched: one InputError naming
    all three, before any network is built; without ImageNet (scratch) the same minus one."""
    from monodepth2_geopt.depth_task import depth_trainer

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))  # conftest: M2G_OFFLINE=1
    with pytest.raises(InputError) as err:
        depth_trainer(MonodepthOptions().parse(train_args(tmp_path)))
    msg = str(err.value)
    assert msg.startswith("3 problems, found before starting: (1) --data_path") and "\n" not in msg
    assert str(tmp_path / "no_data") in msg and msg.count(str(tmp_path / "no_split")) == 1  # once, not per list
    assert "(3) ImageNet weights for ResNet-18" in msg
    with pytest.raises(InputError) as err:
        depth_trainer(MonodepthOptions().parse(train_args(tmp_path, "--weights_init", "scratch")))
    assert str(err.value).startswith("2 problems") and "ImageNet" not in str(err.value)
    split = tmp_path / "empty_split"  # a split folder without its lists: both named
    split.mkdir()
    with pytest.raises(InputError) as err:
        depth_trainer(MonodepthOptions().parse(train_args(tmp_path, "--weights_init", "scratch", "--split",
                                                          str(split))))
    assert str(split / "train_files.txt") in str(err.value) and str(split / "val_files.txt") in str(err.value)


def test_a_missing_split_and_offline_imagenet_come_together(kitti_tiny, tmp_path, monkeypatch):
    from monodepth2_geopt.depth_task import depth_trainer

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    args = ["--data_path", str(kitti_tiny.root), "--split", "no_such_split", "--png", "--log_dir", str(tmp_path),
            "--num_workers", "0", "--height", "64", "--width", "96"]
    with pytest.raises(InputError) as err:
        depth_trainer(MonodepthOptions().parse(args))
    msg = str(err.value)
    assert msg.startswith("2 problems") and "no_such_split" in msg and "resnet18" in msg


# ---------------------------------------------------------------------------------------------------- --help
def help_text(module: str, capsys) -> str:
    import importlib
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(f"monodepth2_geopt.cli.{module}").main(["--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def flags(text: str) -> set[str]:
    return {word.rstrip(",") for word in text.split() if word.startswith("--")}


def test_each_script_shows_its_own_options_with_defaults(capsys):
    flow = help_text("evaluate_flow", capsys)
    assert {"--flow_eval_path", "--json", "--load_weights_folder", "--no_cuda"} <= flags(flow)
    assert not {"--pose_model_type", "--disable_automasking", "--use_stereo", "--eval_mono", "--learning_rate",
                "--disparity_smoothness"} & flags(flow)
    depth = help_text("evaluate_depth", capsys)
    assert {"--eval_mono", "--eval_stereo", "--align", "--data_path", "--post_process"} <= flags(depth)
    assert not {"--flow_eval_path", "--latent_dim", "--json", "--pose_model_type", "--learning_rate"} & flags(depth)
    assert "(default: median)" in depth and "(default: eigen)" in depth  # --align, --eval_split
    train = help_text("train", capsys)
    assert "(default: separate_resnet)" in train and "(default: pretrained)" in train and "--keep_last" in train
    assert not {"--eval_mono", "--flow_eval_path", "--latent_dim"} & flags(train)
    pretrain = help_text("pretrain_flow", capsys)
    assert "--latent_dim" in pretrain and "(default: scratch)" in pretrain  # GeoPt's own default
    assert not {"--json", "--flow_eval_max", "--pose_model_type", "--eval_mono"} & flags(pretrain)
    assert "(default: False)" not in train + depth + flow and "(default: None)" not in train + depth + flow
    extract = help_text("extract_frames", capsys)
    assert "(default: 95)" in extract  # --jpeg_quality: scripts with their own parser show defaults too


def test_a_flag_the_script_does_not_show_is_refused(capsys):
    from monodepth2_geopt.cli import evaluate_flow
    with pytest.raises(SystemExit) as exit_info:
        evaluate_flow.main(["--pose_model_type", "posecnn"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --pose_model_type" in capsys.readouterr().err


def test_every_script_namespace_holds_every_option():
    """Library code reads any option (e.g. evaluation reads opt.dataset): a script's hidden options keep their
    defaults, the task's own (pretrain_flow: weights_init scratch) included."""
    full = vars(MonodepthOptions().parse([]))
    for script in SCRIPT_OPTIONS:
        task = "flow" if script in ("pretrain_flow", "evaluate_flow") else "depth"
        ns = vars(MonodepthOptions(script=script, task=task).parse([]))
        assert set(ns) == set(full), script
        assert ns == vars(MonodepthOptions(task=task).parse([])), script


# ---------------------------------------------------------------------------------------------------- commands
def test_console_commands_run_the_flat_scripts_programs():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"m2g-train", "m2g-pretrain", "m2g-evaluate", "m2g-infer"} <= set(scripts)
    assert {c: f"monodepth2_geopt.cli.{f[:-3]}:run" for f, c in paths.CONSOLE_COMMANDS.items()} == scripts
    import importlib
    for command, target in scripts.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), command
        flat = ROOT / f"{module.rsplit('.', 1)[1]}.py"
        assert flat.is_file(), (command, flat)
        text = flat.read_text()
        assert f"from {module} import main" in text or f"from monodepth2_geopt.cli import {flat.stem}" in text


def test_project_root_is_m2g_home_else_the_clone_else_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    assert paths.project_root() == ROOT  # a clone
    monkeypatch.setattr(paths, "PACKAGE_DIR", tmp_path / "site-packages" / "monodepth2_geopt")
    monkeypatch.chdir(tmp_path)
    assert paths.project_root() == tmp_path and paths.splits_dir() == tmp_path / "splits"  # installed
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "home"))
    assert paths.default_data_path() == tmp_path / "home" / "kitti_data"


# ---------------------------------------------------------------------------------------------------- checkpoints
def test_keep_last_deletes_only_older_weights_folders(tmp_path):
    models = tmp_path / "models"
    for name in ("weights_0", "weights_1", "weights_2", "weights_10", "last", "notes"):
        (models / name).mkdir(parents=True)
    assert checkpoint.prune_weights_folders(models, 0) == []  # 0 keeps all (Monodepth2)
    deleted = checkpoint.prune_weights_folders(models, 2)
    assert [p.name for p in deleted] == ["weights_0", "weights_1"]  # by epoch number, not by name
    assert sorted(p.name for p in models.iterdir()) == ["last", "notes", "weights_10", "weights_2"]
    checkpoint.prune_weights_folders(models, 1)
    assert sorted(p.name for p in models.iterdir()) == ["last", "notes", "weights_10"]


def test_training_with_keep_last_keeps_the_newest_epochs(kitti_tiny, tmp_path):
    from monodepth2_geopt.depth_task import depth_trainer

    args = ["--data_path", str(kitti_tiny.root), "--split", str(kitti_tiny.split), "--png", "--num_workers", "0",
            "--no_progress", "--log_dir", str(tmp_path), "--weights_init", "scratch", "--batch_size", "2",
            "--height", "64", "--width", "96", "--num_epochs", "3", "--keep_last", "2", "--save_every_steps", "0",
            "--use_stereo", "--frame_ids", "0", "--scales", "0"]  # S: no pose network, the smallest checkpoints
    depth_trainer(MonodepthOptions().parse(args)).train()
    assert sorted(p.name for p in (tmp_path / "mdp" / "models").iterdir() if p.is_dir()) == ["weights_1", "weights_2"]
    with pytest.raises(InputError, match="--keep_last -1"):
        depth_trainer(MonodepthOptions().parse(args + ["--keep_last", "-1", "--model_name", "x"]))


# ---------------------------------------------------------------------------------------------------- CPU threads
def test_num_threads_wins_and_the_automatic_default_respects_omp(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert utils.configure_cpu_threads(3) == 3
        torch.set_num_threads(4)
        monkeypatch.setattr(utils, "free_cpu_cores", lambda num_workers=0: 1)
        monkeypatch.setenv("OMP_NUM_THREADS", "4")
        assert utils.configure_cpu_threads(None, auto=True) == 4  # the user's OMP_NUM_THREADS is kept
        assert utils.configure_cpu_threads(None, auto=False) == 4  # library calls leave it alone
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert utils.configure_cpu_threads(None, auto=True) == 1  # an oversubscribed machine: the free core
        monkeypatch.setattr(utils, "free_cpu_cores", lambda num_workers=0: 64)
        torch.set_num_threads(2)
        assert utils.configure_cpu_threads(None, auto=True) == 2  # never more than PyTorch's own default
        with pytest.raises(InputError, match="--num_threads 0"):
            utils.configure_cpu_threads(0)
    finally:
        torch.set_num_threads(before)


def test_free_cores_subtract_workers_and_load(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 0.0, 0.0))  # this process plus 2 others
    assert utils.free_cpu_cores(num_workers=4) == 2
    assert utils.free_cpu_cores(num_workers=12) == 1


# ---------------------------------------------------------------------------------------------------- warnings
def test_project_warnings_print_as_one_line_others_as_python_does(monkeypatch):
    from monodepth2_geopt import inference
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # restored after the test
    errors.run_cli(lambda: None)  # every script's entry point installs the one-line format
    assert warnings.formatwarning is errors.format_warning
    ours = warnings.formatwarning("--pred_metric_depth assumes a stereo-trained model (x5.4);\n this model was "
                                  "not", UserWarning, inference.__file__, 294)
    assert ours == "warning: --pred_metric_depth assumes a stereo-trained model (x5.4); this model was not\n"
    script = warnings.formatwarning("not metric", UserWarning, str(ROOT / "test_simple.py"), 56)  # stacklevel=2
    assert script == "warning: not metric\n"
    theirs = warnings.formatwarning("elsewhere", UserWarning, "/some/library.py", 7, "x = 1")
    assert theirs.startswith("/some/library.py:7: UserWarning: elsewhere") and "x = 1" in theirs


def test_meaningless_protocols_are_warned_about():
    opt = MonodepthOptions().parse(["--eval_stereo", "--load_weights_folder", "w"])
    stereo = evaluation.scaling_protocol(opt)
    assert "trained without stereo" in evaluation.protocol_warnings(opt, {"use_stereo": False}, stereo)[0]
    assert evaluation.protocol_warnings(opt, {"use_stereo": True}, stereo) == []  # a stereo model: fine
    assert evaluation.protocol_warnings(opt, {}, stereo) == []  # external disparities: unknown, no claim
    mono = MonodepthOptions().parse(["--eval_mono", "--align", "lsqr"])
    lsqr = evaluation.scaling_protocol(mono)
    (message,) = evaluation.protocol_warnings(mono, {}, lsqr, [0.5, -2.0, 1.0, -0.1])
    assert "negative disparity scale on 2 of 4 images (e.g. image 1)" in message
    assert evaluation.protocol_warnings(mono, {}, lsqr, [0.5, 2.0]) == []


def test_each_protocol_has_its_own_metrics_file(tmp_path):
    split = evaluation.EvalSplit("eigen", tmp_path, tmp_path / "t.txt", tmp_path / "gt.npz", "raw")
    names = set()
    for args in (["--eval_mono"], ["--eval_mono", "--align", "lsqr"], ["--eval_stereo"],
                 ["--eval_mono", "--disable_median_scaling"]):
        opt = MonodepthOptions().parse(args)
        names.add(evaluation.metrics_file_name(split, evaluation.scaling_protocol(opt)))
    assert names == {"metrics_eigen_median.json", "metrics_eigen_lsqr.json", "metrics_eigen_stereo.json",
                     "metrics_eigen_unscaled.json"}
    protocol = evaluation.scaling_protocol(MonodepthOptions().parse(["--eval_mono"]))
    assert evaluation.metrics_file_name(split, protocol, post_process=True) == "metrics_eigen_median_pp.json"


# ---------------------------------------------------------------------------------------------------- extract_frames
def test_extract_frames_says_not_a_video_and_names_the_file(tmp_path, capsys):
    from tests.conftest import run_script
    image = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 32), (200, 100, 50)).save(image)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    for path in (image, notes):
        code, err = run_script(capsys, "extract_frames.py", path, "--out_dir", tmp_path / "frames")
        assert code == 2 and err.strip().splitlines() == [err.strip()]
        assert f"'{path}' is not a video" in err, err
    assert not (tmp_path / "frames").exists()


# ---------------------------------------------------------------------------------------------------- bench_speed
def test_bench_speed_prints_only_unless_asked_and_refuses_a_bad_data_path(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_speed
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert not bench_speed.parse_args([]).write_results  # the tracked RESULTS.md is left alone by default
    assert bench_speed.parse_args(["--write_results"]).write_results
    with pytest.raises(InputError, match="is not a folder"):
        bench_speed.parse_args(["--data_path", str(tmp_path / "nope")])
    with pytest.raises(SystemExit) as exit_info:  # the script's own entry point, in this process
        errors.run_cli(lambda: bench_speed.main(["--data_path", str(tmp_path / "nope")]))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.strip().splitlines() == [err.strip()]
    assert err.startswith(f"error: --data_path {tmp_path / 'nope'} is not a folder")
    assert 'run_cli(main)' in (ROOT / "benchmarks" / "bench_speed.py").read_text()
