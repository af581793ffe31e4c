from datasets.mono_dataset import MonoDataset
from datasets.kitti_dataset import KITTIRAWDataset, KITTIOdomDataset, KITTIDepthDataset
from datasets.video_dataset import UncalibratedVideoDataset, make_mixed_dataset

DATASETS = {"kitti": KITTIRAWDataset, "kitti_odom": KITTIOdomDataset, "kitti_depth": KITTIDepthDataset}

__all__ = ["MonoDataset", "KITTIRAWDataset", "KITTIOdomDataset", "KITTIDepthDataset", "UncalibratedVideoDataset",
           "make_mixed_dataset", "DATASETS"]
