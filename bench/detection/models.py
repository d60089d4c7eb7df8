"""Faster R-CNN (C4 or FPN) and SSD on a backbone card's ResNet-style network (torchvision's
detection models; only the backbone wiring is ours).

- Faster R-CNN C4 (the paper's design, detectron2's R50-C4): conv1..layer3 is the feature map
  (stride 16 on a ResNet-50), RoIAlign 14x14 on it, layer4 + average pool is the box head. FPN
  (option): layer1..layer4 into torchvision's FeaturePyramidNetwork.
- SSD: layer2 stands in for VGG's conv4_3 (the paper, App. C), layer3 for fc7, then extra blocks
  (1x1 reduce, 3x3 stride 2) until the map is 3x3 or smaller and one last valid 3x3 to 1x1, as
  SSD300's extras; torchvision's SSD head, box coder, matching and loss.

BatchNorm is frozen by default (FrozenBatchNorm2d, statistics and affine from the checkpoint)
and the stem and the first `frozen_stages` stages are not trained; torchvision's
weights_backbone=None path would instead make BN trainable without saying so. The detector normalises its input
with the card's own mean and std.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

STAGES = ("conv1", "layer1", "layer2", "layer3", "layer4")


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Every BatchNorm2d replaced by a FrozenBatchNorm2d with the same statistics and affine."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


def freeze_stages(model: nn.Module, frozen_stages: int) -> list[str]:
    """No gradient for the stem (conv1, bn1) and layer1..layer<frozen_stages - 1>: frozen_stages=2
    freezes stem + layer1, as detectron2's FREEZE_AT=2 and torchvision's trainable_layers=3."""
    frozen = list(STAGES[:frozen_stages]) + (["bn1"] if frozen_stages > 0 else [])
    for name in frozen:
        if hasattr(model, name):
            getattr(model, name).requires_grad_(False)
    return frozen


def _channels(module: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        return int(module(x).shape[1])


class C4Body(nn.Module):
    """conv1 .. layer3 of a ResNet: one feature map."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.out_channels = _channels(self.forward, torch.zeros(1, 3, 64, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer3(self.layer2(self.layer1(self.stem(x))))


class Res5Head(nn.Module):
    """layer4 on the pooled RoIs, then global average pooling: the C4 box head."""

    def __init__(self, layer4: nn.Module):
        super().__init__()
        self.layer4 = layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.layer4(x), 1), 1)


def faster_rcnn(net: nn.Module, num_classes: int, mean: list[float], std: list[float], design: str = "c4", min_size: int = 600,
                max_size: int = 1000, frozen_stages: int = 2, anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512),
                rois_per_image: int = 512, rpn_top_n: tuple[int, int, int, int] = (2000, 2000, 1000, 1000)) -> nn.Module:
    """Faster R-CNN with `num_classes` object classes (+ background) on a ResNet-style `net`.

    rpn_top_n: proposals kept before / after NMS in training, then in testing (torchvision's defaults)."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.rpn import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    freeze_stages(net, frozen_stages)
    pre_train, post_train, pre_test, post_test = rpn_top_n
    common = dict(min_size=min_size, max_size=max_size, image_mean=list(mean), image_std=list(std), box_batch_size_per_image=rois_per_image,
                  rpn_pre_nms_top_n_train=pre_train, rpn_post_nms_top_n_train=post_train, rpn_pre_nms_top_n_test=pre_test, rpn_post_nms_top_n_test=post_test)
    if design == "c4":
        body = C4Body(net)
        head = Res5Head(net.layer4)
        # RoIAlign to 14x14 when layer4 halves it (ResNet-50: the head sees 7x7), else straight to 7x7
        strided = any(isinstance(m, nn.Conv2d) and m.stride != (1, 1) for m in net.layer4.modules())
        roi = 14 if strided else 7
        head_channels = _channels(head, torch.zeros(1, body.out_channels, roi, roi))
        anchors = AnchorGenerator(sizes=(tuple(anchor_sizes),), aspect_ratios=((0.5, 1.0, 2.0),))
        pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=roi, sampling_ratio=0)
        return FasterRCNN(body, None, rpn_anchor_generator=anchors, box_roi_pool=pool, box_head=head,
                          box_predictor=FastRCNNPredictor(head_channels, num_classes + 1), **common)
    if design == "fpn":
        from torchvision.models.detection.backbone_utils import BackboneWithFPN
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

        probe = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        x = probe(torch.zeros(1, 3, 64, 64))
        widths = []
        with torch.no_grad():
            for name in STAGES[1:]:
                x = getattr(net, name)(x)
                widths.append(int(x.shape[1]))
        from torchvision.models.detection.rpn import AnchorGenerator as Anchors

        backbone = BackboneWithFPN(net, {f"layer{i}": str(i - 1) for i in range(1, 5)}, widths, out_channels=256, extra_blocks=LastLevelMaxPool())
        sizes = tuple((anchor_sizes[0] * 2**i,) for i in range(5))  # one size per level: the four maps and the pool
        anchors = Anchors(sizes=sizes, aspect_ratios=((0.5, 1.0, 2.0),) * 5)
        return FasterRCNN(backbone, num_classes + 1, rpn_anchor_generator=anchors, **common)
    raise ValueError(f"unknown Faster R-CNN design '{design}' (c4 or fpn)")


class SSDBackbone(nn.Module):
    """Feature maps for SSD: layer2, layer3, then extra blocks down to 1x1."""

    def __init__(self, net: nn.Module, size: int):
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
        self.layer2, self.layer3 = net.layer2, net.layer3
        with torch.no_grad():
            c2 = self.layer2(self.stem(torch.zeros(1, 3, size, size)))
            c3 = self.layer3(c2)
        channels, side = int(c3.shape[1]), int(c3.shape[-1])
        extras, self.out_channels = [], [int(c2.shape[1]), channels]
        widths = iter([512, 256, 256, 256, 256, 256])
        while side > 1:
            width = next(widths, 256)
            if side > 3:  # 1x1 reduce, 3x3 stride 2 (padding 1): 19 -> 10 -> 5 -> 3
                conv, side = nn.Conv2d(width // 2, width, 3, stride=2, padding=1), (side + 1) // 2
            else:  # the last map: a valid convolution to 1x1
                conv, side = nn.Conv2d(width // 2, width, side), 1
            extras.append(nn.Sequential(nn.Conv2d(channels, width // 2, 1), nn.ReLU(inplace=True), conv, nn.ReLU(inplace=True)))
            channels = width
            self.out_channels.append(width)
        self.extras = nn.ModuleList(extras)
        for m in self.extras.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        c2 = self.layer2(self.stem(x))
        maps = [c2, self.layer3(c2)]
        for block in self.extras:
            maps.append(block(maps[-1]))
        return OrderedDict((str(i), m) for i, m in enumerate(maps))


def ssd(net: nn.Module, num_classes: int, mean: list[float], std: list[float], size: int = 300, frozen_stages: int = 2) -> nn.Module:
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator

    freeze_stages(net, frozen_stages)
    backbone = SSDBackbone(net, size)
    n = len(backbone.out_channels)
    ratios = [[2]] + [[2, 3]] * max(n - 3, 0) + [[2]] * min(2, n - 1)
    if n == 6 and size == 300:  # SSD300's boxes exactly
        anchors = DefaultBoxGenerator(ratios, scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], steps=[8, 16, 32, 64, 100, 300])
    else:
        anchors = DefaultBoxGenerator(ratios, min_ratio=0.15, max_ratio=0.9)
    return SSD(backbone, anchors, (size, size), num_classes + 1, image_mean=list(mean), image_std=list(std))


def build_detector(kind: str, net: nn.Module, num_classes: int, mean: list[float], std: list[float], config: dict[str, Any]) -> nn.Module:
    """The detector `kind` ('frcnn' or 'ssd') on `net`, BatchNorm frozen unless config['freeze_bn'] is false
    (then BN layers train with batch statistics, as in protocols that fine-tune them)."""
    if config.get("freeze_bn", True):
        freeze_batchnorm(net)
    if kind == "frcnn":
        return faster_rcnn(net, num_classes, mean, std, config["design"], config["min_size"], config["max_size"], config["frozen_stages"],
                           tuple(config["anchor_sizes"]), config["rois_per_image"], tuple(config["rpn_top_n"]))
    if kind == "ssd":
        return ssd(net, num_classes, mean, std, config["size"], config["frozen_stages"])
    raise ValueError(f"unknown detector '{kind}'")
