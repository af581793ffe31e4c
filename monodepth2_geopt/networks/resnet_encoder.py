"""ResNet encoder (Monodepth2-compatible names and state-dict keys: ``encoder.conv1.weight``, ...)."""
from __future__ import annotations

import os

import torch
import torch.nn as nn
from torchvision import models
from torchvision.models.resnet import BasicBlock, Bottleneck

from monodepth2_geopt.errors import InputError

RESNET_SPECS = {
    18: (BasicBlock, [2, 2, 2, 2], models.ResNet18_Weights),
    34: (BasicBlock, [3, 4, 6, 3], models.ResNet34_Weights),
    50: (Bottleneck, [3, 4, 6, 3], models.ResNet50_Weights),
    101: (Bottleneck, [3, 4, 23, 3], models.ResNet101_Weights),
    152: (Bottleneck, [3, 8, 36, 3], models.ResNet152_Weights),
}


def imagenet_state_dict(num_layers: int) -> dict:
    """ImageNet weights of torchvision's ResNet from the local torch cache, never from the network.

    Raises InputError saying how to get the file (or to use ``--weights_init scratch``) when it is absent.
    """
    weights = RESNET_SPECS[num_layers][2].IMAGENET1K_V1
    filename = os.path.basename(weights.url)
    path = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    if not os.path.isfile(path):
        raise InputError(
            f"ImageNet weights for ResNet-{num_layers} are not in the local torch cache ({path}). "
            f"Download {weights.url} to that path (e.g. run `python -c \"import torchvision; "
            f"torchvision.models.resnet{num_layers}(weights='IMAGENET1K_V1')\"` on a machine with internet "
            f"and copy the file), or train with --weights_init scratch.")
    return torch.load(path, map_location="cpu", weights_only=True)


def build_resnet(num_layers: int, pretrained: bool = False, num_input_images: int = 1) -> models.ResNet:
    """A torchvision ResNet whose first convolution takes ``3 * num_input_images`` channels.

    With ``pretrained``, ImageNet conv1 weights are tiled over the input images and divided by their number,
    so the pretrained response to a stack of identical frames is unchanged.
    """
    if num_layers not in RESNET_SPECS:
        raise InputError(f"--num_layers {num_layers} is not supported; choose one of {sorted(RESNET_SPECS)}")
    block, layers, _ = RESNET_SPECS[num_layers]
    net = models.ResNet(block, layers)
    if num_input_images > 1:
        net.conv1 = nn.Conv2d(3 * num_input_images, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    if pretrained:
        state = imagenet_state_dict(num_layers)
        if num_input_images > 1:
            state["conv1.weight"] = state["conv1.weight"].repeat(1, num_input_images, 1, 1) / num_input_images
        net.load_state_dict(state)
    return net


class ResnetEncoder(nn.Module):
    """ResNet feature pyramid: relu(bn1(conv1)) at 1/2 and layer1..layer4 at 1/4..1/32.

    Input: [B, 3*num_input_images, H, W] in [0, 1]; normalised internally with (x - 0.45) / 0.225.
    """

    def __init__(self, num_layers: int, pretrained: bool, num_input_images: int = 1):
        super().__init__()
        self.num_layers = num_layers
        self.num_input_images = num_input_images
        self.num_ch_enc = [64, 64, 128, 256, 512]
        if num_layers > 34:
            self.num_ch_enc[1:] = [c * 4 for c in self.num_ch_enc[1:]]
        self.encoder = build_resnet(num_layers, pretrained, num_input_images)

    def forward(self, input_image: torch.Tensor) -> list[torch.Tensor]:
        e = self.encoder
        x = (input_image - 0.45) / 0.225
        f0 = e.relu(e.bn1(e.conv1(x)))
        f1 = e.layer1(e.maxpool(f0))
        f2 = e.layer2(f1)
        f3 = e.layer3(f2)
        f4 = e.layer4(f3)
        return [f0, f1, f2, f3, f4]
