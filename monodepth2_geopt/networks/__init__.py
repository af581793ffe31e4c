from monodepth2_geopt.networks.resnet_encoder import ResnetEncoder, build_resnet
from monodepth2_geopt.networks.depth_decoder import DepthDecoder
from monodepth2_geopt.networks.pose_decoder import PoseDecoder
from monodepth2_geopt.networks.pose_cnn import PoseCNN
from monodepth2_geopt.networks.motion_encoder import MotionEncoder
from monodepth2_geopt.networks.flow_decoder import FlowDecoder
from monodepth2_geopt.networks.intrinsics_head import IntrinsicsHead

__all__ = ["ResnetEncoder", "build_resnet", "DepthDecoder", "PoseDecoder", "PoseCNN", "MotionEncoder", "FlowDecoder",
           "IntrinsicsHead"]
