"""KITTI raw, odometry and depth-benchmark datasets in Monodepth2's folder layouts."""
from __future__ import annotations

import os

import numpy as np
import skimage.transform

from monodepth2_geopt.datasets.mono_dataset import MonoDataset, parse_split_line


class KITTIDataset(MonoDataset):
    """KITTI with Monodepth2's normalised intrinsics (fx=0.58, fy=1.92, centred principal point)."""

    side_map = {"2": 2, "3": 3, "l": 2, "r": 3}

    def side_index(self, side):
        if side not in self.side_map:
            raise FileNotFoundError(f"split lines need a camera side (l/r/2/3), got {side!r}")
        return self.side_map[side]

    def check_depth(self) -> bool:
        folder, frame_index, _ = parse_split_line(self.filenames[0])
        velo = os.path.join(self.data_path, folder, "velodyne_points", "data", f"{frame_index:010d}.bin")
        return os.path.isfile(velo)

    def resize_depth(self, depth: np.ndarray) -> np.ndarray:
        w, h = self.full_res_shape
        if depth.shape != (h, w):
            depth = skimage.transform.resize(depth, (h, w), order=0, preserve_range=True, mode="constant",
                                             anti_aliasing=False)
        return depth.astype(np.float32)


class KITTIRAWDataset(KITTIDataset):
    """``<data_path>/<date>/<drive>/image_0{2,3}/data/%010d.<ext>``; depth_gt from the velodyne scan."""

    def get_image_path(self, folder, frame_index, side):
        return os.path.join(self.data_path, folder, f"image_0{self.side_index(side)}", "data",
                            f"{frame_index:010d}{self.img_ext}")

    def get_depth(self, folder, frame_index, side, do_flip):
        from monodepth2_geopt.kitti_utils import generate_depth_map
        calib_dir = os.path.join(self.data_path, folder.split("/")[0])
        velo = os.path.join(self.data_path, folder, "velodyne_points", "data", f"{frame_index:010d}.bin")
        depth = self.resize_depth(generate_depth_map(calib_dir, velo, self.side_index(side)))
        return np.fliplr(depth) if do_flip else depth


class KITTIOdomDataset(KITTIDataset):
    """``<data_path>/sequences/%02d/image_{2,3}/%06d.<ext>`` (split lines ``9 0 l``)."""

    def get_image_path(self, folder, frame_index, side):
        return os.path.join(self.data_path, "sequences", f"{int(folder):02d}", f"image_{self.side_index(side)}",
                            f"{frame_index:06d}{self.img_ext}")


class KITTIDepthDataset(KITTIDataset):
    """KITTI raw images with the depth benchmark's annotated ground truth (16-bit PNG / 256)."""

    def get_image_path(self, folder, frame_index, side):
        return os.path.join(self.data_path, folder, f"image_0{self.side_index(side)}", "data",
                            f"{frame_index:010d}{self.img_ext}")

    def depth_path(self, folder, frame_index, side):
        return os.path.join(self.data_path, folder, "proj_depth", "groundtruth",
                            f"image_0{self.side_index(side)}", f"{frame_index:010d}.png")

    def check_depth(self) -> bool:
        folder, frame_index, side = parse_split_line(self.filenames[0])
        return os.path.isfile(self.depth_path(folder, frame_index, side or "l"))

    def get_depth(self, folder, frame_index, side, do_flip):
        path = self.depth_path(folder, frame_index, side)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ground-truth depth {path} does not exist")
        from PIL import Image
        with Image.open(path) as img:
            depth = np.asarray(img, dtype=np.float32) / 256.0
        depth = self.resize_depth(depth)
        return np.fliplr(depth) if do_flip else depth
