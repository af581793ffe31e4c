import hashlib
import subprocess
import sys
from pathlib import Path
from urllib.error import URLError

import pytest

from monodepth2_geopt import splits
from monodepth2_geopt.kitti_layout import parse_split_line
from monodepth2_geopt.splits import (PUBLISHED_SPLITS, SPLIT_SHA256, SplitDownloadError,
                                     download_splits, make_split,
                                     read_split_file, readlines, resolve_split_dir, verify_splits)
from tests.conftest import SHARED_DATA

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_SPLITS = SHARED_DATA / "splits"


def needs_shared_splits():
    if not SHARED_SPLITS.is_dir():
        pytest.skip(f"shared published splits not found at {SHARED_SPLITS}")


# --- parsing -------------------------------------------------------------------------------------

def test_parse_split_line_formats():
    assert parse_split_line("2011_09_26/2011_09_26_drive_0022_sync 473 r") == (
        "2011_09_26/2011_09_26_drive_0022_sync", 473, "r")
    assert parse_split_line("2011_09_26/2011_09_26_drive_0002_sync 0000000069 l")[1] == 69
    assert parse_split_line("image 0") == ("image", 0, None)
    assert parse_split_line("9 0 l") == ("9", 0, "l")


@pytest.mark.parametrize("line", ["onlyone", "a b c d", "folder x l", "folder 3 q"])
def test_parse_split_line_rejects_malformed(line):
    with pytest.raises(ValueError, match="line 7"):
        parse_split_line(line, line_number=7)


def test_read_split_file_names_file_and_line(tmp_path):
    path = tmp_path / "train_files.txt"
    path.write_text("drive 1 l\n\ndrive 2 l\ndrive two l\n")
    with pytest.raises(ValueError, match=r"train_files.txt: line 4"):
        read_split_file(path)
    path.write_text("drive 1 l\n\ndrive 2\n")
    assert read_split_file(path) == [("drive", 1, "l"), ("drive", 2, None)]


def test_readlines_missing_file_names_path_and_fix(tmp_path):
    missing = tmp_path / "eigen" / "test_files.txt"
    with pytest.raises(FileNotFoundError, match="download_splits.py") as info:
        readlines(missing)
    assert str(missing) in str(info.value)


def test_resolve_split_dir(tmp_path):
    (tmp_path / "splits" / "mine").mkdir(parents=True)
    assert resolve_split_dir("mine", tmp_path) == tmp_path / "splits" / "mine"
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert resolve_split_dir(str(other), tmp_path) == other
    with pytest.raises(FileNotFoundError, match=r"available splits: mine.*download_splits.py eigen"):
        resolve_split_dir("eigen", tmp_path)


# --- published lists -----------------------------------------------------------------------------

def test_sha_table_covers_every_published_file():
    listed = {rel for files in PUBLISHED_SPLITS.values() for rel in files}
    assert listed == set(SPLIT_SHA256)
    assert len(splits.MONODEPTH2_COMMIT) == 40 and int(splits.MONODEPTH2_COMMIT, 16) >= 0


def test_sha_table_matches_shared_copies():
    needs_shared_splits()
    # The table was made with: cd splits && find . -type f | sort | xargs sha256sum
    for rel, digest in SPLIT_SHA256.items():
        assert hashlib.sha256((SHARED_SPLITS / rel).read_bytes()).hexdigest() == digest, rel
    assert set(verify_splits(SHARED_SPLITS).values()) == {"ok"}
    # Line counts from REFERENCE.md section 1.8
    assert len(read_split_file(SHARED_SPLITS / "eigen" / "test_files.txt")) == 697
    assert len(read_split_file(SHARED_SPLITS / "benchmark" / "test_files.txt")) == 500


class FakeResponse:
    def __init__(self, data: bytes):
        self.data = data

    def read(self):
        return self.data

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_offline_gives_clear_error(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(splits, "urlopen", offline)
    with pytest.raises(SplitDownloadError) as info:
        download_splits(["eigen"], tmp_path)
    message = str(info.value)
    assert splits.MONODEPTH2_COMMIT in message and "raw.githubusercontent.com" in message
    assert "copy the files by hand" in message and str(tmp_path / "eigen" / "test_files.txt") in message
    assert "\n" not in message
    assert not (tmp_path / "eigen").exists() or not any((tmp_path / "eigen").iterdir())


def test_download_writes_verified_files(tmp_path, monkeypatch):
    needs_shared_splits()
    urls = []

    def serve(url, timeout=None):
        urls.append(url)
        rel = url.split(f"{splits.MONODEPTH2_COMMIT}/splits/", 1)[1]
        return FakeResponse((SHARED_SPLITS / rel).read_bytes())

    monkeypatch.setattr(splits, "urlopen", serve)
    written = download_splits(["eigen", "benchmark"], tmp_path)
    assert len(written) == 5 and len(urls) == 5
    assert urls[0] == ("https://raw.githubusercontent.com/nianticlabs/monodepth2/"
                       f"{splits.MONODEPTH2_COMMIT}/splits/eigen/test_files.txt")
    status = verify_splits(tmp_path, ["eigen", "benchmark"])
    assert set(status.values()) == {"ok"}
    assert verify_splits(tmp_path, ["odom"])["odom/train_files.txt"] == "missing"
    assert not list(tmp_path.rglob("*.tmp"))
    # Valid files are not fetched again.
    download_splits(["eigen"], tmp_path)
    assert len(urls) == 5


def test_download_rejects_hash_mismatch(tmp_path, monkeypatch):
    monkeypatch.setattr(splits, "urlopen", lambda url, timeout=None: FakeResponse(b"tampered\n"))
    with pytest.raises(SplitDownloadError, match="SHA-256 mismatch"):
        download_splits(["eigen"], tmp_path)
    assert not (tmp_path / "eigen" / "test_files.txt").exists()
    assert verify_splits(tmp_path, ["eigen"]) == {"eigen/test_files.txt": "missing"}
    with pytest.raises(ValueError, match="unknown published split"):
        download_splits(["nope"], tmp_path)


# --- making new lists ----------------------------------------------------------------------------

def make_tree(root: Path, drive: str, frames, camera="image_02", ext=".png"):
    data = root / "2011_09_26" / drive / camera / "data"
    data.mkdir(parents=True, exist_ok=True)
    for i in frames:
        (data / f"{i:010d}{ext}").touch()


def test_make_split_writes_lines_and_excludes_edges(tmp_path):
    make_tree(tmp_path / "raw", "2011_09_26_drive_0001_sync", range(10))
    make_tree(tmp_path / "raw", "2011_09_26_drive_0002_sync", [0, 1, 2, 5, 6, 7], ext=".jpg")
    out = tmp_path / "split"
    lists = make_split(tmp_path / "raw", out, val_fraction=0.25, seed=0)
    # drive 1: frames 1..8 have both neighbours; drive 2: only 1 and 6 (gap at 3, 4).
    expected = ([f"2011_09_26/2011_09_26_drive_0001_sync {i} l" for i in range(1, 9)]
                + ["2011_09_26/2011_09_26_drive_0002_sync 1 l",
                   "2011_09_26/2011_09_26_drive_0002_sync 6 l"])
    assert sorted(lists["train"] + lists["val"]) == sorted(expected)
    assert len(lists["val"]) == 2  # round(0.25 * 10) = 2 (rounds half to even)
    assert (out / "train_files.txt").read_text().splitlines() == lists["train"]
    assert (out / "val_files.txt").read_text().splitlines() == lists["val"]
    assert read_split_file(out / "train_files.txt")  # parses back
    assert make_split(tmp_path / "raw", tmp_path / "again", val_fraction=0.25, seed=0) == lists
    # Wider temporal window excludes more edge frames.
    wide = make_split(tmp_path / "raw", out, frame_ids=(0, -2, 2), val_fraction=0.0, overwrite=True)
    assert wide["train"] == [f"2011_09_26/2011_09_26_drive_0001_sync {i} l" for i in range(2, 8)]
    assert wide["val"] == []


def test_make_split_by_drive_stereo_and_test(tmp_path):
    for d in range(1, 5):
        make_tree(tmp_path, f"2011_09_26_drive_000{d}_sync", range(5))
        make_tree(tmp_path, f"2011_09_26_drive_000{d}_sync", range(4 if d == 1 else 5), "image_03")
    make_tree(tmp_path, "2011_09_26_drive_0005_sync", range(5))  # no image_03: no stereo pairs
    out = tmp_path / "out"
    lists = make_split(tmp_path, out, val_fraction=0.25, test_fraction=0.25, by_drive=True,
                       stereo=True, seed=3)
    drives = {k: {line.split()[0] for line in v} for k, v in lists.items()}
    assert all(len(d) == 1 for d in (drives["val"], drives["test"])) and len(drives["train"]) == 2
    assert not (drives["train"] & drives["val"]) and not (drives["val"] & drives["test"])
    everything = lists["train"] + lists["val"] + lists["test"]
    assert not any("0005" in line for line in everything)
    r_lines = sorted(line for line in everything if "0001" in line and line.endswith(" r"))
    # Drive 1's image_03 has frames 0..3: r lines need neighbours, so 1 and 2.
    assert r_lines == [f"2011_09_26/2011_09_26_drive_0001_sync {i} r" for i in (1, 2)]
    # Drive 1 l lines need the right frame too (stereo pair): frames 1, 2, 3.
    assert sorted(ln for ln in everything if "0001" in ln and ln.endswith(" l")) == [
        f"2011_09_26/2011_09_26_drive_0001_sync {i} l" for i in (1, 2, 3)]
    assert (out / "test_files.txt").is_file()


def test_make_split_empty_folder_names_path(tmp_path):
    empty = tmp_path / "empty_raw"
    empty.mkdir()
    with pytest.raises(ValueError, match="no frames found") as info:
        make_split(empty, tmp_path / "out")
    assert str(empty) in str(info.value)
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        make_split(tmp_path / "does_not_exist", tmp_path / "out")


def test_make_split_script_one_line_error(tmp_path):
    empty = tmp_path / "empty_raw"
    empty.mkdir()
    result = subprocess.run([sys.executable, "make_split.py", "--data_path", str(empty),
                             "--out_dir", str(tmp_path / "out")], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2  # bad input (run_cli)
    assert result.stderr.startswith("error: no frames found") and str(empty) in result.stderr
    assert result.stderr.count("\n") == 1
