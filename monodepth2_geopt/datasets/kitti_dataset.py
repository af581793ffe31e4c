"""KITTI raw, odometry and depth-benchmark datasets in Monodepth2's folder layouts."""
from __future__ import annotations

import os

import numpy as np
import skimage.transform

from monodepth2_geopt.datasets.mono_dataset import MonoDataset
from monodepth2_geopt.kitti_layout import (CAMERA_OF_SIDE, calib_dir, depth_png_path, frame_path, odom_frame_path,
                                           parse_split_line, read_depth_png, velodyne_path)
from monodepth2_geopt.kitti_utils import generate_depth_map


class KITTIDataset(MonoDataset):
    """KITTI with Monodepth2's normalised intrinsics (fx=0.58, fy=1.92, centred principal point)."""

    side_map = CAMERA_OF_SIDE

    def side_index(self, side):
        """KITTI camera number of a split line's side; a line without side is refused (Monodepth2's KeyError)."""
        if side not in self.side_map:
            raise FileNotFoundError(f"split lines need a camera side (l/r/2/3), got {side!r}")
        return self.side_map[side]

    def check_depth(self) -> bool:
        folder, frame_index, _ = parse_split_line(self.filenames[0])
        return os.path.isfile(velodyne_path(self.data_path, folder, frame_index))

    def resize_depth(self, depth: np.ndarray) -> np.ndarray:
        w, h = self.full_res_shape
        if depth.shape != (h, w):
            depth = skimage.transform.resize(depth, (h, w), order=0, preserve_range=True, mode="constant",
                                             anti_aliasing=False)
        return depth.astype(np.float32)


class KITTIRAWDataset(KITTIDataset):
    """``<data_path>/<date>/<drive>/image_0{2,3}/data/%010d.<ext>``; depth_gt from the velodyne scan."""

    def get_image_path(self, folder, frame_index, side):
        self.side_index(side)  # a line without side is refused
        return frame_path(self.data_path, folder, frame_index, side, self.img_ext)

    def get_depth(self, folder, frame_index, side, do_flip):
        depth = self.resize_depth(generate_depth_map(calib_dir(self.data_path, folder),
                                                     velodyne_path(self.data_path, folder, frame_index),
                                                     self.side_index(side)))
        return np.fliplr(depth) if do_flip else depth


class KITTIOdomDataset(KITTIDataset):
    """``<data_path>/sequences/%02d/image_{2,3}/%06d.<ext>`` (split lines ``9 0 l``)."""

    def get_image_path(self, folder, frame_index, side):
        self.side_index(side)  # a line without side is refused
        return odom_frame_path(self.data_path, folder, frame_index, side, self.img_ext)


class KITTIDepthDataset(KITTIDataset):
    """KITTI raw images with the depth benchmark's annotated ground truth (16-bit PNG / 256)."""

    get_image_path = KITTIRAWDataset.get_image_path

    def depth_path(self, folder, frame_index, side):
        self.side_index(side)  # a line without side is refused
        return depth_png_path(self.data_path, folder, frame_index, side)

    def check_depth(self) -> bool:
        folder, frame_index, side = parse_split_line(self.filenames[0])
        return os.path.isfile(self.depth_path(folder, frame_index, side or "l"))

    def get_depth(self, folder, frame_index, side, do_flip):
        path = self.depth_path(folder, frame_index, side)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ground-truth depth {path} does not exist")
        depth = self.resize_depth(read_depth_png(path))
        return np.fliplr(depth) if do_flip else depth
