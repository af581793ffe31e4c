"""Issue 13 (part): stale artefacts are detected, and no command replaces a user's file without --overwrite.

Every refusal is checked with its negative control: the same command without the change (or with --overwrite)
goes through, so each test fails if the check it covers were missing. Scripts run in this process as
`python <script> <args>` would (runpy), at tiny sizes.
"""
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monodepth2_geopt import fileio, splits
from monodepth2_geopt.tools import synthetic
from monodepth2_geopt.datasets import KITTIRAWDataset
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.evaluation import evaluate
from monodepth2_geopt.gt_depth import export_gt_depths, load_gt_depths, save_gt_depths
from monodepth2_geopt.image_cache import MANIFEST, build_cache
from monodepth2_geopt.kitti_layout import write_depth_png
from monodepth2_geopt.options import MonodepthOptions
from monodepth2_geopt.splits import sha256_file
from tests.conftest import SHARED_DATA, run_script

REPO = Path(__file__).resolve().parents[1]
DRIVE = "2011_09_26/2011_09_26_drive_0001_sync"

def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes: equal snapshots mean nothing was touched."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- ground truth ----------------------------------------------------------------------------------


def gt_split(tmp_path, n=3):
    """A split folder with test_files.txt over n frames whose depth PNGs exist under tmp_path/raw."""
    rng = np.random.default_rng(0)
    png_dir = tmp_path / "raw" / DRIVE / "proj_depth" / "groundtruth" / "image_02"
    png_dir.mkdir(parents=True)
    for i in range(n + 1):
        write_depth_png(png_dir / f"{i:010d}.png", rng.uniform(1, 80, (6, 8)))
    split_dir = tmp_path / "split"
    split_dir.mkdir()
    (split_dir / "test_files.txt").write_text("".join(f"{DRIVE} {i} l\n" for i in range(n)))
    return tmp_path / "raw", split_dir


def parse(*args):
    return MonodepthOptions().parse([str(a) for a in args] + ["--num_workers", "0", "--no_cuda"])


def test_gt_records_the_split_hash_and_unchanged_split_is_accepted(tmp_path):
    raw, split_dir = gt_split(tmp_path)
    path = export_gt_depths(raw, split_dir, source="depth_png")
    with np.load(path, allow_pickle=False) as archive:
        assert str(archive["split_sha256"]) == sha256_file(split_dir / "test_files.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "cannot be checked" warning for a file with the hash
        maps = load_gt_depths(path, split_file=split_dir / "test_files.txt")
    assert len(maps) == 3 and maps[0].shape == (6, 8)


def test_stale_gt_is_refused_after_the_split_changes(tmp_path):
    raw, split_dir = gt_split(tmp_path)
    export_gt_depths(raw, split_dir, source="depth_png")
    np.save(tmp_path / "d.npy", np.ones((3, 6, 8), np.float32))
    args = ("--ext_disp_to_eval", tmp_path / "d.npy", "--eval_mono", "--eval_split", split_dir)
    assert evaluate(parse(*args))["num_images"] == 3  # negative control: unchanged split evaluates
    # the split now lists other frames (same count, so nothing else would notice)
    (split_dir / "test_files.txt").write_text("".join(f"{DRIVE} {i} l\n" for i in (1, 2, 3)))
    with pytest.raises(InputError) as info:
        evaluate(parse(*args))
    message = str(info.value)
    assert "stale" in message and "\n" not in message
    assert str(split_dir / "gt_depths.npz") in message and str(split_dir / "test_files.txt") in message
    assert "python export_gt_depth.py" in message and "--overwrite" in message
    # the re-export the message names fixes it
    export_gt_depths(raw, split_dir, source="depth_png", overwrite=True)
    assert evaluate(parse(*args))["num_images"] == 3


def test_legacy_gt_without_hash_is_accepted_with_a_warning(tmp_path):
    _, split_dir = gt_split(tmp_path)
    save_gt_depths(split_dir / "gt_depths.npz", [np.ones((6, 8), np.float32)] * 3)  # no split_sha256
    with pytest.warns(UserWarning, match="stale cannot be checked"):
        maps = load_gt_depths(split_dir / "gt_depths.npz", split_file=split_dir / "test_files.txt")
    assert len(maps) == 3


def test_export_gt_refuses_an_existing_file_and_overwrite_replaces_it(tmp_path, capsys):
    raw, split_dir = gt_split(tmp_path)
    args = ("--data_path", raw, "--split", split_dir, "--gt_source", "depth_png")
    assert run_script(capsys, "export_gt_depth.py", *args)[0] == 0
    path = split_dir / "gt_depths.npz"
    before = path.read_bytes()
    (split_dir / "test_files.txt").write_text(f"{DRIVE} 3 l\n")
    code, err = run_script(capsys, "export_gt_depth.py", *args)
    assert code == 2 and err.count("\n") == 1
    assert str(path) in err and "--overwrite" in err
    assert path.read_bytes() == before
    assert run_script(capsys, "export_gt_depth.py", *args, "--overwrite")[0] == 0
    assert len(load_gt_depths(path, split_file=split_dir / "test_files.txt")) == 1


# --- image cache -----------------------------------------------------------------------------------


def image_tree(root, frames=range(6)):
    d = root / DRIVE / "image_02" / "data"
    d.mkdir(parents=True, exist_ok=True)
    for i in frames:
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 255, (40, 70, 3), dtype=np.uint8)).save(d / f"{i:010d}.png")
    return d


def lines_of(frames):
    return [f"{DRIVE} {i} l" for i in frames]


def dataset(root, lines, cache=None):
    return KITTIRAWDataset(root, lines, 32, 64, [0], img_ext=".png", image_cache=cache)


def assert_cache_matches_decoding(root, lines, cache):
    plain, cached = dataset(root, lines), dataset(root, lines, cache)
    for line in lines:
        folder, index, _ = line.split()
        assert cached.image_cache.get(folder, int(index), "l") is not None
        assert torch.equal(plain.load_color(folder, int(index), "l", False),
                           cached.load_color(folder, int(index), "l", False)), line


def test_cache_with_a_changed_source_image_is_refused(tmp_path):
    data = image_tree(tmp_path)
    lines = lines_of(range(1, 5))
    build_cache(dataset(tmp_path, lines), tmp_path / "cache", progress=False)
    assert_cache_matches_decoding(tmp_path, lines, tmp_path / "cache")  # negative control: fresh cache is used
    changed = data / f"{2:010d}.png"
    Image.fromarray(np.zeros((40, 70, 3), np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    with pytest.raises(InputError) as info:
        dataset(tmp_path, lines, tmp_path / "cache")
    message = str(info.value)
    assert "stale" in message and str(changed) in message and "prepare_cache.py" in message
    assert "--overwrite" in message and "\n" not in message


def test_cache_without_manifest_is_refused(tmp_path):
    image_tree(tmp_path)
    lines = lines_of(range(1, 5))
    build_cache(dataset(tmp_path, lines), tmp_path / "cache", progress=False)
    (tmp_path / "cache" / MANIFEST).unlink()
    with pytest.raises(InputError, match="no manifest.json.*--overwrite"):
        dataset(tmp_path, lines, tmp_path / "cache")


def test_cache_for_another_split_warns_and_decodes_the_missing_frames(tmp_path):
    image_tree(tmp_path)
    build_cache(dataset(tmp_path, lines_of([1, 2])), tmp_path / "cache", progress=False)
    with pytest.warns(UserWarning, match="lacks 2 of the 4 frames"):
        ds = dataset(tmp_path, lines_of([1, 2, 3, 4]), tmp_path / "cache")
    assert torch.equal(ds.load_color(DRIVE, 4, "l", False), dataset(tmp_path, lines_of([4])).load_color(DRIVE, 4, "l", False))


def test_prepare_cache_keeps_a_fresh_cache_refuses_a_stale_one_and_rebuilds_with_overwrite(tmp_path, capsys):
    data = image_tree(tmp_path)
    split = tmp_path / "split"
    split.mkdir()
    (split / "train_files.txt").write_text("".join(line + "\n" for line in lines_of([1, 2, 3])))
    (split / "val_files.txt").write_text("".join(line + "\n" for line in lines_of([4])))
    args = ("--data_path", tmp_path, "--split", split, "--height", 32, "--width", 64, "--png", "--frame_ids", 0,
            "--image_cache", tmp_path / "cache", "--no_progress")
    assert run_script(capsys, "prepare_cache.py", *args)[0] == 0
    manifest = tmp_path / "cache" / MANIFEST
    built = manifest.stat().st_mtime_ns
    assert run_script(capsys, "prepare_cache.py", *args)[0] == 0  # up to date: kept as it is
    assert manifest.stat().st_mtime_ns == built
    Image.fromarray(np.zeros((40, 70, 3), np.uint8)).save(data / f"{3:010d}.png")
    os.utime(data / f"{3:010d}.png", ns=(1, 1))
    before = snapshot(tmp_path / "cache")
    code, err = run_script(capsys, "prepare_cache.py", *args)
    assert code == 2 and err.count("\n") == 1 and "source images changed" in err and "--overwrite" in err
    assert snapshot(tmp_path / "cache") == before
    assert run_script(capsys, "prepare_cache.py", *args, "--overwrite")[0] == 0
    assert_cache_matches_decoding(tmp_path, lines_of([1, 2, 3, 4]), tmp_path / "cache")


def test_prepare_cache_never_replaces_a_folder_that_is_not_a_cache(tmp_path):
    image_tree(tmp_path)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(InputError, match="not an image cache"):
            build_cache(dataset(tmp_path, lines_of([1])), folder, progress=False, overwrite=overwrite)
    assert (folder / "notes.txt").read_text() == "keep me"


def test_killed_rebuild_leaves_the_old_cache_never_other_frames_pixels(tmp_path, monkeypatch):
    """The issue's failure: a rebuild for other frames, killed after an array but before its frame table was
    written, made the old table index the new array (frame 2 read frame 11's pixels). Here the "kill" comes at
    that worst moment; the old cache must still return exactly its own frames."""
    image_tree(tmp_path, range(14))
    old_lines = lines_of(range(1, 5))
    build_cache(dataset(tmp_path, old_lines), tmp_path / "cache", progress=False)
    real_write_text = Path.write_text

    def killed(self, *args, **kwargs):
        if self.name == "image_02.json":  # the new array is on disk, its frame table is not
            raise KeyboardInterrupt
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        build_cache(dataset(tmp_path, lines_of(range(10, 13))), tmp_path / "cache", progress=False,
                    overwrite=True)
    monkeypatch.undo()
    assert_cache_matches_decoding(tmp_path, old_lines, tmp_path / "cache")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".cache.")] == []  # no half-built folder


def test_kill_between_the_swap_renames_leaves_no_cache_and_the_next_build_recovers(tmp_path, monkeypatch):
    image_tree(tmp_path)
    lines = lines_of(range(1, 5))
    build_cache(dataset(tmp_path, lines), tmp_path / "cache", progress=False)
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if Path(dst) == tmp_path / "cache" and len(calls) > 1:
            raise KeyboardInterrupt  # the old cache is aside, the new one not yet in place
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        build_cache(dataset(tmp_path, lines), tmp_path / "cache", progress=False, overwrite=True)
    monkeypatch.undo()
    with pytest.raises(InputError, match="does not exist"):  # none: not a mix
        dataset(tmp_path, lines, tmp_path / "cache")
    build_cache(dataset(tmp_path, lines), tmp_path / "cache", progress=False)
    assert_cache_matches_decoding(tmp_path, lines, tmp_path / "cache")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".cache.")] == []  # leftovers removed


# --- synthetic data ---------------------------------------------------------------------------------


def tiny_world(out, frames=4, **kwargs):
    return synthetic.generate_dataset(out, num_drives=1, frames_per_drive=frames, width=32, height=16, seed=0,
                                      velodyne=False, **kwargs)


def test_generate_synthetic_refuses_a_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "world"
    tiny_world(out)
    before = snapshot(out)
    with pytest.raises(InputError, match="not empty; pass --overwrite"):
        tiny_world(out, frames=3)
    assert snapshot(out) == before
    code, err = run_script(capsys, "generate_synthetic.py", "--out_dir", out, "--num_drives", 1,
                           "--frames_per_drive", 3, "--width", 32, "--height", 16, "--no_velodyne")
    assert code == 2 and err.count("\n") == 1 and str(out) in err and "--overwrite" in err
    assert snapshot(out) == before


def test_generate_synthetic_overwrite_replaces_without_mixing_old_frames(tmp_path):
    out = tmp_path / "world"
    info = tiny_world(out, frames=5)
    (out / "splits" / "gt_depths.npz").write_bytes(b"derived from the old world")
    info = tiny_world(out, frames=3, overwrite=True)
    frames = sorted(p.name for p in Path(info["drive_dirs"][0], "image_02", "data").iterdir())
    assert frames == [f"{i:010d}.png" for i in range(3)]  # frames 3, 4 of the old world are gone
    assert not (out / "splits" / "gt_depths.npz").exists()
    assert json.loads((out / "synthetic_info.json").read_text())["frames_per_drive"] == 3
    assert info["root"] == str(out) and Path(info["splits"]["test"]).is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["world"]  # no build folder left


def test_generate_synthetic_overwrite_never_deletes_other_files(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "my_notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(InputError, match="not empty|did not write"):
            tiny_world(out, overwrite=overwrite)
    assert (out / "my_notes.txt").read_text() == "keep me"
    video = tmp_path / "video"
    synthetic.generate_video(video, num_sequences=1, frames=3, width=32, height=16)
    with pytest.raises(InputError, match="not empty"):
        synthetic.generate_video(video, num_sequences=1, frames=2, width=32, height=16)
    synthetic.generate_video(video, num_sequences=1, frames=2, width=32, height=16, overwrite=True)
    assert sorted(p.name for p in (video / "seq_000").iterdir()) == ["000000.jpg", "000001.jpg"]


# --- split writers ----------------------------------------------------------------------------------


def test_make_split_refuses_existing_lists_and_overwrite_replaces_them(tmp_path, capsys):
    image_tree(tmp_path / "raw", range(8))
    out = tmp_path / "split"
    args = ("--data_path", tmp_path / "raw", "--out_dir", out, "--val_fraction", 0.2, "--test_fraction", 0.2)
    assert run_script(capsys, "make_split.py", *args)[0] == 0
    assert (out / "test_files.txt").is_file()
    before = snapshot(out)
    code, err = run_script(capsys, "make_split.py", *args[:4], "--seed", 1)
    assert code == 2 and err.count("\n") == 1 and "train_files.txt" in err and "--overwrite" in err
    assert snapshot(out) == before
    assert run_script(capsys, "make_split.py", *args[:4], "--seed", 1, "--overwrite")[0] == 0
    assert snapshot(out) != before
    assert not (out / "test_files.txt").exists()  # the old test list would not match the new lists


def test_download_splits_refuses_to_replace_an_edited_file(tmp_path, monkeypatch, capsys):
    shared = SHARED_DATA / "splits"
    if not shared.is_dir():
        pytest.skip(f"shared published splits not found at {shared}")
    urls = []

    from tests.test_splits import FakeResponse as Response  # the one fake urlopen response

    def serve(url, timeout=None):
        urls.append(url)
        return Response((shared / url.split("/splits/", 1)[1]).read_bytes())

    monkeypatch.setattr(splits, "urlopen", serve)
    edited = tmp_path / "eigen" / "test_files.txt"
    edited.parent.mkdir()
    edited.write_text(f"{DRIVE} 1 l\n")
    code, err = run_script(capsys, "download_splits.py", "eigen", "--dest", tmp_path)
    assert code == 2 and str(edited) in err and "--overwrite" in err
    assert edited.read_text() == f"{DRIVE} 1 l\n" and urls == []  # refused before any download
    assert run_script(capsys, "download_splits.py", "eigen", "--dest", tmp_path, "--overwrite")[0] == 0
    assert sha256_file(edited) == splits.SPLIT_SHA256["eigen/test_files.txt"]
    assert run_script(capsys, "download_splits.py", "eigen", "--dest", tmp_path)[0] == 0  # valid: kept, no fetch
    assert len(urls) == 1


def test_extract_frames_refuses_existing_lists_before_decoding(tmp_path, capsys):
    pytest.importorskip("av")
    from tests.test_video import synthetic_frames, write_video
    frames = synthetic_frames()[:12]
    for name in ("a", "b"):
        write_video(tmp_path / f"{name}.mp4", frames)
    out = tmp_path / "frames"
    args = ("--out", out, "--quiet", "--cut_threshold", 0, "--cut_hist_threshold", 0, "--static_threshold", 0)
    assert run_script(capsys, "extract_frames.py", tmp_path / "a.mp4", *args, "--val_fraction", 0.2)[0] == 0
    assert (out / "val_files.txt").is_file()
    before = snapshot(out)
    code, err = run_script(capsys, "extract_frames.py", tmp_path / "b.mp4", *args)  # another video, same lists
    assert code == 2 and "train_files.txt" in err and "--overwrite" in err
    assert snapshot(out) == before and not (out / "b").exists()  # nothing decoded
    assert run_script(capsys, "extract_frames.py", tmp_path / "b.mp4", *args, "--val_fraction", 0, "--overwrite")[0] == 0
    assert {line.split()[0] for line in (out / "train_files.txt").read_text().splitlines()} == {"b"}
    assert not (out / "val_files.txt").exists()  # --val_fraction 0 now: the old val list is gone


# --- prediction outputs -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from tests.test_inference import make_depth_weights
    return make_depth_weights(tmp_path_factory.mktemp("w") / "weights_0")


def test_test_simple_refuses_existing_outputs_before_predicting(weights, tmp_path, capsys):
    image = tmp_path / "img.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(image)
    args = ("--image_path", image, "--load_weights_folder", weights, "--no_cuda", "--out_dir", tmp_path)
    assert run_script(capsys, "test_simple.py", *args)[0] == 0
    npy = tmp_path / "img_disp.npy"
    np.save(npy, np.zeros(1, np.float32))  # a file the user changed since
    code, err = run_script(capsys, "test_simple.py", *args)
    assert code == 2 and err.count("\n") == 1 and "img_disp" in err and "--overwrite" in err
    assert np.load(npy).shape == (1,)
    assert run_script(capsys, "test_simple.py", *args, "--overwrite")[0] == 0
    assert np.load(npy).shape == (1, 1, 40, 60)  # the input's size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.jpg", "img_disp.jpeg", "img_disp.npy"]  # no temp


def test_save_pred_disps_refuses_an_existing_file(tmp_path):
    split_dir = tmp_path / "s"
    split_dir.mkdir()
    (split_dir / "test_files.txt").write_text(f"{DRIVE} 1 l\n")
    np.save(tmp_path / "d.npy", np.ones((1, 4, 4), np.float32))
    args = ("--ext_disp_to_eval", tmp_path / "d.npy", "--eval_mono", "--eval_split", split_dir, "--save_pred_disps",
            "--no_eval", "--eval_out_dir", tmp_path / "o")
    path = Path(evaluate(parse(*args))["pred_disps_path"])
    np.save(tmp_path / "d.npy", np.full((1, 4, 4), 2, np.float32))
    with pytest.raises(InputError, match=r"disps_s_split\.npy already exists; pass --overwrite"):
        evaluate(parse(*args))
    assert np.load(path).max() == 1
    evaluate(parse(*args, "--overwrite"))
    assert np.load(path).max() == 2


def test_evaluate_flow_json_is_refused_before_the_model_loads(tmp_path, capsys):
    out = tmp_path / "diag.json"
    out.write_text("{}")
    (tmp_path / "frames").mkdir()
    args = ("--load_weights_folder", tmp_path / "no_weights", "--flow_eval_path", tmp_path / "frames", "--json", out,
            "--no_cuda")
    code, err = run_script(capsys, "evaluate_flow.py", *args)
    assert code == 2 and str(out) in err and "--overwrite" in err
    assert out.read_text() == "{}"
    code, err = run_script(capsys, "evaluate_flow.py", *args, "--overwrite")  # passes the check, fails later
    assert code == 2 and "no_weights" in err and "already exists" not in err
