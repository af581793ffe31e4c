"""KITTI flow PNG format and the built-in 16-bit PNG codec (monodepth2_geopt.flow_io)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from monodepth2_geopt.flow_io import (
    decode_png,
    encode_png,
    read_flow_png,
    read_png,
    write_flow_png,
    write_png,
)


def _png_with_filters(arr: np.ndarray, types: np.ndarray) -> bytes:
    """Reference PNG encoder (16-bit RGB) applying the given filter type to each row."""
    h, w, c = arr.shape
    bpp = 2 * c
    raw = arr.astype(">u2").view(np.uint8).reshape(h, w * bpp).astype(np.int64)
    rows = []
    for r in range(h):
        x = raw[r]
        up = raw[r - 1] if r else np.zeros_like(x)
        left = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])
        ul = np.concatenate([np.zeros(bpp, np.int64), up[:-bpp]])
        t = int(types[r])
        if t == 0:
            pred = 0
        elif t == 1:
            pred = left
        elif t == 2:
            pred = up
        elif t == 3:
            pred = (left + up) >> 1
        else:
            p = left + up - ul
            pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - ul)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
        rows.append(bytes([t]) + ((x - pred) & 255).astype(np.uint8).tobytes())

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


def test_flow_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    flow = rng.uniform(-300, 300, (37, 53, 2)).astype(np.float32)
    flow[0, 0] = [511.98, -512.0]  # extremes of the representable range
    valid = rng.random((37, 53)) > 0.3
    valid[0, 0] = True
    path = tmp_path / "flow.png"
    write_flow_png(path, flow, valid)
    f2, v2 = read_flow_png(path)
    assert f2.dtype == np.float32 and f2.shape == flow.shape and v2.dtype == bool
    assert np.array_equal(v2, valid)
    assert np.array_equal(f2[valid], (np.round(flow.astype(np.float64) * 64) / 64).astype(np.float32)[valid])
    assert np.all(f2[~valid] == 0)
    # quantised flow survives a second round trip bit-exactly
    write_flow_png(tmp_path / "again.png", f2, v2)
    f3, v3 = read_flow_png(tmp_path / "again.png")
    assert np.array_equal(f3, f2) and np.array_equal(v3, v2)


def test_flow_png_is_kitti_format(tmp_path):
    """16-bit RGB, R = u, G = v, B = valid, value = flow * 64 + 2**15; invalid = (0, 0, 0)."""
    flow = np.zeros((2, 3, 2), np.float32)
    flow[0, 0] = [1.5, -2.25]
    flow[1, 2] = [1000.0, 0.0]  # not representable -> written invalid
    valid = np.ones((2, 3), bool)
    valid[0, 1] = False
    path = tmp_path / "f.png"
    write_flow_png(path, flow, valid)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height, depth, ctype = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, ctype) == (3, 2, 16, 2)  # 16-bit truecolour
    raw = read_png(path)
    assert raw.dtype == np.uint16 and raw.shape == (2, 3, 3)
    assert list(raw[0, 0]) == [int(1.5 * 64 + 2 ** 15), int(-2.25 * 64 + 2 ** 15), 1]
    assert list(raw[0, 1]) == [0, 0, 0] and list(raw[1, 2]) == [0, 0, 0]
    assert list(raw[1, 0]) == [2 ** 15, 2 ** 15, 1]
    # Pillow opens it as an RGB PNG of the right size (it cannot keep 16 bits, hence our codec)
    with Image.open(path) as im:
        assert im.size == (3, 2) and im.format == "PNG"
    f, v = read_flow_png(path)
    assert v.sum() == 4 and np.allclose(f[0, 0], [1.5, -2.25])


def test_valid_none_and_nonfinite(tmp_path):
    flow = np.ones((4, 5, 2), np.float32)
    flow[1, 1, 0] = np.nan
    write_flow_png(tmp_path / "f.png", flow)
    f, v = read_flow_png(tmp_path / "f.png")
    assert v.sum() == 19 and not v[1, 1] and np.allclose(f[v], 1.0)
    with pytest.raises(ValueError):
        write_flow_png(tmp_path / "bad.png", np.zeros((4, 5, 3)))
    with pytest.raises(ValueError):
        write_flow_png(tmp_path / "bad.png", flow, np.ones((5, 4), bool))
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "rgb8.png")
    with pytest.raises(ValueError):
        read_flow_png(tmp_path / "rgb8.png")


@pytest.mark.parametrize("shape,dtype", [((7, 9), np.uint16), ((7, 9, 3), np.uint16), ((7, 9, 3), np.uint8),
                                         ((5, 4, 4), np.uint8), ((6, 3, 2), np.uint16), ((1, 1), np.uint8)])
def test_png_codec_round_trip(tmp_path, shape, dtype):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    write_png(tmp_path / "a.png", arr)
    back = read_png(tmp_path / "a.png")
    assert back.dtype == dtype and np.array_equal(back, arr)


def test_png_codec_interoperates_with_pillow(tmp_path):
    rng = np.random.default_rng(2)
    depth = rng.integers(0, 65536, (20, 30)).astype(np.uint16)
    with Image.open(io.BytesIO(encode_png(depth))) as im:  # how KITTI depth PNG readers load it
        assert im.mode.startswith("I") and np.array_equal(np.array(im), depth)
    rgb = (np.linspace(0, 255, 40)[None, :, None] + rng.integers(0, 30, (25, 40, 3))).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=True)  # libpng-style adaptive filters
    assert np.array_equal(decode_png(buf.getvalue()), rgb)


def test_decoder_handles_all_row_filters():
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 65536, (23, 31, 3)).astype(np.uint16)
    arr[:, :, 0] = np.cumsum(rng.integers(0, 9, (23, 31)), axis=1)  # some smooth content too
    types = np.array([0, 1, 2, 3, 4] * 5)[:23]
    assert np.array_equal(decode_png(_png_with_filters(arr, types)), arr)
    assert np.array_equal(decode_png(_png_with_filters(arr, np.full(23, 4))), arr)
    with pytest.raises(ValueError):
        decode_png(b"not a png")
