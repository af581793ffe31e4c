"""The pre-resized uint8 cache returns exactly what the decoding path returns (incl. flips)."""
import numpy as np
import pytest
import torch
from PIL import Image

from monodepth2_geopt.datasets import KITTIRAWDataset
from monodepth2_geopt.errors import InputError
from monodepth2_geopt.image_cache import build_cache


def _tree(tmp_path, n=6):
    rng = np.random.default_rng(1)
    d = tmp_path / "2011_09_26" / "2011_09_26_drive_0001_sync" / "image_02" / "data"
    d.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (50, 130, 3), dtype=np.uint8)).save(d / f"{i:010d}.png")
    return [f"2011_09_26/2011_09_26_drive_0001_sync {i} l" for i in range(1, n - 1)]


def test_cache_matches_decoding(tmp_path):
    lines = _tree(tmp_path)
    plain = KITTIRAWDataset(tmp_path, lines, 32, 64, [0, -1, 1], img_ext=".png")
    assert build_cache(plain, tmp_path / "cache", progress=False) == 6
    cached = KITTIRAWDataset(tmp_path, lines, 32, 64, [0, -1, 1], img_ext=".png", image_cache=tmp_path / "cache")
    for i in range(len(lines)):
        a, b = plain[i], cached[i]
        for f in (0, -1, 1):
            assert torch.equal(a[("color", f)], b[("color", f)])
    folder, idx = lines[0].split()[:2]
    assert torch.equal(plain.load_color(folder, int(idx), "l", True), cached.load_color(folder, int(idx), "l", True))


def test_cache_of_other_size_is_rejected(tmp_path):
    lines = _tree(tmp_path)
    build_cache(KITTIRAWDataset(tmp_path, lines, 32, 64, [0], img_ext=".png"), tmp_path / "c", progress=False)
    with pytest.raises(InputError, match="rebuild it with `python prepare_cache.py"):  # refused when opened
        KITTIRAWDataset(tmp_path, lines, 64, 128, [0], img_ext=".png", image_cache=tmp_path / "c")
    with pytest.raises(InputError, match="prepare_cache.py"):
        KITTIRAWDataset(tmp_path, lines, 32, 64, [0], img_ext=".png", image_cache=tmp_path / "missing")
