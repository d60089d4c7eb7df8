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
    """layer4 on the pooled RoIs, then global average pooling: the C4 box head. With `max_pool`,
    a 2x2 max-pool first (jwyang's CROP_RESIZE_WITH_MAX_POOL: crop 14, pool to 7, layer4 to 4x4)."""

    def __init__(self, layer4: nn.Module, max_pool: bool = False):
        super().__init__()
        self.layer4, self.max_pool = layer4, max_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.max_pool:
            x = nn.functional.max_pool2d(x, 2, 2)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.layer4(x), 1), 1)


class RPNHeadOfWidth(nn.Module):
    """An RPN head whose 3x3 conv has `width` channels (jwyang: 512 on ResNet's 1024-channel C4
    map; torchvision's RPNHead keeps the input width). Same outputs as torchvision's RPNHead."""

    def __init__(self, in_channels: int, width: int, num_anchors: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.cls_logits = nn.Conv2d(width, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(width, 4 * num_anchors, 1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, boxes = [], []
        for f in features:
            t = nn.functional.relu(self.conv(f))
            logits.append(self.cls_logits(t))
            boxes.append(self.bbox_pred(t))
        return logits, boxes


def set_rpn_min_size(rpn: nn.Module, train: float, test: float) -> None:
    """Proposals narrower or shorter than this (pixels of the network's input) are dropped before
    NMS; torchvision fixes 1e-3 for both modes, jwyang uses 8 in training and 16 in testing."""
    rpn.min_size = test

    def pick(module: nn.Module, args: Any) -> None:
        module.min_size = train if module.training else test

    rpn.register_forward_pre_hook(pick)


def faster_rcnn(net: nn.Module, num_classes: int, mean: list[float], std: list[float], design: str = "c4", min_size: int = 600,
                max_size: int = 1000, frozen_stages: int = 2, anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512),
                rois_per_image: int = 512, rpn_top_n: tuple[int, int, int, int] = (2000, 2000, 1000, 1000),
                box_nms_thresh: float = 0.5, box_score_thresh: float = 0.05, roi_max_pool: bool = False,
                rpn_channels: int | None = None, rpn_min_size: tuple[float, float] = (1e-3, 1e-3)) -> nn.Module:
    """Faster R-CNN with `num_classes` object classes (+ background) on a ResNet-style `net`.

    rpn_top_n: proposals kept before / after NMS in training, then in testing (torchvision's defaults).
    box_nms_thresh / box_score_thresh: test-time class-wise NMS IoU and minimum score. roi_max_pool,
    rpn_channels (None: the feature map's width) and rpn_min_size (train, test) exist for jwyang's
    faster-rcnn.pytorch configuration (C4 only)."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.rpn import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    freeze_stages(net, frozen_stages)
    pre_train, post_train, pre_test, post_test = rpn_top_n
    common = dict(min_size=min_size, max_size=max_size, image_mean=list(mean), image_std=list(std), box_batch_size_per_image=rois_per_image,
                  rpn_pre_nms_top_n_train=pre_train, rpn_post_nms_top_n_train=post_train, rpn_pre_nms_top_n_test=pre_test, rpn_post_nms_top_n_test=post_test,
                  box_nms_thresh=box_nms_thresh, box_score_thresh=box_score_thresh)
    if design == "c4":
        body = C4Body(net)
        head = Res5Head(net.layer4, roi_max_pool)
        # RoIAlign to 14x14 when layer4 halves it (ResNet-50: the head sees 7x7), else straight to 7x7
        strided = any(isinstance(m, nn.Conv2d) and m.stride != (1, 1) for m in net.layer4.modules())
        roi = 14 if strided or roi_max_pool else 7
        head_channels = _channels(head, torch.zeros(1, body.out_channels, roi, roi))
        anchors = AnchorGenerator(sizes=(tuple(anchor_sizes),), aspect_ratios=((0.5, 1.0, 2.0),))
        pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=roi, sampling_ratio=0)
        rpn_head = RPNHeadOfWidth(body.out_channels, rpn_channels, anchors.num_anchors_per_location()[0]) if rpn_channels else None
        model = FasterRCNN(body, None, rpn_anchor_generator=anchors, rpn_head=rpn_head, box_roi_pool=pool, box_head=head,
                           box_predictor=FastRCNNPredictor(head_channels, num_classes + 1), **common)
        set_rpn_min_size(model.rpn, *rpn_min_size)
        return model
    if roi_max_pool or rpn_channels:
        raise ValueError("roi_max_pool and rpn_channels apply to the C4 design only")
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
        model = FasterRCNN(backbone, num_classes + 1, rpn_anchor_generator=anchors, **common)
        set_rpn_min_size(model.rpn, *rpn_min_size)
        return model
    raise ValueError(f"unknown Faster R-CNN design '{design}' (c4 or fpn)")


class L2Norm(nn.Module):
    """ssd.pytorch's L2Norm: each location's channel vector scaled to unit length, times a learned
    per-channel weight that starts at `scale` (20)."""

    def __init__(self, channels: int, scale: float, eps: float = 1e-10):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / (x.pow(2).sum(1, keepdim=True).sqrt() + self.eps) * self.weight[None, :, None, None]


EXTRAS = ("strided", "ssd_pytorch")


class SSDBackbone(nn.Module):
    """Feature maps for SSD: layer2, layer3, then extra blocks down to 1x1.

    extras: 'strided' reduces with padded 3x3 stride-2 convs down to 3x3, then one valid 3x3;
    'ssd_pytorch' as ssd.pytorch's SSD300: stride 2 down to 5x5, then valid 3x3 convs (5 -> 3 -> 1).
    l2norm_scale: ssd.pytorch's L2Norm(scale) on the first source (its conv4_3); None for none."""

    def __init__(self, net: nn.Module | None, size: int, extras: str = "strided", l2norm_scale: float | None = None, sources: nn.Module | None = None):
        """`net`: a ResNet-style network (layer2 and layer3 are the sources); or `sources`, any
        module giving the stride-8 and stride-16 maps as '0' and '1' (bench/detection/bodies.py)."""
        super().__init__()
        if extras not in EXTRAS:
            raise ValueError(f"unknown extras '{extras}' ({' or '.join(EXTRAS)})")
        strided_down_to = 3 if extras == "strided" else 5
        self.sources = sources
        if sources is None:
            self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
            self.layer2, self.layer3 = net.layer2, net.layer3
        with torch.no_grad():
            c2, c3 = self._sources(torch.zeros(1, 3, size, size, device=next(self.parameters()).device))
        channels, side = int(c3.shape[1]), int(c3.shape[-1])
        extras, self.out_channels = [], [int(c2.shape[1]), channels]
        self.l2norm = L2Norm(int(c2.shape[1]), l2norm_scale) if l2norm_scale else None
        widths = iter([512, 256, 256, 256, 256, 256])
        while side > 1:
            width = next(widths, 256)
            if side > strided_down_to:  # 1x1 reduce, 3x3 stride 2 (padding 1): 19 -> 10 -> 5 (-> 3)
                conv, side = nn.Conv2d(width // 2, width, 3, stride=2, padding=1), (side + 1) // 2
            else:  # valid convolutions: 5 -> 3 (ssd_pytorch), and the last map to 1x1
                k = 3 if side > 3 else side
                conv, side = nn.Conv2d(width // 2, width, k), side - k + 1
            extras.append(nn.Sequential(nn.Conv2d(channels, width // 2, 1), nn.ReLU(inplace=True), conv, nn.ReLU(inplace=True)))
            channels = width
            self.out_channels.append(width)
        self.extras = nn.ModuleList(extras)
        for m in self.extras.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def _sources(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.sources is not None:
            maps = self.sources(x)
            return maps["0"], maps["1"]
        c2 = self.layer2(self.stem(x))
        return c2, self.layer3(c2)

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        c2, c3 = self._sources(x)
        maps = [self.l2norm(c2) if self.l2norm is not None else c2, c3]
        for block in self.extras:
            maps.append(block(maps[-1]))
        return OrderedDict((str(i), m) for i, m in enumerate(maps))


# SSD300's prior-box sizes as fractions of 300 px (ssd.pytorch's data/config.py): VOC's min sizes
# 30, 60, 111, 162, 213, 264 and max sizes 60 ... 315, and COCO's 21, 45, 99, 153, 207, 261 (max 315)
PRIOR_SCALES = {"voc": [0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05], "coco": [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]}


def ssd(net: nn.Module, num_classes: int, mean: list[float], std: list[float], size: int = 300, frozen_stages: int = 2,
        prior_scales: str = "voc", extras: str = "strided", l2norm_scale: float | None = None, topk_candidates: int = 400,
        detections_per_img: int = 200) -> nn.Module:
    """SSD on `net`. At 300 px with six maps the prior boxes are SSD300's for `prior_scales`
    ('voc' or 'coco'); other sizes spread the scales linearly from 0.15 to 0.9. At test time the
    `topk_candidates` best boxes per class go into NMS (0.45), and `detections_per_img` are kept
    (torchvision: 400 and 200; ssd.pytorch: 200 per class and no cap per image)."""
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator

    if prior_scales not in PRIOR_SCALES:
        raise ValueError(f"unknown prior_scales '{prior_scales}' ({' or '.join(PRIOR_SCALES)})")
    freeze_stages(net, frozen_stages)
    backbone = SSDBackbone(net, size, extras, l2norm_scale)
    n = len(backbone.out_channels)
    ratios = [[2]] + [[2, 3]] * max(n - 3, 0) + [[2]] * min(2, n - 1)
    if n == 6 and size == 300:  # SSD300's boxes (ssd.pytorch also clamps centres: 114 boxes of the 10x10 map differ by 4 px, tests/test_protocol_constants.py)
        anchors = DefaultBoxGenerator(ratios, scales=PRIOR_SCALES[prior_scales], steps=[8, 16, 32, 64, 100, 300])
    else:
        anchors = DefaultBoxGenerator(ratios, min_ratio=0.15, max_ratio=0.9)
    return SSD(backbone, anchors, (size, size), num_classes + 1, image_mean=list(mean), image_std=list(std),
               topk_candidates=topk_candidates, detections_per_img=detections_per_img)


def build_detector(kind: str, net: nn.Module, num_classes: int, mean: list[float], std: list[float], config: dict[str, Any]) -> nn.Module:
    """The detector `kind` ('frcnn' or 'ssd') on `net`, BatchNorm frozen unless config['freeze_bn'] is false
    (then BN layers train with batch statistics, as in protocols that fine-tune them)."""
    if config.get("freeze_bn", True):
        freeze_batchnorm(net)
    if kind == "frcnn":
        return faster_rcnn(net, num_classes, mean, std, config["design"], config["min_size"], config["max_size"], config["frozen_stages"],
                           tuple(config["anchor_sizes"]), config["rois_per_image"], tuple(config["rpn_top_n"]),
                           float(config.get("box_nms_thresh", 0.5)), float(config.get("box_score_thresh", 0.05)), bool(config.get("roi_max_pool", False)),
                           config.get("rpn_channels"), tuple(config.get("rpn_min_size", (1e-3, 1e-3))))
    if kind == "ssd":
        return ssd(net, num_classes, mean, std, config["size"], config["frozen_stages"], config.get("prior_scales", "voc"),
                   config.get("extras", "strided"), config.get("l2norm_scale"), int(config.get("topk_candidates", 400)),
                   int(config.get("detections_per_img", 200)))
    raise ValueError(f"unknown detector '{kind}'")


def freeze_norms(net: nn.Module) -> nn.Module:
    """BatchNorm frozen with the checkpoint's statistics (timm's BatchNormAct2d keeps its activation
    through timm's own converter); LayerNorm and GroupNorm stay trainable."""
    if any(type(m).__module__.startswith("timm.") for m in net.modules()):
        from timm.layers import freeze_batch_norm_2d

        return freeze_batch_norm_2d(net)
    return freeze_batchnorm(net)


def build_on_adapter(kind: str, view: Any, num_classes: int, mean: list[float], std: list[float], config: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """The detector `kind` on any backbone through its adapter (the ResNet paths are `build_detector`):
    Faster R-CNN with an FPN over the stages (a ViT: the simple feature pyramid), SSD on the
    stride-8 and stride-16 maps. Returns (detector, what the record keeps: stages, frozen modules, norms)."""
    from bench.detection.bodies import SimpleFeaturePyramid, StageMaps, VitMap, WithFPN, norm_layers
    from bench.errors import BenchError

    card, parts = view.card, view.parts
    if kind == "frcnn" and config["design"] == "c4":
        raise BenchError(f"Faster R-CNN C4 runs layer4 of a ResNet as its box head, and {card.name} is a {parts.family.upper() if parts.family == 'vit' else 'non-ResNet'} backbone",
                         "--set design=fpn (voc_det: --set frcnn.design=fpn)")
    model = view.model
    specs = view.feature_specs() if parts.family != "vit" else []
    frozen = view.freeze(int(config["frozen_stages"]))
    # what runs after the last stage (pooling, head) gets no gradient: it never runs
    unused = list(parts.head + ((parts.cam_norm,) if parts.cam_norm else ())) if parts.family == "vit" else \
        [n for n, _ in model.named_modules() if n not in {m for g in view.stage_groups() for m in g}]
    for name in unused:
        for p in model.get_submodule(name).parameters(recurse=parts.family == "vit"):
            p.requires_grad_(False)
    if config.get("freeze_bn", True):
        model = freeze_norms(model)
        view.model = model
    if parts.family == "vit":
        vit = VitMap(model)
        strides = (4, 8, 16, 32) if kind == "frcnn" else (8, 16)
        body = SimpleFeaturePyramid(vit, 256, strides, pool=kind == "frcnn")
        channels, used = body.out_channels_list, [f"{parts.stages[-1]} (simple feature pyramid at strides {', '.join(map(str, strides))})"]
    else:
        if kind == "ssd":
            by_stride = {s.stride: s for s in specs}
            if 8 not in by_stride or 16 not in by_stride:
                raise BenchError(f"SSD takes the stride-8 and stride-16 maps, and {card.name}'s stages are at strides {', '.join(str(s.stride) for s in specs)}",
                                 "list modules at strides 8 and 16 in the card's feature_layers")
            specs = [by_stride[8], by_stride[16]]
        elif len(specs) < 2:
            raise BenchError(f"an FPN needs at least two stages, and {card.name} has {len(specs)} ({', '.join(s.name for s in specs)})", "list its stages in the card's feature_layers")
        body = StageMaps(model, tuple(s.name for s in specs), [s.channels for s in specs], [s.stride for s in specs])
        channels, used = [s.channels for s in specs], [f"{s.name} (stride {s.stride}, {s.channels} channels)" for s in specs]
    if kind == "frcnn":
        from torchvision.models.detection import FasterRCNN
        from torchvision.models.detection.rpn import AnchorGenerator
        from torchvision.ops import MultiScaleRoIAlign

        if config.get("roi_max_pool") or config.get("rpn_channels"):
            raise BenchError("roi_max_pool and rpn_channels apply to the C4 design only", "drop them, or use a ResNet with design=c4")
        backbone = body if parts.family == "vit" else WithFPN(body, channels)
        if parts.family == "vit":
            backbone.out_channels = 256
        levels = len(channels) + 1  # the maps and the max-pool level
        anchors = AnchorGenerator(sizes=tuple((int(config["anchor_sizes"][0]) * 2**i,) for i in range(levels)), aspect_ratios=((0.5, 1.0, 2.0),) * levels)
        pool = MultiScaleRoIAlign(featmap_names=[str(i) for i in range(len(channels))], output_size=7, sampling_ratio=2)
        pre_train, post_train, pre_test, post_test = config["rpn_top_n"]
        detector = FasterRCNN(backbone, num_classes + 1, rpn_anchor_generator=anchors, box_roi_pool=pool, min_size=config["min_size"], max_size=config["max_size"],
                              image_mean=list(mean), image_std=list(std), box_batch_size_per_image=config["rois_per_image"],
                              rpn_pre_nms_top_n_train=pre_train, rpn_post_nms_top_n_train=post_train, rpn_pre_nms_top_n_test=pre_test, rpn_post_nms_top_n_test=post_test,
                              box_nms_thresh=float(config.get("box_nms_thresh", 0.5)), box_score_thresh=float(config.get("box_score_thresh", 0.05)))
        set_rpn_min_size(detector.rpn, *tuple(config.get("rpn_min_size", (1e-3, 1e-3))))
    elif kind == "ssd":
        from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
        from torchvision.models.detection.ssd import SSD

        size = int(config["size"])
        ssd_body = SSDBackbone(None, size, config.get("extras", "strided"), config.get("l2norm_scale"), sources=body)
        n = len(ssd_body.out_channels)
        ratios = [[2]] + [[2, 3]] * max(n - 3, 0) + [[2]] * min(2, n - 1)
        if n == 6 and size == 300:
            anchors = DefaultBoxGenerator(ratios, scales=PRIOR_SCALES[config.get("prior_scales", "voc")], steps=[8, 16, 32, 64, 100, 300])
        else:
            anchors = DefaultBoxGenerator(ratios, min_ratio=0.15, max_ratio=0.9)
        detector = SSD(ssd_body, anchors, (size, size), num_classes + 1, image_mean=list(mean), image_std=list(std),
                       topk_candidates=int(config.get("topk_candidates", 400)), detections_per_img=int(config.get("detections_per_img", 200)))
    else:
        raise ValueError(f"unknown detector '{kind}'")
    info = {"family": parts.family, "maps": used, "frozen": frozen, "norm_layers": norm_layers(model),
            "design": "simple feature pyramid" if parts.family == "vit" and kind == "frcnn" else (config.get("design") if kind == "frcnn" else "ssd")}
    return detector, info
