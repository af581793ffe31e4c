from networks.resnet_encoder import ResnetEncoder, build_resnet
from networks.depth_decoder import DepthDecoder
from networks.pose_decoder import PoseDecoder
from networks.pose_cnn import PoseCNN
from networks.motion_encoder import MotionEncoder
from networks.flow_decoder import FlowDecoder

__all__ = ["ResnetEncoder", "build_resnet", "DepthDecoder", "PoseDecoder", "PoseCNN", "MotionEncoder", "FlowDecoder"]
