"""Detectors for the mini benchmark built straight from torchvision with the parameters the README
states (not through bench's build_detector or a stored config), into which a trained stage's
weights load strictly: the independent side of the detection end-to-end tests.

README, mini settings (96 px scenes, the mini ResNet: layer3 64 channels, layer4 128 and stride 1):
- Faster R-CNN C4: conv1..layer3 body, anchors 16/32/64 x ratios 0.5/1/2 on the one map, RoIAlign
  7x7 (layer4 does not stride), layer4 + average pool head; test-time RPN 300 proposals before NMS
  (0.7) and 50 after; boxes kept above score 0.05, class-wise NMS 0.5, at most 100 per image;
  images resized to 96 (min and max side).
- Faster R-CNN FPN: layer1..layer4 into a 256-channel FPN with a max-pool level, anchors 16, 32,
  64, 128, 256 (one per level) x 0.5/1/2; the same test-time thresholds.
- SSD (96 px): layer2 (24x24) and layer3 (12x12) maps, then extra blocks 512 (6x6), 256 (3x3) and a
  valid 3x3 to 256 (1x1); ratios [2], [2, 3], [2, 3], [2], [2]; scales 0.15 .. 0.9 linearly;
  score 0.01, NMS 0.45, 400 candidates per class, at most 200 detections per image.
Normalisation: ImageNet mean and std (a bare checkpoint's card).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def frozen_bn(module: nn.Module) -> nn.Module:
    from torchvision.ops import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm2d(child.num_features))
        else:
            frozen_bn(child)
    return module


class C4Body(nn.Module):
    out_channels = 64

    def __init__(self, net):
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3

    def forward(self, x):
        return self.layer3(self.layer2(self.layer1(self.stem(x))))


class C4Head(nn.Module):
    def __init__(self, layer4):
        super().__init__()
        self.layer4 = layer4

    def forward(self, x):
        return self.layer4(x).mean((2, 3))


def faster_rcnn_c4(net: nn.Module) -> nn.Module:
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.rpn import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    net = frozen_bn(net)
    return FasterRCNN(C4Body(net), None, min_size=96, max_size=96, image_mean=MEAN, image_std=STD,
                      rpn_anchor_generator=AnchorGenerator(((16, 32, 64),), ((0.5, 1.0, 2.0),)),
                      rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=50, rpn_nms_thresh=0.7,
                      box_roi_pool=MultiScaleRoIAlign(["0"], 7, 0), box_head=C4Head(net.layer4), box_predictor=FastRCNNPredictor(128, 21),
                      box_score_thresh=0.05, box_nms_thresh=0.5, box_detections_per_img=100)


def faster_rcnn_fpn(net: nn.Module) -> nn.Module:
    """With BatchNorm left as trainable BatchNorm2d (freeze_bn=false)."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.rpn import AnchorGenerator
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    body = BackboneWithFPN(net, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}, [16, 32, 64, 128], 256, LastLevelMaxPool())
    return FasterRCNN(body, 21, min_size=96, max_size=96, image_mean=MEAN, image_std=STD,
                      rpn_anchor_generator=AnchorGenerator(((16,), (32,), (64,), (128,), (256,)), ((0.5, 1.0, 2.0),) * 5),
                      rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=50, rpn_nms_thresh=0.7,
                      box_score_thresh=0.05, box_nms_thresh=0.5, box_detections_per_img=100)


class SSDMaps(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
        self.layer2, self.layer3 = net.layer2, net.layer3
        block = lambda c_in, mid, c_out, stride, pad: nn.Sequential(nn.Conv2d(c_in, mid, 1), nn.ReLU(), nn.Conv2d(mid, c_out, 3, stride, pad), nn.ReLU())
        self.extras = nn.ModuleList([block(64, 256, 512, 2, 1), block(512, 128, 256, 2, 1), block(256, 128, 256, 1, 0)])

    def forward(self, x):
        maps = [self.layer2(self.stem(x))]
        maps.append(self.layer3(maps[-1]))
        for block in self.extras:
            maps.append(block(maps[-1]))
        return OrderedDict((str(i), m) for i, m in enumerate(maps))


def ssd96(net: nn.Module) -> nn.Module:
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD, SSDHead

    net = frozen_bn(net)
    anchors = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2], [2]], min_ratio=0.15, max_ratio=0.9)
    head = SSDHead([32, 64, 512, 256, 256], anchors.num_anchors_per_location(), 21)
    return SSD(SSDMaps(net), anchors, (96, 96), 21, image_mean=MEAN, image_std=STD, head=head,
               score_thresh=0.01, nms_thresh=0.45, detections_per_img=200, topk_candidates=400)


REFERENCES = {"frcnn": faster_rcnn_c4, "fpn": faster_rcnn_fpn, "ssd": ssd96}


def load_reference(kind: str, net: nn.Module, weights_file) -> nn.Module:
    """The reference detector with a stage's weights, loaded strictly (every key, every shape)."""
    model = REFERENCES[kind](net)
    model.load_state_dict(torch.load(weights_file, weights_only=True)["model"], strict=True)
    return model.eval()
