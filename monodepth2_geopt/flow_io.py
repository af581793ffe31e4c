"""KITTI optical-flow PNG I/O, Middlebury ``.flo`` files, plus a small dependency-free 8/16-bit PNG codec.

Middlebury ``.flo`` (Baker et al., IJCV 2011; the format of Sintel, FlyingChairs and most flow code): the float32
``202021.25`` (the bytes "PIEH", a byte-order check), int32 width, int32 height, then height x width (u, v) float32
pairs row by row, all little-endian. Exact (no quantisation), unlike the KITTI PNG.

KITTI flow format (flow 2012/2015 devkits)
------------------------------------------
A flow map is stored as a 16-bit, 3-channel (RGB) PNG:

* channel R = u (horizontal flow, pixels, +x to the right),
* channel G = v (vertical flow, pixels, +y downwards),
* channel B = valid flag (1 = valid ground truth, 0 = no data),

with ``value = flow * 64 + 2**15`` for R and G, i.e. ``flow = (value - 2**15) / 64``.
Flow is therefore quantised to 1/64 pixel and limited to about ±512 pixels. Invalid
pixels are written as ``(0, 0, 0)``, as in KITTI's own ground truth.

OpenCV users write these files with ``cv2.imwrite`` on a BGR-ordered array; here the
channels are written in true RGB order, so the file is what the KITTI devkit reads
(``I(:,:,1)`` = u).

Pillow cannot write (and silently truncates when reading) 16-bit RGB PNGs, so this
module contains a minimal PNG encoder/decoder in NumPy + zlib. It supports greyscale,
grey+alpha, RGB and RGBA at 8 or 16 bits per channel, non-interlaced, all five PNG
row filters on decode (vectorised along anti-diagonals). :func:`write_png` /
:func:`read_png` are public so other modules can use them for e.g. uint16 depth maps.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Union

import numpy as np

__all__ = [
    "FLO_MAGIC",
    "read_flo",
    "write_flo",
    "FLOW_OFFSET",
    "FLOW_SCALE",
    "decode_png",
    "encode_png",
    "read_flow_png",
    "read_png",
    "write_flow_png",
    "write_png",
]

PathLike = Union[str, "os.PathLike[str]"]

FLOW_SCALE = 64.0
FLOW_OFFSET = 2 ** 15
FLO_MAGIC = 202021.25  # b"PIEH" read as a little-endian float32

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> number of channels
_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}
_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}


# ----------------------------------------------------------------------------------------------
# Generic PNG codec
# ----------------------------------------------------------------------------------------------
def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png(array: np.ndarray, compress_level: int = 6) -> bytes:
    """Encode a uint8 or uint16 array of shape (H, W) or (H, W, C), C in 1..4, as PNG bytes.

    Rows use the PNG "Sub" filter (good compression for smooth data such as flow or depth).
    The output is deterministic for a given input.
    """
    arr = np.asarray(array)
    if arr.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"PNG arrays must be uint8 or uint16, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in _COLOUR_TYPE or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"unsupported PNG array shape {array.shape}")
    height, width, channels = arr.shape
    bit_depth = 8 * arr.dtype.itemsize
    # big-endian byte layout, one row = W * C * bytes_per_sample bytes
    raw = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder(">"), copy=False)).view(np.uint8)
    bpp = channels * arr.dtype.itemsize
    raw = raw.reshape(height, width * bpp)
    filtered = raw.copy()
    filtered[:, bpp:] = raw[:, bpp:] - raw[:, :-bpp]  # Sub filter, uint8 wraps modulo 256
    rows = np.concatenate([np.ones((height, 1), np.uint8), filtered], axis=1)  # filter type 1
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, _COLOUR_TYPE[channels], 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), compress_level))
        + _chunk(b"IEND", b"")
    )


def write_png(path: PathLike, array: np.ndarray, compress_level: int = 6) -> None:
    """Write a uint8/uint16 array of shape (H, W) or (H, W, C) as a PNG file (see :func:`encode_png`)."""
    data = encode_png(array, compress_level)
    with open(path, "wb") as f:
        f.write(data)


def _unfilter(filtered: np.ndarray, ftypes: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG row filtering. ``filtered``: (H, rowbytes) uint8, ``ftypes``: (H,) filter ids."""
    height, rowbytes = filtered.shape
    if np.any(ftypes > 4):
        raise ValueError("corrupt PNG: unknown row filter type")
    npix = rowbytes // bpp
    f = filtered.reshape(height, npix, bpp).astype(np.int32)
    # Fast path: only None / Sub / Up -> each row is a vectorised op.
    if np.all(ftypes <= 2):
        out = np.empty_like(f)
        prev = np.zeros((npix, bpp), np.int32)
        for r in range(height):
            t = ftypes[r]
            if t == 0:
                row = f[r]
            elif t == 1:
                row = np.cumsum(f[r], axis=0) & 255
            else:
                row = (f[r] + prev) & 255
            out[r] = row
            prev = row
        return out.astype(np.uint8).reshape(height, rowbytes)
    # General path: wavefront over anti-diagonals r + c = d (pixel (r, c) needs left, up, up-left).
    rec = np.zeros((height + 1, npix + 1, bpp), np.int32)  # padded with a zero row/column
    for d in range(height + npix - 1):
        r = np.arange(max(0, d - npix + 1), min(height - 1, d) + 1)
        c = d - r
        a = rec[r + 1, c]  # left
        b = rec[r, c + 1]  # up
        ul = rec[r, c]  # up-left
        t = ftypes[r][:, None]
        p = a + b - ul
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - ul)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, ul))
        pred = np.select([t == 0, t == 1, t == 2, t == 3], [0, a, b, (a + b) >> 1], paeth)
        rec[r + 1, c + 1] = (f[r, c] + pred) & 255
    return rec[1:, 1:].astype(np.uint8).reshape(height, rowbytes)


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes (grey / grey+alpha / RGB / RGBA, 8 or 16 bit, non-interlaced).

    Returns uint8 or uint16 of shape (H, W) for single-channel images, else (H, W, C).
    """
    if data[:8] != _PNG_SIGNATURE:
        raise ValueError("not a PNG file")
    pos = 8
    idat = []
    header = None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if tag == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat.append(body)
        elif tag == b"IEND":
            break
    if header is None:
        raise ValueError("corrupt PNG: no IHDR")
    width, height, bit_depth, colour_type, _, _, interlace = header
    if colour_type not in _CHANNELS or bit_depth not in (8, 16):
        raise ValueError(f"unsupported PNG: colour type {colour_type}, bit depth {bit_depth}")
    if interlace:
        raise ValueError("interlaced PNGs are not supported")
    channels = _CHANNELS[colour_type]
    nbytes = bit_depth // 8
    bpp = channels * nbytes
    rowbytes = width * bpp
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    if raw.size < height * (rowbytes + 1):
        raise ValueError("corrupt PNG: truncated image data")
    raw = raw[: height * (rowbytes + 1)].reshape(height, rowbytes + 1)
    pixels = _unfilter(raw[:, 1:], raw[:, 0], bpp)
    dtype = np.dtype(">u2") if bit_depth == 16 else np.dtype(np.uint8)
    out = pixels.view(dtype).reshape(height, width, channels).astype(dtype.newbyteorder("="))
    return out[:, :, 0] if channels == 1 else out


def read_png(path: PathLike) -> np.ndarray:
    """Read a PNG file with :func:`decode_png` (keeps 16-bit RGB data intact, unlike Pillow)."""
    with open(path, "rb") as f:
        return decode_png(f.read())


# ----------------------------------------------------------------------------------------------
# KITTI flow
# ----------------------------------------------------------------------------------------------
def write_flow_png(path: PathLike, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Write optical flow in the KITTI 16-bit PNG format.

    Args:
        path: output ``.png`` path.
        flow: (H, W, 2) float array, pixels; ``flow[..., 0]`` = u (right), ``flow[..., 1]`` = v (down).
        valid: optional (H, W) bool mask; ``None`` means every finite pixel is valid.

    Pixels whose flow is not finite or lies outside the representable range
    (|flow| > (2**16 - 1 - 2**15) / 64 ≈ 511.98 px) are written as invalid. Invalid pixels are
    stored as (0, 0, 0). Values are rounded to the nearest 1/64 px.
    """
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must have shape (H, W, 2), got {flow.shape}")
    ok = np.all(np.isfinite(flow), axis=2)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != flow.shape[:2]:
            raise ValueError(f"valid mask shape {valid.shape} does not match flow {flow.shape[:2]}")
        ok &= valid
    enc = np.round(np.where(ok[..., None], flow, 0.0) * FLOW_SCALE) + FLOW_OFFSET
    ok &= np.all((enc >= 0) & (enc <= 65535), axis=2)
    out = np.zeros(flow.shape[:2] + (3,), np.uint16)
    out[..., :2] = np.where(ok[..., None], np.clip(enc, 0, 65535), 0).astype(np.uint16)
    out[..., 2] = ok.astype(np.uint16)
    write_png(path, out, compress_level=3)


def read_flow_png(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a KITTI flow PNG.

    Returns:
        flow: (H, W, 2) float32 in pixels (u right, v down); 0 where invalid.
        valid: (H, W) bool.
    """
    img = read_png(path)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint16:
        raise ValueError(f"{path}: not a 16-bit RGB KITTI flow PNG ({img.dtype}, {img.shape})")
    valid = img[..., 2] > 0
    flow = (img[..., :2].astype(np.float32) - FLOW_OFFSET) / FLOW_SCALE
    flow[~valid] = 0.0
    return flow, valid


# ----------------------------------------------------------------------------------------------
# Middlebury .flo
# ----------------------------------------------------------------------------------------------
def write_flo(path: PathLike, flow: np.ndarray) -> None:
    """Write a (H, W, 2) flow (pixels, u right, v down) as a Middlebury ``.flo`` file, atomically."""
    from monodepth2_geopt.fileio import atomic_write_bytes

    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must have shape (H, W, 2), got {flow.shape}")
    h, w = flow.shape[:2]
    header = struct.pack("<fii", FLO_MAGIC, w, h)
    atomic_write_bytes(path, header + np.ascontiguousarray(flow, dtype="<f4").tobytes())


def read_flo(path: PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file as (H, W, 2) float32; ValueError naming the file if it is not one."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 12 or struct.unpack("<f", data[:4])[0] != FLO_MAGIC:
        raise ValueError(f"{path}: not a Middlebury .flo file (no PIEH tag)")
    w, h = struct.unpack("<ii", data[4:12])
    if w <= 0 or h <= 0 or len(data) != 12 + 8 * w * h:
        raise ValueError(f"{path}: a .flo of {w}x{h} needs {12 + 8 * max(w, 0) * max(h, 0)} bytes, has {len(data)}")
    return np.frombuffer(data, dtype="<f4", offset=12).reshape(h, w, 2).astype(np.float32)
