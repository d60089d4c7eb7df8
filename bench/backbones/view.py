"""The one way tasks reach inside a backbone: its classifier head, the pooled pre-logit feature,
the CAM feature map with the weights that turn it into class maps, and its stages as multi-scale
feature maps with their channels and strides (detectron2's ShapeSpec, timm's feature_info).

Implemented for the ResNet / ResNeXt families, torchvision's and timm's (and ResNet-shaped
modules such as the mini benchmark's): the card names the head (`head`), the CAM layer
(`cam_layer`) and the stages (`feature_layers`). Other families come later; until then they are
refused with one line where a task needs a part they do not have.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bench.errors import BenchError

STEM_ACTIVATIONS = ("relu", "act1")  # torchvision's ResNet, timm's ResNet


@dataclass(frozen=True)
class FeatureSpec:
    """One stage's output: its module name, channels and stride relative to the input."""

    name: str
    channels: int
    stride: int


class BackboneView:
    """A loaded classifier seen through its card's names."""

    def __init__(self, model: nn.Module, card: Any):
        self.model, self.card = model, card
        self.modules = dict(model.named_modules())

    def _module(self, name: str, what: str) -> nn.Module:
        if name not in self.modules:
            raise BenchError(f"backbone {self.card.name} has no module '{name}' (the card's {what})", f"set {what} in its card to one of its modules")
        return self.modules[name]

    # --- the classifier ---

    @property
    def head_name(self) -> str:
        return self.card.head[0]

    def head(self) -> nn.Linear:
        head = self._module(self.head_name, "head")
        if not isinstance(head, nn.Linear):
            raise BenchError(f"the classifier '{self.head_name}' of {self.card.name} is not a Linear layer", "name a Linear classifier as the card's head")
        return head

    def replace_head(self, num_classes: int, seed: int) -> nn.Linear:
        """A new Linear classifier for `num_classes`, initialised under `seed`, in the old one's place."""
        old = self.head()
        torch.manual_seed(seed)
        new = nn.Linear(old.in_features, num_classes)
        parent, _, attr = self.head_name.rpartition(".")
        setattr(self.model.get_submodule(parent) if parent else self.model, attr, new)
        self.modules = dict(self.model.named_modules())
        return new

    def pooled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre-logit pooled features, logits) from one forward pass: the head's input, as it sees it."""
        kept: list[torch.Tensor] = []
        hook = self.head().register_forward_pre_hook(lambda module, args: kept.append(args[0]))
        try:
            logits = self.model(x)
        finally:
            hook.remove()
        return kept[0], logits

    # --- CAM ---

    @property
    def cam_layer_name(self) -> str:
        return self.card.cam_layer

    def cam_layer(self) -> nn.Module:
        return self._module(self.cam_layer_name, "cam_layer")

    def cam_weights(self) -> torch.Tensor:
        """(classes, channels): the rows that weigh the CAM layer's channels into class maps."""
        return self.head().weight

    def check_cam(self, size: int = 64) -> None:
        """CAM is only right when the logits are the head applied to the CAM layer's spatial mean
        (global average pooling straight into a linear layer). Checked on a probe input, so that a
        pool -> norm -> linear head (ConvNeXt's) is refused, not turned into a wrong map."""
        layer, head = self.cam_layer(), self.head()
        kept: list[torch.Tensor] = []
        hook = layer.register_forward_hook(lambda module, args, out: kept.append(out))
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                device = next(self.model.parameters()).device
                logits = self.model(torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device))
                features = kept[0]
                ok = features.dim() == 4 and features.shape[1] == head.in_features
                if ok:
                    expected = head(features.mean((2, 3)))
                    ok = torch.allclose(logits, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max().clamp(min=1)))
        finally:
            hook.remove()
            self.model.train(was_training)
        if not ok:
            raise BenchError(f"CAM needs global average pooling of '{self.cam_layer_name}' straight into the linear classifier '{self.head_name}', "
                             f"and {self.card.name}'s logits are not that (e.g. a norm layer between the pool and the classifier)",
                             "use a GAP + linear classifier backbone, or a Grad-CAM method is not a fix: its maps would still not be the paper's CAM")

    # --- stages ---

    def stem(self) -> "OrderedDict[str, nn.Module]":
        """conv1, bn1, the activation and maxpool (an Identity where the network has none), under
        torchvision's names."""
        for name in ("conv1", "bn1"):
            if name not in self.modules:
                raise BenchError(f"backbone {self.card.name} has no '{name}': its stem is not a ResNet's", "detection and stage features need a ResNet-family backbone")
        act = next((self.modules[n] for n in STEM_ACTIVATIONS if n in self.modules), None)
        if act is None:
            raise BenchError(f"backbone {self.card.name} has no stem activation ({' or '.join(STEM_ACTIVATIONS)})", "detection and stage features need a ResNet-family backbone")
        return OrderedDict(conv1=self.modules["conv1"], bn1=self.modules["bn1"], relu=act, maxpool=self.modules.get("maxpool", nn.Identity()))

    def stages(self) -> "OrderedDict[str, nn.Module]":
        """The card's feature_layers, in order (a ResNet's layer1 .. layer4)."""
        return OrderedDict((name, self._module(name, "feature_layers")) for name in self.card.feature_layers)

    def staged(self) -> nn.Module:
        """The stem and the four stages as one module with torchvision's ResNet names (conv1, bn1,
        relu, maxpool, layer1 .. layer4), sharing the model's modules: what the detectors build on."""
        stem, stages = self.stem(), self.stages()
        if len(stages) != 4:
            raise BenchError(f"backbone {self.card.name} names {len(stages)} feature_layers; the detectors need four stages", "list four stages in the card's feature_layers")
        parts = nn.Module()
        for name, module in list(stem.items()) + [(f"layer{i}", m) for i, m in enumerate(stages.values(), start=1)]:
            parts.add_module(name, module)
        return parts

    def feature_specs(self, size: int = 64) -> list[FeatureSpec]:
        """Channels and stride of each stage, from a probe forward pass."""
        x = torch.zeros(1, 3, size, size, device=next(self.model.parameters()).device)
        specs = []
        with torch.no_grad():
            for module in self.stem().values():
                x = module(x)
            for name, module in self.stages().items():
                x = module(x)
                specs.append(FeatureSpec(name, int(x.shape[1]), size // int(x.shape[-1])))
        return specs

    def set_stride(self, name: str, stride: int) -> list[str]:
        """Give every strided convolution in one stage this stride (layer4 -> 1 doubles the CAM)."""
        changed = []
        for sub, module in self._module(name, "cam_layer").named_modules():
            if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
                module.stride = (stride, stride)
                changed.append(sub)
        return changed
