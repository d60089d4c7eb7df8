"""Tiny random-weight members of each backbone family, torchvision's and timm's, for the adapter's
tests: builders (`families:NAME` as an arch) and cards written with their weights.

FAMILIES: card name -> (arch, arch_args). torchvision's classes at small widths, timm's test_*
models, and bench's VGG-GAP and Inception-V3 (full width: their layers are what wsolevaluation
fixes) all take the mini benchmark's 64-pixel crops.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

CARD = """name: {name}
arch: '{arch}'
num_classes: 10
arch_args: {args}
weights: {{file: {file}, format: state_dict}}
preprocessing: {{resize: 73, crop: 64, interpolation: bilinear}}
"""


def tv_convnext(num_classes: int = 10) -> nn.Module:
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    return ConvNeXt([CNBlockConfig(16, 24, 1), CNBlockConfig(24, 32, 1), CNBlockConfig(32, 48, 1), CNBlockConfig(48, None, 1)], num_classes=num_classes)


def tv_efficientnet(num_classes: int = 10) -> nn.Module:
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

    settings, last = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    return EfficientNet(settings, 0.2, num_classes=num_classes, last_channel=last)


def tv_regnet(num_classes: int = 10) -> nn.Module:
    from torchvision.models.regnet import BlockParams, RegNet

    return RegNet(BlockParams.from_init_params(depth=4, w_0=8, w_a=16.0, w_m=1.5, group_width=8), num_classes=num_classes)


def tv_vit(num_classes: int = 10) -> nn.Module:
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=num_classes)


FAMILIES: dict[str, tuple[str, dict]] = {
    "tv_convnext": ("families:tv_convnext", {}),
    "tv_efficientnet": ("families:tv_efficientnet", {}),
    "tv_regnet": ("families:tv_regnet", {}),
    "tv_vit": ("families:tv_vit", {}),
    "timm_convnext": ("timm:test_convnext", {}),
    "timm_efficientnet": ("timm:test_efficientnet", {}),
    "timm_regnet": ("timm:regnetx_002", {}),
    "timm_vit": ("timm:test_vit", {"img_size": 64}),
    "vgg_gap": ("vgg16_gap", {}),
    "inception_cam": ("inception_v3_cam", {}),
}


def build(name: str, seed: int = 0) -> nn.Module:
    from bench.backbones.build import build_model

    arch, args = FAMILIES[name]
    torch.manual_seed(seed)
    model = build_model(arch, 10, arch_args=args)
    for m in model.modules():  # BN statistics away from (0, 1), so that a load that skips them shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def write_cards(folder: Path, names: list[str] | None = None) -> dict[str, Path]:
    """A card and a state_dict file for each family member; returns name -> card path."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names or list(FAMILIES):
        arch, args = FAMILIES[name]
        weights = folder / f"{name}.pth"
        torch.save(build(name).state_dict(), weights)
        out[name] = folder / f"{name}.yaml"
        out[name].write_text(CARD.format(name=name, arch=arch, args=json.dumps(args), file=weights))
    return out
