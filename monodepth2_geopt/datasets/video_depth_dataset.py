"""Depth training items from uncalibrated frame folders (``extract_frames.py`` output, ``--dataset video``).

Wraps :class:`UncalibratedVideoDataset` into the items ``DepthTask`` expects (``datasets.mono_dataset``'s schema):
``("color", f)`` uint8 frames, ``"pseudo_disp"`` with ``--pseudo_label_path`` (the target frame's label, cropped,
resized and flipped like it), ``"K"`` the *initial guess* of the normalised intrinsics (the warp uses the learned
ones, ``--learn_intrinsics``; or the given ``--intrinsics`` when they are known), ``"flip"`` and ``"index"``.

Training crops keep the full crop size (``scale_range`` (1, 1): the largest crop of the training aspect ratio, at a
random offset along the longer side), so the focal length of a folder stays one number during training; only the
principal point moves with the crop, and the intrinsics are predicted per pair.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from monodepth2_geopt.datasets.video_dataset import UncalibratedVideoDataset


class VideoDepthDataset(Dataset):
    def __init__(self, data_path, filenames, height, width, frame_idxs, is_train=False, intrinsics=None,
                 img_ext=None, stride: int = 1):
        self.frames = UncalibratedVideoDataset(data_path, list(filenames), height, width, frame_idxs=frame_idxs,
                                               stride=stride, is_train=is_train, img_ext=img_ext,
                                               scale_range=(1.0, 1.0))
        self.frames.return_crop_box = True
        fx, fy, cx, cy = intrinsics
        self.K = np.array([[fx, 0, cx, 0], [0, fy, cy, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32)
        self.pseudo_labels = None  # a pseudo_labels.PseudoLabelStore: adds "pseudo_disp" (--pseudo_label_path)
        self.return_source_aspect = False  # add "source_aspect": the crop's width / height in pixels (--square_pixels)

    def __len__(self):
        return len(self.frames)

    @property
    def filenames(self) -> list[str]:
        return self.frames.filenames

    @property
    def data_path(self):
        return self.frames.data_path

    def drop_lines(self, indices) -> None:
        """Remove the items ``indices`` (``--skip_missing``)."""
        drop = set(indices)
        self.frames._samples = [s for i, s in enumerate(self.frames._samples) if i not in drop]

    def target_image(self, index: int):
        """The path of the target frame (frame 0) of item ``index``."""
        return self.frames.get_paths(index)[0]

    def __getitem__(self, index):
        item = self.frames[index]
        box = item.pop("crop_box")
        aspect = item.pop("crop_aspect")
        if self.return_source_aspect:
            item["source_aspect"] = torch.tensor(aspect, dtype=torch.float32)
        if self.pseudo_labels is not None:
            item["pseudo_disp"] = self.pseudo_labels.load(self.data_path, self.target_image(index),
                                                          self.frames.width, self.frames.height, box,
                                                          flip=bool(item["flip"]))
        K = self.K.copy()
        if bool(item["flip"]):
            K[0, 2] = 1.0 - K[0, 2]
        item["K"] = torch.from_numpy(K)
        item["index"] = torch.tensor(item["index"])
        return item
