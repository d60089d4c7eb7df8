"""Detector bodies on any backbone, through the backbone adapter (bench/backbones/view.py):

- `StageMaps`: the adapter's stage outputs as named maps from one forward pass that stops after
  the last stage (hooks on the stage modules; the head never runs). Any family whose stages are
  modules: ConvNeXt, EfficientNet, RegNet, VGG-GAP, Inception-V3, ...
- `VitMap` and `SimpleFeaturePyramid`: a plain ViT's last token map at its patch stride, at any
  input size (the position embedding resampled), and ViTDet's simple feature pyramid from it
  (Li et al., ECCV 2022: strides 4 and 8 by transposed convolutions, 16 as is, 32 by max-pooling,
  each then a 1x1 and a 3x3 convolution with LayerNorm).
- `with_fpn`: torchvision's FeaturePyramidNetwork (and its max-pool level) over a body's maps.

The paper's ResNet paths (C4, SSD on layer2/layer3) stay in bench/detection/models.py.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError


class _Done(Exception):
    """Raised by the last stage's hook: the rest of the network (pooling, head) is not needed."""


class StageMaps(nn.Module):
    """x -> OrderedDict('0': first stage's map, ...) of `model`'s stage modules `names`."""

    def __init__(self, model: nn.Module, names: tuple[str, ...], channels: list[int], strides: list[int]):
        super().__init__()
        self.model, self.names = model, tuple(names)
        self.out_channels_list, self.strides = list(channels), list(strides)
        self._maps: dict[str, torch.Tensor] = {}
        modules = dict(model.named_modules())
        for name in self.names:
            modules[name].register_forward_hook(self._keeper(name))

    def _keeper(self, name: str) -> Any:
        def keep(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            self._maps[name] = out
            if name == self.names[-1]:
                raise _Done
        return keep

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        self._maps = {}
        try:
            self.model(x)
        except _Done:
            pass
        maps, self._maps = self._maps, {}
        missing = [n for n in self.names if n not in maps]
        if missing:
            raise RuntimeError(f"stage {missing[0]} did not run in the forward pass")
        return OrderedDict((str(i), maps[n]) for i, n in enumerate(self.names))


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple))


class VitMap(nn.Module):
    """A plain ViT's final normalised patch tokens as a (B, D, h, w) map, for any input size: the
    input padded to a multiple of the patch, the position embedding resampled (bicubic) to the grid."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.timm = type(model).__module__.startswith("timm.")
        if self.timm:  # timm's own dynamic-size path (what dynamic_img_size=True builds)
            from timm.layers import Format

            pe = model.patch_embed
            pe.strict_img_size, pe.dynamic_img_pad, pe.flatten, pe.output_fmt = False, True, False, Format.NHWC
            model.dynamic_img_size = True
            self.patch = int(pe.patch_size[0])
            self.prefix = int(model.num_prefix_tokens)
            self.channels = int(model.embed_dim)
        else:
            self.patch = int(model.patch_size)
            self.prefix = 1
            self.channels = int(model.hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _pad_to(x, self.patch)
        h, w = x.shape[-2] // self.patch, x.shape[-1] // self.patch
        if self.timm:
            tokens = self.model.forward_features(x)
        else:
            m = self.model
            tokens = m.conv_proj(x).flatten(2).transpose(1, 2)
            tokens = torch.cat([m.class_token.expand(x.shape[0], -1, -1), tokens], 1)
            pos = m.encoder.pos_embedding
            side = int(round((pos.shape[1] - 1) ** 0.5))
            grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(1, h * w, -1)
            tokens = tokens + torch.cat([pos[:, :1], grid], 1)
            tokens = m.encoder.ln(m.encoder.layers(m.encoder.dropout(tokens)))
        patches = tokens[:, self.prefix:]
        return patches.transpose(1, 2).reshape(x.shape[0], -1, h, w)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _out_block(cin: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, out, 1, bias=False), LayerNorm2d(out), nn.Conv2d(out, out, 3, padding=1, bias=False), LayerNorm2d(out))


class SimpleFeaturePyramid(nn.Module):
    """ViTDet's simple feature pyramid on a stride-16 map: strides 4, 8, 16, 32 (and `sources`
    picks which of them to return, e.g. (8, 16) for SSD), each `out_channels` wide."""

    def __init__(self, vit: VitMap, out_channels: int = 256, strides: tuple[int, ...] = (4, 8, 16, 32), pool: bool = False):
        """pool: also a 'pool' level, the last map max-pooled by 2 (torchvision's LastLevelMaxPool)."""
        super().__init__()
        self.vit, self.strides, self.pool = vit, tuple(strides), pool
        if vit.patch != 16:
            raise BenchError(f"the simple feature pyramid is built for a patch-16 ViT, not patch {vit.patch}", "use a ViT with 16-pixel patches")
        d = vit.channels
        scales = {4: nn.Sequential(nn.ConvTranspose2d(d, d // 2, 2, 2), LayerNorm2d(d // 2), nn.GELU(), nn.ConvTranspose2d(d // 2, d // 4, 2, 2)),
                  8: nn.ConvTranspose2d(d, d // 2, 2, 2), 16: nn.Identity(), 32: nn.MaxPool2d(2, 2)}
        width = {4: d // 4, 8: d // 2, 16: d, 32: d}
        self.scales = nn.ModuleList(scales[s] for s in self.strides)
        self.outs = nn.ModuleList(_out_block(width[s], out_channels) for s in self.strides)
        self.out_channels = out_channels
        self.out_channels_list = [out_channels] * len(self.strides)

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        top = self.vit(x)
        maps = OrderedDict((str(i), out(scale(top))) for i, (scale, out) in enumerate(zip(self.scales, self.outs)))
        if self.pool:
            maps["pool"] = F.max_pool2d(maps[str(len(self.strides) - 1)], 1, 2, 0)
        return maps


class WithFPN(nn.Module):
    """A body's maps through torchvision's FeaturePyramidNetwork with the extra max-pool level."""

    def __init__(self, body: nn.Module, in_channels: list[int], out_channels: int = 256):
        super().__init__()
        from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

        self.body = body
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return self.fpn(self.body(x))


def norm_layers(module: nn.Module) -> dict[str, dict[str, int]]:
    """How many norm layers of each kind are frozen (no trainable parameter) and trainable: the record's account."""
    out: dict[str, dict[str, int]] = {}
    for m in module.modules():
        kind = type(m).__name__
        if not kind.endswith(("Norm", "Norm1d", "Norm2d", "NormAct2d")):
            continue
        params = list(m.parameters(recurse=False))
        state = "trainable" if any(p.requires_grad for p in params) else "frozen"
        out.setdefault(kind, {}).setdefault(state, 0)
        out[kind][state] += 1
    return out
