"""ResNet encoder (Monodepth2-compatible names and state-dict keys: ``encoder.conv1.weight``, ...)."""
from __future__ import annotations

import os
import socket
from http.client import HTTPException
from urllib.error import URLError

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


OFFLINE_ENV = "M2G_OFFLINE"  # "1": never download ImageNet weights (tests, CI, air-gapped machines)
FETCH_TIMEOUT_S = 60.0  # a download that receives nothing for this long counts as offline


def imagenet_url(num_layers: int) -> str:
    """torchvision's URL of the ImageNet (IMAGENET1K_V1) weights; its file name carries a SHA-256 prefix."""
    return RESNET_SPECS[num_layers][2].IMAGENET1K_V1.url


def imagenet_cache_path(num_layers: int) -> str:
    """Where torchvision caches those weights: ``<torch hub dir>/checkpoints/<file name of the URL>``
    (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(imagenet_url(num_layers)))


def ensure_imagenet_weights(num_layers: int) -> str:
    """The cached ImageNet weights file of ResNet-``num_layers``, downloaded first if absent.

    The download is torchvision's own (``torch.hub.load_state_dict_from_url`` with ``check_hash=True``, as
    ``torchvision.models.resnet18(weights="IMAGENET1K_V1")`` does): the same cache folder and file name, the
    SHA-256 prefix in the name checked, nothing kept from a failed download. Without network (or with
    ``M2G_OFFLINE=1``) raises InputError naming the URL, the file to put there and ``--weights_init scratch``.
    """
    if num_layers not in RESNET_SPECS:
        raise InputError(f"--num_layers {num_layers} is not supported; choose one of {sorted(RESNET_SPECS)}")
    url, path = imagenet_url(num_layers), imagenet_cache_path(num_layers)
    if os.path.isfile(path):
        return path
    by_hand = (f"put {url} there (e.g. copy it from a machine with internet, where `python -c \"import torchvision; "
               f"torchvision.models.resnet{num_layers}(weights='IMAGENET1K_V1')\"` caches it), or train with "
               "--weights_init scratch")
    if os.environ.get(OFFLINE_ENV) == "1":
        raise InputError(f"ImageNet weights for ResNet-{num_layers} are not in the torch cache ({path}) and "
                         f"{OFFLINE_ENV}=1 forbids downloading them: {by_hand}")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(FETCH_TIMEOUT_S)  # urlopen in torch.hub has no timeout of its own
    try:
        torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True, check_hash=True,
                                           weights_only=True)
    except (URLError, OSError, HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        raise InputError(f"ImageNet weights for ResNet-{num_layers} are not in the torch cache ({path}) and could "
                         f"not be downloaded ({reason}): {by_hand}") from None
    except RuntimeError as err:
        if "hash" not in str(err):
            raise
        raise InputError(f"the download of {url} failed its SHA-256 check ({err}); nothing was kept in "
                         f"{os.path.dirname(path)}: run again, or {by_hand}") from None
    finally:
        socket.setdefaulttimeout(previous)
    return path


def imagenet_state_dict(num_layers: int) -> dict:
    """ImageNet weights of torchvision's ResNet from the torch cache, downloaded once when absent
    (``ensure_imagenet_weights``)."""
    return torch.load(ensure_imagenet_weights(num_layers), map_location="cpu", weights_only=True)


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
