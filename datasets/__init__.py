from datasets.mono_dataset import MonoDataset
from datasets.kitti_dataset import KITTIRAWDataset, KITTIOdomDataset, KITTIDepthDataset

DATASETS = {"kitti": KITTIRAWDataset, "kitti_odom": KITTIOdomDataset, "kitti_depth": KITTIDepthDataset}

__all__ = ["MonoDataset", "KITTIRAWDataset", "KITTIOdomDataset", "KITTIDepthDataset", "DATASETS"]
