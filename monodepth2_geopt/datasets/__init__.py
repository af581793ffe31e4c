from monodepth2_geopt.datasets.mono_dataset import MonoDataset
from monodepth2_geopt.datasets.kitti_dataset import KITTIRAWDataset, KITTIOdomDataset, KITTIDepthDataset
from monodepth2_geopt.datasets.video_dataset import UncalibratedVideoDataset, make_mixed_dataset

DATASETS = {"kitti": KITTIRAWDataset, "kitti_odom": KITTIOdomDataset, "kitti_depth": KITTIDepthDataset}

__all__ = ["MonoDataset", "KITTIRAWDataset", "KITTIOdomDataset", "KITTIDepthDataset", "UncalibratedVideoDataset",
           "make_mixed_dataset", "DATASETS"]
