"""Split lists: reading and parsing, locating split folders, downloading the published KITTI lists
(checked against SHA-256 hashes) and making new train/val lists for any KITTI-raw-layout tree.

Split line format (Monodepth2): `<folder> <frame_index> <side>`, e.g.
`2011_09_26/2011_09_26_drive_0022_sync 473 r`, or `<folder> <frame_index>` (benchmark: `image 0`). The line
format (parse, format, write) and the folder layout live in ``kitti_layout``; this module handles split files.
"""

import hashlib
import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen
from monodepth2_geopt import paths
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.fileio import atomic_write_bytes
from monodepth2_geopt.kitti_layout import (CAMERA_FOLDERS, IMAGE_DATA, SplitEntry, format_split_line, image_dir,
                                           other_side, parse_split_line, write_split_file)

# The project root (paths.project_root: $M2G_HOME, the clone, or the working directory of an installed package):
# named split folders are looked up under <REPO_ROOT>/splits.
REPO_ROOT = paths.project_root()

MONODEPTH2_REPO = "nianticlabs/monodepth2"
# Monodepth2 HEAD b676244 (2022-01-29); its splits/ are unchanged since the initial release.
MONODEPTH2_COMMIT = "b676244e5a1ca55564eb5d16ab521a48f823af31"
RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/splits/{path}"

# Published split lists, relative to splits/. The lists are Niantic's, so they are downloaded, not
# committed. Hashes computed from the published files:
#   cd splits && find . -type f | sort | xargs sha256sum
PUBLISHED_SPLITS: dict[str, tuple[str, ...]] = {
    "eigen": ("eigen/test_files.txt",),
    "eigen_benchmark": ("eigen_benchmark/test_files.txt",),
    "eigen_full": ("eigen_full/train_files.txt", "eigen_full/val_files.txt"),
    "eigen_zhou": ("eigen_zhou/train_files.txt", "eigen_zhou/val_files.txt"),
    "benchmark": ("benchmark/train_files.txt", "benchmark/val_files.txt",
                  "benchmark/test_files.txt", "benchmark/eigen_to_benchmark_ids.npy"),
    "odom": ("odom/train_files.txt", "odom/val_files.txt", "odom/test_files_09.txt",
             "odom/test_files_10.txt"),
    "kitti_archives": ("kitti_archives_to_download.txt",),
}
SPLIT_SHA256: dict[str, str] = {
    "benchmark/eigen_to_benchmark_ids.npy": "1c1ac4ea84c938622f228a4438661fdb66ec07a2380a54bd21cd28b6eeb1a4e8",
    "benchmark/test_files.txt": "b9b0746d2e5263d975fd082d6e82d592971adc9e6a2fdf370a8cf78519161d28",
    "benchmark/train_files.txt": "060fdce26c5cd0681b6cc7620a856c697caa78fd23ab7a9ba41fb39c70ae3860",
    "benchmark/val_files.txt": "5c65577de234037bec0c792d7bf44c60b7fb367449266054eb4612a5e92bfa08",
    "eigen/test_files.txt": "e226d4ca16e0e6e9695435014347dcf973588531330536fd8a68d298ef091a6b",
    "eigen_benchmark/test_files.txt": "d56e5e509e6960a01fb93795f85028ac6e4a82ad40e64b6e968988e4db95b9be",
    "eigen_full/train_files.txt": "1b491141d87b7af9e6706609b7ce858c198c3a4ca61d180c7dc90815d5f2a986",
    "eigen_full/val_files.txt": "9c4446772ec58aaa60acbeef0fa6d1e8ef1b346ad4f78272d056d10cf1993af9",
    "eigen_zhou/train_files.txt": "00173a231642151c4693274e701ddd4cae7916520a757c7a94eae8e1173f7b0c",
    "eigen_zhou/val_files.txt": "64a868b8d2c66c3979a2d74c22ea2e9146850d5b9f5786ed8e5f92201ba1ad04",
    "kitti_archives_to_download.txt": "9899630a856ea2661a06d223440561395792e15538ebe97f3b719a04b91e4386",
    "odom/test_files_09.txt": "8b999b6f974041663ba2f8aa6456ea338089a272119b7edd702f352278f43d26",
    "odom/test_files_10.txt": "f39c47e0c21f65d4503476375f2a786def34f54bd5d1cabf28c7e68f002986a1",
    "odom/train_files.txt": "ced6c5fd1b0b76e2a28d68e046421c1f0df08de8fb713ca305684d263af6d0e2",
    "odom/val_files.txt": "9cf46e1b873d6f9883015b1f77fcace51db424a1f0a765324957f46399b6db99",
}


class SplitDownloadError(RuntimeError):
    """A published split file could not be fetched or failed its SHA-256 check."""


# ---------------------------------------------------------------------------------------------
# Reading and parsing


def readlines(path: str | Path) -> list[str]:
    """Lines of a split file, without line endings."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"split file not found: {path}. Get the published KITTI splits with "
            "`python download_splits.py` or make your own with `python make_split.py`")
    return path.read_text().splitlines()


def read_split_file(path: str | Path) -> list[SplitEntry]:
    """Parse every non-blank line of a split file; errors name the file and line number."""
    entries = []
    for number, line in enumerate(readlines(path), start=1):
        if not line.strip():
            continue
        try:
            entries.append(parse_split_line(line, number))
        except ValueError as err:
            raise InputError(f"{path}: {err}") from None
    return entries


def available_splits(repo_root: str | Path = REPO_ROOT) -> list[str]:
    """Names of the split folders under `<repo_root>/splits/`."""
    splits_dir = Path(repo_root) / "splits"
    if not splits_dir.is_dir():
        return []
    return sorted(p.name for p in splits_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def resolve_split_dir(split: str | Path, repo_root: str | Path = REPO_ROOT) -> Path:
    """Folder of a split given by name (under `<repo_root>/splits/`) or by path."""
    named = Path(repo_root) / "splits" / str(split)
    if named.is_dir():
        return named
    if Path(split).is_dir():
        return Path(split)
    hint = (f" Download it with `{paths.command('download_splits.py')} {split}`."
            if str(split) in PUBLISHED_SPLITS else "")
    raise FileNotFoundError(
        f"split {str(split)!r} is neither a folder under {Path(repo_root) / 'splits'} nor a "
        f"directory; available splits: {', '.join(available_splits(repo_root)) or 'none'}.{hint}")


# ---------------------------------------------------------------------------------------------
# Downloading the published lists


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def refuse_existing(paths: Iterable[str | Path], overwrite: bool, flag: str = "--overwrite",
                    error: type[InputError] = InputError) -> None:
    """Raise ``error`` (an InputError) naming the first of ``paths`` that exists, unless ``overwrite``.

    Commands call this before their long work starts, so a refusal costs nothing.
    """
    if overwrite:
        return
    existing = [Path(p) for p in paths if os.path.lexists(p)]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise error(f"{existing[0]}{more} already exists; pass {flag} to replace it")


def _split_files(names: Iterable[str] | None) -> list[str]:
    names = list(PUBLISHED_SPLITS) if names is None else list(names)
    unknown = [n for n in names if n not in PUBLISHED_SPLITS]
    if unknown:
        raise InputError(f"unknown published split(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(PUBLISHED_SPLITS)}")
    return [f for n in names for f in PUBLISHED_SPLITS[n]]


def download_splits(names: Iterable[str] | None = None, dest_dir: str | Path = REPO_ROOT / "splits",
                    commit: str = MONODEPTH2_COMMIT, timeout: float = 30.0,
                    overwrite: bool = False, force: bool = False) -> list[Path]:
    """Fetch the published split files (all if `names` is None) into `dest_dir`, SHA-256 checked.

    Files already present with the right hash are kept unless `force`. A present file whose content differs
    (e.g. your edited copy) is replaced only with `overwrite`; otherwise nothing is fetched and an InputError
    names it. Returns the paths.
    """
    dest_dir = Path(dest_dir)
    rels = _split_files(names)
    valid = {rel for rel in rels if (dest_dir / rel).is_file() and sha256_file(dest_dir / rel) == SPLIT_SHA256[rel]}
    refuse_existing([dest_dir / rel for rel in rels if rel not in valid], overwrite)
    written = []
    for rel in rels:
        target = dest_dir / rel
        if rel in valid and not force:
            written.append(target)
            continue
        url = RAW_URL.format(repo=MONODEPTH2_REPO, commit=commit, path=rel)
        try:
            with urlopen(url, timeout=timeout) as response:
                data = response.read()
        except (URLError, OSError) as err:
            raise SplitDownloadError(
                f"could not download {url} ({getattr(err, 'reason', err)}). If this machine is "
                f"offline, copy the files by hand: clone https://github.com/{MONODEPTH2_REPO} "
                f"elsewhere, check out {commit}, copy its splits/{rel} to {target}, then run "
                "`python download_splits.py --verify`") from err
        actual = hashlib.sha256(data).hexdigest()
        if actual != SPLIT_SHA256[rel]:
            raise SplitDownloadError(f"SHA-256 mismatch for {url}: got {actual}, expected "
                                     f"{SPLIT_SHA256[rel]}; nothing was written to {target}")
        atomic_write_bytes(target, data)
        written.append(target)
    return written


def verify_splits(dest_dir: str | Path = REPO_ROOT / "splits",
                  names: Iterable[str] | None = None) -> dict[str, str]:
    """Status of each published split file under `dest_dir`: "ok", "missing" or "mismatch"."""
    status = {}
    for rel in _split_files(names):
        path = Path(dest_dir) / rel
        if not path.is_file():
            status[rel] = "missing"
        else:
            status[rel] = "ok" if sha256_file(path) == SPLIT_SHA256[rel] else "mismatch"
    return status


# ---------------------------------------------------------------------------------------------
# Making new split lists


def _frame_indices(image_dir: Path, exts: Sequence[str]) -> set[int]:
    if not image_dir.is_dir():
        return set()
    return {int(p.stem) for p in image_dir.iterdir() if p.suffix.lower() in exts and p.stem.isdigit()}


def find_split_lines(data_path: str | Path, frame_ids: Sequence[int] = (0, -1, 1),
                     stereo: bool = False, exts: Sequence[str] = (".png", ".jpg")) -> list[str]:
    """Sorted split lines for every usable frame of a KITTI-raw-layout tree.

    Frames come from `<data_path>/<date>/<drive>/image_02/data/%010d.(png|jpg)`. A frame is kept
    only if frames i + f exist for every f in `frame_ids`. With `stereo`, `r` lines (image_03) are
    added too, and every line also needs the opposite camera's frame i (the stereo pair).
    """
    data_path = Path(data_path)
    if not data_path.is_dir():
        raise FileNotFoundError(f"data path not found: {data_path}")
    lines, found_any = [], False
    for drive_dir in sorted(p.parent.parent for p in data_path.glob(f"*/*/{CAMERA_FOLDERS[0]}/{IMAGE_DATA}")):
        folder = drive_dir.relative_to(data_path).as_posix()
        frames = {side: _frame_indices(Path(image_dir(data_path, folder, side)), exts) for side in ("l", "r")}
        found_any = found_any or bool(frames["l"])
        for side in ("l", "r") if stereo else ("l",):
            other = frames[other_side(side)]
            for i in sorted(frames[side]):
                if all(i + f in frames[side] for f in frame_ids) and (not stereo or i in other):
                    lines.append(format_split_line(folder, i, side))
    if not found_any:
        raise InputError(f"no frames found under {data_path} "
                         "(expected <date>/<drive>/image_02/data/<index>.png or .jpg)")
    if not lines:
        raise InputError(f"no frame under {data_path} has all neighbours {list(frame_ids)}")
    return sorted(lines, key=_line_key)


def _line_key(line: str) -> tuple[str, int, str]:
    folder, index, side = parse_split_line(line)
    return folder, index, side or ""


def _split_by_fraction(items: list, fractions: Sequence[float], rng: random.Random) -> list[list]:
    # Shuffle, then cut off round(f * n) items per fraction (at least 1 when f > 0 and n > 1).
    items = list(items)
    rng.shuffle(items)
    parts, start = [], 0
    for fraction in fractions:
        count = round(fraction * len(items))
        if fraction > 0 and count == 0 and len(items) > 1:
            count = 1
        parts.append(items[start:start + count])
        start += count
    return [items[start:]] + parts


def make_split(data_path: str | Path, out_dir: str | Path, frame_ids: Sequence[int] = (0, -1, 1),
               val_fraction: float = 0.1, test_fraction: float = 0.0, by_drive: bool = False,
               stereo: bool = False, seed: int = 0, overwrite: bool = False) -> dict[str, list[str]]:
    """Write train_files.txt / val_files.txt (and test_files.txt if test_fraction > 0) to out_dir.

    Frames are split at random by line, or with `by_drive` by whole drives (so val drives are
    unseen in training; fractions then count drives). Deterministic for a given seed. Each list
    is written sorted (atomically). Returns {"train": lines, "val": lines[, "test": lines]}.
    A folder that already holds split lists is refused unless `overwrite`; with it, a test_files.txt
    that this call does not write is removed, so the folder never mixes an old test list with new lists.
    """
    if not 0 <= val_fraction + test_fraction < 1:
        raise InputError("val_fraction + test_fraction must be in [0, 1)")
    out_dir = Path(out_dir)
    list_files = [out_dir / f"{name}_files.txt" for name in ("train", "val", "test")]
    refuse_existing(list_files, overwrite)
    lines = find_split_lines(data_path, frame_ids, stereo)
    rng = random.Random(seed)
    if by_drive:
        drives = sorted({line.split()[0] for line in lines})
        drive_parts = _split_by_fraction(drives, (val_fraction, test_fraction), rng)
        parts = [[ln for ln in lines if ln.split()[0] in part] for part in map(set, drive_parts)]
    else:
        parts = _split_by_fraction(lines, (val_fraction, test_fraction), rng)
    names = ("train", "val", "test") if test_fraction > 0 else ("train", "val")
    result = {name: sorted(part, key=_line_key) for name, part in zip(names, parts[:len(names)], strict=True)}
    for name, part in result.items():
        write_split_file(out_dir / f"{name}_files.txt", part)
    if "test" not in result:
        (out_dir / "test_files.txt").unlink(missing_ok=True)
    return result


__all__ = [
    "MONODEPTH2_REPO", "MONODEPTH2_COMMIT", "PUBLISHED_SPLITS", "SPLIT_SHA256", "SplitDownloadError",
    "readlines", "read_split_file", "available_splits", "resolve_split_dir",
    "sha256_file", "refuse_existing", "download_splits", "verify_splits",
    "find_split_lines", "make_split",
]


# KITTI raw drives of the Eigen test split (Eigen et al. 2014; 697 frames) and of the Eigen-benchmark test split
# (Uhrig et al. 2017; 652 frames): 28 drives in all. Self-supervised pretraining on any of their frames leaks the
# test set into a model evaluated on those splits, so flow pretraining excludes them by default.
EIGEN_TEST_DRIVES = frozenset(f"{name}_sync" for name in (
    "2011_09_26_drive_0002", "2011_09_26_drive_0009", "2011_09_26_drive_0013", "2011_09_26_drive_0020",
    "2011_09_26_drive_0023", "2011_09_26_drive_0027", "2011_09_26_drive_0029", "2011_09_26_drive_0036",
    "2011_09_26_drive_0046", "2011_09_26_drive_0048", "2011_09_26_drive_0052", "2011_09_26_drive_0056",
    "2011_09_26_drive_0059", "2011_09_26_drive_0064", "2011_09_26_drive_0084", "2011_09_26_drive_0086",
    "2011_09_26_drive_0093", "2011_09_26_drive_0096", "2011_09_26_drive_0101", "2011_09_26_drive_0106",
    "2011_09_26_drive_0117", "2011_09_28_drive_0002", "2011_09_29_drive_0071", "2011_09_30_drive_0016",
    "2011_09_30_drive_0018", "2011_09_30_drive_0027", "2011_10_03_drive_0027", "2011_10_03_drive_0047"))
