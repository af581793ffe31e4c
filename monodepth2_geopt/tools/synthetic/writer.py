"""Writing worlds to disk: the KITTI raw layout with exact ground truth (:func:`generate_dataset`), uncalibrated
video (:func:`generate_video`), calibration files and split lists. See the package docstring for the layout."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Union

import numpy as np
from PIL import Image

from ... import kitti_layout as layout
from ...errors import InputError
from ...fileio import atomic_dir
from ...flow_io import write_flow_png
from .scene import STEREO_BASELINE, VELO_TO_CAM_R, VELO_TO_CAM_T, kitti_intrinsics
from .world import World

PathLike = Union[str, "os.PathLike[str]"]


def _fmt(values: Sequence[float]) -> str:
    """KITTI-style '%e' numbers, with more digits only where needed to be exact."""
    out = []
    for v in np.asarray(values, dtype=np.float64).reshape(-1):
        s = f"{v:.6e}"
        out.append(s if float(s) == v else f"{v:.15e}")
    return " ".join(out)


def write_calibration(
    calib_dir: PathLike, width: int, height: int, baseline: float = STEREO_BASELINE, square_pixels: bool = False
) -> dict[str, str]:
    """Write ``calib_cam_to_cam.txt``, ``calib_velo_to_cam.txt`` and ``calib_imu_to_velo.txt``.

    Rectified cameras 00/02 (left) coincide; 01/03 (right) sit at +``baseline`` along x, so
    ``P_rect_03 = [K | (-fx * baseline, 0, 0)^T]``. ``R_rect_00`` is the identity and
    ``S_rect_02 = (width, height)``. ``calib_velo_to_cam`` gives velodyne -> camera 00.
    """
    os.makedirs(calib_dir, exist_ok=True)
    k = kitti_intrinsics(width, height, square_pixels)
    eye = np.eye(3)
    lines = ["calib_time: 01-Jan-2000 00:00:00", "corner_dist: 9.950000e-02"]
    for cam in range(4):
        right = cam % 2 == 1
        p = np.hstack([k, np.zeros((3, 1))])
        if right:
            p[0, 3] = -k[0, 0] * baseline
        lines += [
            f"S_{cam:02d}: {_fmt([width, height])}",
            f"K_{cam:02d}: {_fmt(k)}",
            f"D_{cam:02d}: {_fmt(np.zeros(5))}",
            f"R_{cam:02d}: {_fmt(eye)}",
            f"T_{cam:02d}: {_fmt([-baseline if right else 0.0, 0.0, 0.0])}",
            f"S_rect_{cam:02d}: {_fmt([width, height])}",
            f"R_rect_{cam:02d}: {_fmt(eye)}",
            f"P_rect_{cam:02d}: {_fmt(p)}",
        ]
    paths = {
        "cam_to_cam": os.path.join(calib_dir, layout.CAM_TO_CAM),
        "velo_to_cam": os.path.join(calib_dir, layout.VELO_TO_CAM),
        "imu_to_velo": os.path.join(calib_dir, "calib_imu_to_velo.txt"),
    }
    with open(paths["cam_to_cam"], "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(paths["velo_to_cam"], "w") as f:
        f.write(
            "calib_time: 01-Jan-2000 00:00:00\n"
            f"R: {_fmt(VELO_TO_CAM_R)}\nT: {_fmt(VELO_TO_CAM_T)}\n"
            "delta_f: 0.000000e+00 0.000000e+00\ndelta_c: 0.000000e+00 0.000000e+00\n"
        )
    with open(paths["imu_to_velo"], "w") as f:
        f.write(f"calib_time: 01-Jan-2000 00:00:00\nR: {_fmt(eye)}\nT: {_fmt([-0.8, 0.3, -0.8])}\n")
    return paths


def _save_image(path: str, image: np.ndarray, ext: str) -> None:
    im = Image.fromarray(image)
    if ext == "png":
        im.save(path, format="PNG", compress_level=1)  # lossless; fast zlib level
    else:
        # Monodepth2's recommended conversion: quality 92, 4:2:0 chroma subsampling
        im.save(path, format="JPEG", quality=92, subsampling=2)


def frame_files(root: str, folder: str, frame_index: int, ext: str, velodyne: bool) -> dict[str, str]:
    """The files of frame ``frame_index`` of drive ``folder``, at the paths the readers use (``kitti_layout``).

    Keys: ``image_l``/``image_r`` (``ext`` with its dot), ``depth_png_l``/``_r``, ``depth_npy_l``/``_r`` (this
    world's exact depth, ``<drive>/depth/image_0X/%010d.npy``), ``flow`` (left camera, t -> t+1) and, with
    ``velodyne``, ``velodyne``.
    """
    files = {"flow": layout.flow_png_path(root, folder, frame_index, "l")}
    for side in ("l", "r"):
        files["image_" + side] = layout.frame_path(root, folder, frame_index, side, ext)
        files["depth_png_" + side] = layout.depth_png_path(root, folder, frame_index, side)
        files["depth_npy_" + side] = os.path.join(root, folder, "depth", layout.camera_folder(side),
                                                  layout.frame_name(frame_index, ".npy"))
    if velodyne:
        files["velodyne"] = layout.velodyne_path(root, folder, frame_index)
    return files


def _world_seed(seed: int, index: int, salt: int) -> int:
    return int(np.random.SeedSequence([int(seed), salt, int(index)]).generate_state(1)[0])


def drive_seed(seed: int, drive: int) -> int:
    """The :class:`World` seed of drive ``drive`` (0-based) of ``generate_dataset(seed=seed)``."""
    return _world_seed(seed, drive, 1)


def sequence_seed(seed: int, sequence: int) -> int:
    """The :class:`World` seed of sequence ``sequence`` (0-based) of ``generate_video(seed=seed)``."""
    return _world_seed(seed, sequence, 2)


def generate_dataset(
    out_dir: PathLike,
    num_drives: int = 2,
    frames_per_drive: int = 50,
    width: int = 320,
    height: int = 96,
    seed: int = 0,
    ext: str = "png",
    moving_objects: int = 0,
    brightness_change: float = 0.02,
    speed: float = 1.0,
    date: str = "2000_01_01",
    velodyne: bool = True,
    val_fraction: float = 0.1,
    verbose: bool = False,
    overwrite: bool = False,
    camera_shake: float = 0.0,
    square_pixels: bool = False,
) -> dict[str, object]:
    """Render ``num_drives`` drives and write them in the KITTI raw layout (see module docstring).

    A non-empty ``out_dir`` is refused unless ``overwrite`` (see ``_check_out_dir``). The world is rendered into
    a hidden folder beside ``out_dir`` and then replaces it whole, so old and new frames never mix and an
    interrupted run leaves the previous folder as it was.

    Splits: the last ``max(1, round(0.2 * num_drives))`` drives are test drives (all frames,
    side ``l``); the other drives give train/val lines (frames 1..N-2 so that -1/+1 neighbours
    exist, both ``l`` and ``r``; a seeded ``val_fraction`` of frames goes to val). With a single
    drive, test uses that same drive.

    Returns:
        dict with ``root``, ``date``, ``calib_dir``, ``calib`` (paths), ``drives`` (folder names
        relative to root), ``drive_dirs`` (absolute), ``splits`` (name -> path), ``K``,
        ``width``, ``height``, ``frames_per_drive``.
    """
    if ext not in ("png", "jpg"):
        raise ValueError("ext must be 'png' or 'jpg'")
    if frames_per_drive < 3:
        raise ValueError("frames_per_drive must be >= 3 (neighbours -1/+1 are needed)")
    if num_drives < 1:
        raise ValueError("num_drives must be >= 1")
    final_root = os.fspath(out_dir)
    _check_out_dir(final_root, overwrite, _dataset_entries(date))
    with atomic_dir(final_root) as build:
        info = _write_dataset(os.fspath(build), num_drives, frames_per_drive, width, height, seed, ext,
                              moving_objects, brightness_change, speed, date, velodyne, val_fraction, verbose,
                              camera_shake, square_pixels)

    def rebase(path: str) -> str:  # the paths inside the build folder, as they are now under out_dir
        return os.path.join(final_root, os.path.relpath(path, info["root"]))

    info.update(root=final_root, calib_dir=rebase(info["calib_dir"]),
                calib={k: rebase(v) for k, v in info["calib"].items()},
                drive_dirs=[rebase(d) for d in info["drive_dirs"]],
                splits={k: rebase(v) for k, v in info["splits"].items()})
    return info


def _dataset_entries(date: str) -> re.Pattern:
    return re.compile(rf"{re.escape(date)}|\d{{4}}_\d{{2}}_\d{{2}}|splits|synthetic_info\.json")


_VIDEO_ENTRIES = re.compile(r"seq_\d{3,}(\.mp4)?")


def _check_out_dir(root: str, overwrite: bool, generated: re.Pattern) -> None:
    """Refuse a non-empty ``root`` unless ``overwrite``; even then, only a folder this module wrote.

    ``--overwrite`` replaces the whole folder, so a folder holding anything else (a typo'd ``--out_dir`` such as
    the data root, or files a user put there) is refused either way: deleting them is never what was asked.
    """
    if not os.path.isdir(root):
        if os.path.exists(root):
            raise InputError(f"--out_dir {root} is a file, not a folder")
        return
    entries = sorted(os.listdir(root))
    if not entries:
        return
    if not overwrite:
        raise InputError(f"--out_dir {root} is not empty; pass --overwrite to replace what generate_synthetic.py "
                         "wrote there, or choose a new folder")
    foreign = [e for e in entries if not generated.fullmatch(e)]
    if foreign:
        raise InputError(f"--out_dir {root} holds files generate_synthetic.py did not write (e.g. {foreign[0]!r}); "
                         "--overwrite replaces the whole folder, so move them or choose a new folder")


def _write_dataset(root, num_drives, frames_per_drive, width, height, seed, ext, moving_objects,
                   brightness_change, speed, date, velodyne, val_fraction, verbose,
                   camera_shake=0.0, square_pixels=False) -> dict[str, object]:
    calib_dir = layout.calib_dir(root, date)
    calib = write_calibration(calib_dir, width, height, square_pixels=square_pixels)
    K = kitti_intrinsics(width, height, square_pixels)
    drives, drive_dirs = [], []
    for di in range(num_drives):
        name = f"{date}/{date}_drive_{di + 1:04d}_sync"
        ddir = os.path.join(root, name)
        drives.append(name)
        drive_dirs.append(ddir)
        for p in frame_files(root, name, 0, f".{ext}", velodyne).values():  # the folders, from frame 0's files
            os.makedirs(os.path.dirname(p), exist_ok=True)
        world = World(
            seed=drive_seed(seed, di),
            num_frames=frames_per_drive,
            width=width,
            height=height,
            moving_objects=moving_objects,
            speed=speed,
            brightness_change=brightness_change,
            camera_shake=camera_shake,
            square_pixels=square_pixels,
        )
        with open(os.path.join(ddir, "poses.txt"), "w") as f:
            f.writelines(" ".join(f"{v:.12e}" for v in pose[:3, :4].reshape(-1)) + "\n" for pose in world.poses)
        for fi in range(frames_per_drive):
            files = frame_files(root, name, fi, f".{ext}", velodyne)
            for side in ("l", "r"):
                view = world.render(fi, side)
                _save_image(files["image_" + side], view.image, ext)
                layout.write_depth_png(files["depth_png_" + side], view.depth, beyond_range="zero", compress_level=3)
                np.save(files["depth_npy_" + side], view.depth)
                if side == "l":
                    left = view
            if fi < frames_per_drive - 1:
                flow, valid = world.flow(fi, left)
                write_flow_png(files["flow"], flow, valid)
            if velodyne:
                world.velodyne_scan(fi).tofile(files["velodyne"])
        if verbose:
            print(f"wrote {name} ({frames_per_drive} frames)")
    splits = _write_splits(root, drives, frames_per_drive, seed, val_fraction)
    with open(os.path.join(root, "synthetic_info.json"), "w") as f:
        json.dump(
            {"width": width, "height": height, "K": K.tolist(), "seed": seed,
             "num_drives": num_drives, "frames_per_drive": frames_per_drive, "ext": ext,
             "moving_objects": moving_objects, "baseline": STEREO_BASELINE, "drives": drives,
             "camera_shake": camera_shake, "square_pixels": square_pixels},
            f, indent=1, sort_keys=True,
        )
    return {
        "root": root,
        "date": date,
        "calib_dir": calib_dir,
        "calib": calib,
        "drives": drives,
        "drive_dirs": drive_dirs,
        "splits": splits,
        "K": K,
        "width": width,
        "height": height,
        "frames_per_drive": frames_per_drive,
    }


def _write_splits(root: str, drives: list[str], n: int, seed: int, val_fraction: float) -> dict[str, str]:
    n_test = max(1, round(0.2 * len(drives))) if len(drives) > 1 else 0
    train_drives = drives[: len(drives) - n_test]
    test_drives = drives[len(drives) - n_test :] if n_test else drives
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5B11]))
    train, val = [], []
    for d in train_drives:
        frames = np.arange(1, n - 1)
        is_val = np.zeros(len(frames), bool)
        n_val = round(val_fraction * len(frames))
        if val_fraction > 0 and len(frames) >= 2:
            n_val = min(max(n_val, 1), len(frames) - 1)  # never leave val or train empty
        if n_val:
            is_val[rng.choice(len(frames), n_val, replace=False)] = True
        for f, iv in zip(frames, is_val):
            (val if iv else train).extend(layout.format_split_line(d, f, side) for side in ("l", "r"))
    test = [layout.format_split_line(d, f, "l") for d in test_drives for f in range(n)]
    sdir = os.path.join(root, "splits")
    os.makedirs(sdir, exist_ok=True)
    paths = {}
    for name, lines in (("train", train), ("val", val), ("test", test)):
        paths[name] = os.path.join(sdir, f"{name}_files.txt")
        layout.write_split_file(paths[name], lines)
    return paths


def generate_video(
    out_dir: PathLike,
    num_sequences: int = 1,
    frames: int = 100,
    width: int = 320,
    height: int = 96,
    seed: int = 0,
    mp4: bool = False,
    fps: int = 10,
    moving_objects: int = 2,
    brightness_change: float = 0.02,
    overwrite: bool = False,
    camera_shake: float = 0.0,
    square_pixels: bool = False,
) -> list[str]:
    """Write "uncalibrated video": ``<out_dir>/seq_XXX/%06d.jpg`` (no calibration, no GT).

    With ``mp4=True`` also ``<out_dir>/seq_XXX.mp4`` (H.264 via PyAV, or MPEG-4 Part 2 if
    libx264 is unavailable; odd sizes are edge-padded to even). Each sequence is a different
    world; different seeds give different worlds. Returns the sequence folders, followed by
    the mp4 paths when written. A non-empty ``out_dir`` is refused unless ``overwrite``; the output is
    built beside it and replaces it whole (as ``generate_dataset``).
    """
    final_root = os.fspath(out_dir)
    _check_out_dir(final_root, overwrite, _VIDEO_ENTRIES)
    with atomic_dir(final_root) as build:
        paths = _write_video(os.fspath(build), num_sequences, frames, width, height, seed, mp4, fps,
                             moving_objects, brightness_change, camera_shake, square_pixels)
    return [os.path.join(final_root, os.path.relpath(p, build)) for p in paths]


def _write_video(root, num_sequences, frames, width, height, seed, mp4, fps, moving_objects,
                 brightness_change, camera_shake=0.0, square_pixels=False) -> list[str]:
    folders, videos = [], []
    for si in range(num_sequences):
        world = World(
            seed=sequence_seed(seed, si), num_frames=frames, width=width, height=height,
            moving_objects=moving_objects, brightness_change=brightness_change, camera_shake=camera_shake,
            square_pixels=square_pixels,
        )
        name = f"seq_{si:03d}"
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        images = []
        for fi in range(frames):
            img = world.render(fi, "l").image
            _save_image(os.path.join(folder, f"{fi:06d}.jpg"), img, "jpg")
            if mp4:
                images.append(img)
        folders.append(folder)
        if mp4:
            path = os.path.join(root, f"{name}.mp4")
            _write_mp4(path, images, fps)
            videos.append(path)
    return folders + videos


def _write_mp4(path: str, images: list[np.ndarray], fps: int) -> None:
    import av  # local import: PyAV is only needed for --mp4

    h, w = images[0].shape[:2]
    ph, pw = h + h % 2, w + w % 2
    with av.open(path, mode="w") as container:
        try:
            stream = container.add_stream("libx264", rate=fps, options={"crf": "18"})
        except ValueError:  # pragma: no cover - UnknownCodecError: FFmpeg built without libx264
            stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        for img in images:
            if (ph, pw) != (h, w):
                img = np.pad(img, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
