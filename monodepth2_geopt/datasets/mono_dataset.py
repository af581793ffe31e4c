"""Base dataset for self-supervised depth: workers decode, resize and flip; nothing else.

Batch schema (one item; the DataLoader stacks them):
    ("color", <frame_id>)  uint8 [3, height, width] for each frame id (0, -1, 1, ... and "s" for stereo),
                           already resized to the training resolution and flipped when ``flip`` is set
    "K"                    float32 [4, 4] *normalised* intrinsics (fx/W, fy/H, cx/W, cy/H) of frame 0,
                           with cx mirrored when flipped
    "stereo_T"             float32 [4, 4] transform to the other stereo camera (baseline in training units)
    "flip"                 bool tensor, whether the sample was mirrored
    "index"                int64 index in the split
    "depth_gt"             float32 [1, H_gt, W_gt] (only with ``load_depth``), never flipped
    "pseudo_disp"          float32 [1, height, width] teacher disparity of frame 0, NaN = no label (only with
                           ``pseudo_labels``, ``--pseudo_label_path``), resized and flipped like the frames
The device side (``monodepth2_geopt.batch.prepare_batch``) turns this into Monodepth2's keys
("color", f, s), ("color_aug", f, 0), ("K", s), ("inv_K", s): float conversion, the scale pyramid and the
colour augmentation (identical for every frame of a sample) run on the GPU.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from monodepth2_geopt.errors import InputError
from monodepth2_geopt.kitti_layout import (open_image, other_side, parse_split_line, pil_loader, resize_image,
                                           to_uint8_tensor)

KITTI_NORMALISED_K = (0.58, 1.92, 0.5, 0.5)


class MonoDataset(Dataset):
    """Superclass for monocular (and stereo) frame datasets in Monodepth2's split format.

    Args keep Monodepth2's order; ``num_scales`` is accepted for compatibility (the pyramid is built on the
    device). ``intrinsics`` are normalised (fx, fy, cx, cy); ``load_depth`` adds ``depth_gt``.
    """

    full_res_shape = (1242, 375)  # (width, height) of the ground truth used for monitoring

    def __init__(self, data_path, filenames, height, width, frame_idxs, num_scales=4, is_train=False,
                 img_ext=".jpg", intrinsics=None, load_depth=False, stereo_baseline=0.1, image_cache=None):
        super().__init__()
        if height % 32 or width % 32:
            raise InputError(f"--height {height} and --width {width} must both be multiples of 32")
        if len(filenames) == 0:
            raise InputError("the split is empty: the split file has no lines")
        self.data_path = str(data_path)
        self.filenames = list(filenames)
        self.height, self.width = height, width
        self.frame_idxs = list(frame_idxs)
        self.num_scales = num_scales
        self.is_train = is_train
        self.img_ext = img_ext
        fx, fy, cx, cy = intrinsics if intrinsics is not None else KITTI_NORMALISED_K
        self.K = np.array([[fx, 0, cx, 0], [0, fy, cy, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32)
        self.load_depth = load_depth
        self.stereo_baseline = stereo_baseline
        self.resample = Image.Resampling.LANCZOS
        self.loader = pil_loader
        self.pseudo_labels = None  # a pseudo_labels.PseudoLabelStore (--pseudo_label_path)
        self.return_source_aspect = False  # add "source_aspect" to each item (--square_pixels)
        self._source_aspects: dict = {}
        self.image_cache = None
        if image_cache:
            from monodepth2_geopt.image_cache import ImageCache
            self.image_cache = ImageCache(image_cache, height, width, data_path=self.data_path)  # stale: refused
            self.image_cache.warn_missing(self)

    def __len__(self):
        return len(self.filenames)

    # --- to be provided by subclasses ---------------------------------------------------------------
    def get_image_path(self, folder: str, frame_index: int, side: str | None) -> str:
        raise NotImplementedError

    def get_depth(self, folder: str, frame_index: int, side: str | None, do_flip: bool) -> np.ndarray:
        raise NotImplementedError

    def check_depth(self) -> bool:
        return False

    def other_side(self, side):
        return other_side(side)

    # ------------------------------------------------------------------------------------------------
    def load_color(self, folder, frame_index, side, do_flip) -> torch.Tensor:
        if self.image_cache is not None:
            cached = self.image_cache.get(folder, frame_index, side)
            if cached is not None:
                cached = cached[:, ::-1] if do_flip else cached
                return torch.from_numpy(np.array(cached)).permute(2, 0, 1).contiguous()  # copy: memmap is read-only
        img = resize_image(self.loader(self.get_image_path(folder, frame_index, side)), self.width, self.height,
                           self.resample)
        if do_flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_uint8_tensor(img)

    def line_frames(self, index: int) -> list[tuple[str, int, str | None]]:
        """(folder, frame index, side) of every image item ``index`` reads."""
        folder, frame_index, side = parse_split_line(self.filenames[index])
        return [(folder, frame_index, self.other_side(side)) if i == "s" else (folder, frame_index + i, side)
                for i in self.frame_idxs]

    def missing_lines(self, progress: bool = False) -> list[tuple[int, str]]:
        """(line index, first missing image path) of every split line whose images (any frame id, the stereo
        partner included) do not exist; frames in the image cache count as present. One stat per image."""
        from tqdm import tqdm
        missing = []
        lines = range(len(self.filenames))
        for index in tqdm(lines, desc="checking the split's images", unit="line", disable=not progress,
                          mininterval=1.0):
            try:
                frames = self.line_frames(index)
            except (InputError, KeyError, ValueError) as err:
                missing.append((index, f"the line cannot be read ({err})"))
                continue
            for folder, frame_index, side in frames:
                if self.image_cache is not None and self.image_cache.get(folder, frame_index, side) is not None:
                    continue
                path = self.get_image_path(folder, frame_index, side)
                if not os.path.isfile(path):
                    missing.append((index, path))
                    break
        return missing

    def target_image(self, index: int) -> str:
        """The path of the target frame (frame 0) of line ``index``."""
        folder, frame_index, side = parse_split_line(self.filenames[index])
        return self.get_image_path(folder, frame_index, side)

    def drop_lines(self, indices) -> None:
        drop = set(indices)
        self.filenames = [line for i, line in enumerate(self.filenames) if i not in drop]

    def __getitem__(self, index):
        """One training item. With ``skip_bad_images`` an unreadable image is reported (path, once) and the next
        item is returned instead, so one corrupt frame does not end a long run."""
        if not getattr(self, "skip_bad_images", False):
            return self.get_item(index)
        for attempt in range(len(self)):
            i = (index + attempt) % len(self)
            try:
                return self.get_item(i)
            except (InputError, FileNotFoundError) as err:
                print(f"warning: skipping split line {self.filenames[i]!r} (--skip_bad_images): {err}", flush=True)
        raise InputError("--skip_bad_images: every item of the split failed to load")

    def get_item(self, index):
        folder, frame_index, side = parse_split_line(self.filenames[index])
        do_flip = self.is_train and random.random() > 0.5
        inputs = {}
        for i in self.frame_idxs:
            if i == "s":
                if side is None:
                    raise InputError(f"split line {self.filenames[index]!r} has no side (l/r) but stereo "
                                     "training needs one")
                inputs[("color", i)] = self.load_color(folder, frame_index, self.other_side(side), do_flip)
            else:
                inputs[("color", i)] = self.load_color(folder, frame_index + i, side, do_flip)
        K = self.K.copy()
        if do_flip:
            K[0, 2] = 1.0 - K[0, 2]
        inputs["K"] = torch.from_numpy(K)
        if "s" in self.frame_idxs:
            stereo_T = np.eye(4, dtype=np.float32)
            baseline_sign = -1 if do_flip else 1
            side_sign = -1 if side in ("l", "2") else 1
            stereo_T[0, 3] = side_sign * baseline_sign * self.stereo_baseline
            inputs["stereo_T"] = torch.from_numpy(stereo_T)
        if self.pseudo_labels is not None:
            image = self.get_image_path(folder, frame_index, side)
            inputs["pseudo_disp"] = self.pseudo_labels.load(self.data_path, image, self.width, self.height,
                                                             flip=do_flip)
        if self.load_depth:
            depth = self.get_depth(folder, frame_index, side, False)
            inputs["depth_gt"] = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None]
        if self.return_source_aspect:
            inputs["source_aspect"] = torch.tensor(self.source_aspect(folder, frame_index, side), dtype=torch.float32)
        inputs["flip"] = torch.tensor(do_flip)
        inputs["index"] = torch.tensor(index)
        return inputs

    def source_aspect(self, folder, frame_index, side) -> float:
        """Width / height, in pixels of the file, of the image region the input shows: the whole frame, resized
        to the input size (so fy/H = fx/W x this for a camera with square pixels). Read from the file's header once
        per folder and camera (one camera's frames share a size)."""
        key = (folder, side)
        if key not in self._source_aspects:
            with open_image(self.get_image_path(folder, frame_index, side)) as img:  # the header only
                w, h = img.size
            self._source_aspects[key] = w / h
        return self._source_aspects[key]
