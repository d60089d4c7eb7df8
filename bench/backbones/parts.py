"""Which modules of a classifier are its parts: the head, the norm between pooling and the head,
the CAM map (or the token sequence of a ViT) and the multi-scale stages.

Every part comes from the card when it names one; otherwise from what a library says of the model
(timm's pretrained_cfg['classifier'] and feature_info, torchvision's family module names), and
else from a probe pass (`bench.backbones.probe`): the CAM map is the last map with the head's
channels before the pooling, a stage is the shallowest module that ends a stride. Nothing here
decides whether CAM is right for the model: `BackboneView.check_cam` verifies that on a probe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from bench.backbones.probe import Probe
from bench.errors import BenchError

# torchvision classifiers by family (the module name of the final Linear layer)
TORCHVISION_HEADS = {"ResNet": "fc", "RegNet": "fc", "Inception3": "fc", "GoogLeNet": "fc", "ConvNeXt": "classifier.2",
                     "EfficientNet": "classifier.1", "MobileNetV3": "classifier.3", "MobileNetV2": "classifier.1",
                     "VisionTransformer": "heads.head", "SwinTransformer": "head", "VGG": "classifier.6", "DenseNet": "classifier"}
STRIDES = (4, 8, 16, 32)


@dataclass(frozen=True)
class Parts:
    family: str  # "resnet" (the paper's path: C4 and SSD on layer2/3), "cnn" or "vit"
    head: tuple[str, ...]  # head[0]: the Linear classifier; the rest: other layers new to the task (VGG-GAP's conv6)
    cam_layer: str | None  # the map (B, C, H, W) the CAM weighs, or a ViT's normalised token sequence
    cam_norm: str | None  # a LayerNorm between the pooling and the classifier (ConvNeXt's), folded into the CAM weights
    stages: tuple[str, ...]  # multi-scale maps, in order
    prefix_tokens: int = 0  # a ViT's class (and distillation) tokens before its patch tokens
    source: dict[str, str] = field(default_factory=dict)  # part -> "card", "architecture" (bench's own), "timm", "torchvision" or "probe"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_timm(model: nn.Module) -> bool:
    return type(model).__module__.startswith("timm.")


def is_vit(model: nn.Module) -> bool:
    """A plain ViT: torchvision's VisionTransformer, or timm's (patch embedding, blocks, prefix tokens)."""
    if type(model).__name__ == "VisionTransformer" and hasattr(model, "encoder") and hasattr(model, "conv_proj"):
        return True
    return is_timm(model) and all(hasattr(model, a) for a in ("patch_embed", "blocks", "num_prefix_tokens"))


def _exists(modules: dict[str, nn.Module], name: str) -> bool:
    return name in modules and not isinstance(modules[name], nn.Identity)


def derive_head(model: nn.Module, card: Any) -> tuple[tuple[str, ...], str]:
    """(head prefixes, where they came from), without running the model."""
    if card.head:
        return tuple(card.head), "card"
    if "head" in getattr(model, "bench_parts", {}):  # bench's own architectures name their parts
        return tuple(model.bench_parts["head"]), "architecture"
    modules = dict(model.named_modules())
    if is_timm(model):
        name = str((getattr(model, "pretrained_cfg", None) or {}).get("classifier") or "")
        if name in modules:
            return (name,), "timm"
    name = TORCHVISION_HEADS.get(type(model).__name__)
    if name and name in modules and type(model).__module__.startswith("torchvision."):
        return (name,), "torchvision"
    if "fc" in modules and isinstance(modules["fc"], nn.Linear):  # ResNet-shaped modules (the mini model, PyramidNet)
        return ("fc",), "probe"
    linears = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
    if not linears:
        raise BenchError(f"backbone {card.name} has no Linear classifier", "name the classifier module in the card's head (e.g. head: [head.fc])")
    return (linears[-1],), "probe"


def derive_cam_norm(model: nn.Module, card: Any, head: str) -> tuple[str | None, str]:
    """A LayerNorm between the pooled feature and the classifier: ConvNeXt's (timm head.norm,
    torchvision classifier.0), a pooled ViT's fc_norm. The card's cam_norm wins ('' for none)."""
    if card.cam_norm is not None:
        return (card.cam_norm or None), "card"
    modules = dict(model.named_modules())
    if is_vit(model):
        return ("fc_norm" if _exists(modules, "fc_norm") else None), "timm" if is_timm(model) else "torchvision"
    parent = head.rpartition(".")[0]
    if parent:
        siblings = list(dict(model.get_submodule(parent).named_children()).items())
        before = [n for n, _ in siblings[: [n for n, _ in siblings].index(head.rpartition(".")[2])]]
        norms = [f"{parent}.{n}" for n in before if isinstance(modules[f"{parent}.{n}"], nn.LayerNorm)]
        if norms:
            return norms[-1], "timm" if is_timm(model) else "torchvision"
    return None, "probe"


def vit_tokens(model: nn.Module) -> tuple[str, int]:
    """(module whose output is the normalised token sequence, number of prefix tokens)."""
    if is_timm(model):
        return "norm", int(model.num_prefix_tokens)
    return "encoder", 1  # torchvision: encoder = dropout, layers, ln; the class token first


def derive_cam_layer(probe: Probe, head_features: int, card: Any) -> str | None:
    """The last map (B, head_features, H, W) finished before the pooling (H * W > 1)."""
    if card.cam_layer:
        return card.cam_layer
    maps = [c for c in probe.finished() if c.out_shape and len(c.out_shape) == 4 and c.out_shape[1] == head_features and c.out_shape[2] * c.out_shape[3] > 1]
    return maps[-1].name if maps else None


def derive_stages(model: nn.Module, probe: Probe | None, card: Any) -> tuple[tuple[str, ...], str]:
    """The modules that end strides 4, 8, 16 and 32 (those the network has)."""
    if card.feature_layers:
        return tuple(card.feature_layers), "card"
    if "feature_layers" in getattr(model, "bench_parts", {}):
        return tuple(model.bench_parts["feature_layers"]), "architecture"
    if is_vit(model):
        return (vit_tokens(model)[0],), "timm" if is_timm(model) else "torchvision"
    names = dict(model.named_children())
    if all(f"layer{i}" in names for i in range(1, 5)) and "conv1" in names:  # the ResNet family's names (torchvision's, timm's, ResNet-shaped modules)
        return tuple(f"layer{i}" for i in range(1, 5)), "resnet names"
    if is_timm(model) and getattr(model, "feature_info", None):
        info = list(model.feature_info)
        last = {int(f["reduction"]): str(f["module"]) for f in info}  # the last module at each reduction
        names = tuple(last[s] for s in STRIDES if s in last)
        if len(names) >= 2:
            return names, "timm"
    if probe is None:
        raise BenchError(f"backbone {card.name}: its stages need a probe pass", "set feature_layers in its card")
    chosen = []
    for s in STRIDES:
        found = [c for c in probe.calls.values() if probe.stride(c.out_shape) == s and c.out_shape[2] * c.out_shape[3] > 1
                 and (probe.stride(c.in_shape) or 1) * 2 >= s]
        if found:
            depth = min(c.depth for c in found)
            chosen.append(max((c for c in found if c.depth == depth), key=lambda c: c.order).name)
    return tuple(chosen), "probe"
