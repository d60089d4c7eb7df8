"""The backbone adapter: the one way tasks reach inside a model, for any family. It gives

- the classifier head (to replace, or to read CAM weights from) and the pooled pre-logit feature;
- the CAM: the map and the weights that turn it into class maps, verified on a probe input to be
  what the logits are made of (GAP, an optional LayerNorm folded into the weights, a linear
  layer), or a ViT's patch tokens with the head applied to each;
- the multi-scale maps with their channels and strides, the stem and stage spans that
  `frozen_stages` counts, and the last stage's stride (the WSOL fine-tuning's stride 1).

The parts come from the card where it names them and are derived otherwise
(`bench.backbones.parts`); `parts.source` says which. ResNet-shaped networks (conv1, bn1,
layer1..layer4) keep the paper's paths: `staged()` under torchvision's names for C4 and SSD.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bench.backbones.parts import Parts, derive_cam_layer, derive_cam_norm, derive_head, derive_stages, is_timm, is_vit, vit_tokens
from bench.backbones.probe import Probe, probe
from bench.errors import BenchError

STEM_ACTIVATIONS = ("relu", "act1")  # torchvision's ResNet, timm's ResNet
CARD_FIELDS = "head, cam_layer, cam_norm, cam_tokens, feature_layers"


@dataclass(frozen=True)
class FeatureSpec:
    """One stage's output: its module name, channels and stride relative to the input."""

    name: str
    channels: int
    stride: int


class BackboneView:
    """A loaded classifier seen through its card's names, or the derived ones."""

    def __init__(self, model: nn.Module, card: Any):
        self.model, self.card = model, card
        self.modules = dict(model.named_modules())
        self._parts: Parts | None = None
        self._probes: dict[int, Probe] = {}

    def _module(self, name: str, what: str) -> nn.Module:
        if name not in self.modules:
            raise BenchError(f"backbone {self.card.name} has no module '{name}' (the card's {what})", f"set {what} in its card to one of its modules")
        return self.modules[name]

    def probe(self, size: int | None = None) -> Probe:
        size = size or self.probe_size()
        if size not in self._probes:
            try:
                self._probes[size] = probe(self.model, size)
            except RuntimeError as exc:
                raise BenchError(f"backbone {self.card.name} does not run on a {size}x{size} probe input ({str(exc).splitlines()[0][:160]})",
                                 "set the card's preprocessing crop to the input size the model takes") from None
        return self._probes[size]

    def probe_size(self) -> int:
        """The card's crop; CNNs at least 64 px, so that a stride-32 map is larger than its pooling."""
        crop = int(self.card.preprocessing.crop)
        return crop if self.is_vit or crop >= 64 else 64

    @property
    def is_vit(self) -> bool:
        return bool(self.card.cam_tokens is not None or is_vit(self.model))

    # --- the parts ---

    @property
    def parts(self) -> Parts:
        if self._parts is None:
            self._parts = self._derive()
        return self._parts

    def _derive(self) -> Parts:
        card, model = self.card, self.model
        head, head_src = derive_head(model, card)
        for name in head:
            self._module(name, "head")
        source = {"head": head_src}
        norm, source["cam_norm"] = derive_cam_norm(model, card, head[0])
        if norm is not None:
            self._module(norm, "cam_norm")
        if self.is_vit:
            layer, prefix = vit_tokens(model) if is_vit(model) else (None, 0)
            if card.cam_tokens is not None:
                prefix = int(card.cam_tokens)
            layer = card.cam_layer or layer
            if layer is None:
                raise BenchError(f"backbone {card.name}: cam_tokens is set but no cam_layer", "name the module whose output is the token sequence as cam_layer")
            source["cam_layer"] = "card" if card.cam_layer else ("timm" if is_timm(model) else "torchvision")
            stages, source["stages"] = derive_stages(model, None, card) if (card.feature_layers or is_vit(model)) else ((layer,), "card")
            parts = Parts("vit", head, layer, norm, stages, prefix, source)
        else:
            needs_probe = not card.cam_layer or not card.feature_layers
            found = self.probe() if needs_probe else None
            in_features = self._linear(head[0]).in_features
            layer = derive_cam_layer(found, in_features, card) if found is not None else card.cam_layer
            source["cam_layer"] = "card" if card.cam_layer else "probe"
            stages, source["stages"] = derive_stages(model, found, card)
            family = "resnet" if self._resnet_shaped(stages) else "cnn"
            parts = Parts(family, head, layer, norm, stages, 0, source)
        for name in parts.stages:
            self._module(name, "feature_layers")
        if parts.cam_layer is not None:
            self._module(parts.cam_layer, "cam_layer")
        return parts

    def _resnet_shaped(self, stages: tuple[str, ...]) -> bool:
        return len(stages) == 4 and all(n in self.modules for n in ("conv1", "bn1")) and any(n in self.modules for n in STEM_ACTIVATIONS)

    def _linear(self, name: str) -> nn.Linear:
        head = self._module(name, "head")
        if not isinstance(head, nn.Linear):
            raise BenchError(f"the classifier '{name}' of {self.card.name} is not a Linear layer", "name a Linear classifier as the card's head")
        return head

    # --- the classifier ---

    @property
    def head_name(self) -> str:
        return self.parts.head[0]

    def head(self) -> nn.Linear:
        return self._linear(self.head_name)

    def replace_head(self, num_classes: int, seed: int) -> nn.Linear:
        """A new Linear classifier for `num_classes`, initialised under `seed`, in the old one's
        place; the head's other new layers (VGG-GAP's conv6) are initialised again under the seed."""
        old = self.head()
        torch.manual_seed(seed)
        new = nn.Linear(old.in_features, num_classes)
        parent, _, attr = self.head_name.rpartition(".")
        setattr(self.model.get_submodule(parent) if parent else self.model, attr, new)
        for name in self.parts.head[1:]:
            for module in self._module(name, "head").modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        self.modules = dict(self.model.named_modules())
        self._probes.clear()
        return new

    def fast_modules(self, recipe: str) -> tuple[str, ...]:
        """The modules the WSOL fine-tuning trains at lr_head: the new layers (the head); with
        wsolevaluation's recipe on a ResNet also layer4 (its main.py), the last stage here."""
        if recipe == "wsolevaluation" and self.parts.family == "resnet":
            return (self.parts.cam_layer, *self.parts.head)
        return self.parts.head

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
        if self.parts.cam_layer is None:
            raise BenchError(f"backbone {self.card.name} has no map with its classifier's {self.head().in_features} channels before the pooling, so no CAM",
                             "name the map the classifier pools as the card's cam_layer")
        return self.parts.cam_layer

    def cam_layer(self) -> nn.Module:
        return self._module(self.cam_layer_name, "cam_layer")

    def cam_norm(self) -> nn.LayerNorm | None:
        name = self.parts.cam_norm
        if name is None:
            return None
        norm = self._module(name, "cam_norm")
        if not isinstance(norm, nn.LayerNorm):
            raise BenchError(f"the cam_norm '{name}' of {self.card.name} is a {type(norm).__name__}, not a LayerNorm", "CAM folds only a LayerNorm over channels")
        return norm

    @property
    def cam_method(self) -> str:
        """What the record calls the CAM this backbone gets."""
        if self.parts.family == "vit":
            return "vit_patch_tokens (the head applied to each patch token)"
        return "cam (GAP, LayerNorm folded into the classifier weights)" if self.parts.cam_norm else "cam (GAP + linear)"

    def check_cam(self) -> None:
        """CAM is only right when the logits are the head applied to the (normalised) spatial mean
        of the CAM layer. Checked on a probe input, so that any other head (an MLP, a norm the
        card does not name) is refused, not turned into a wrong map. ViTs: the token sequence
        must be (B, prefix + patches, head width)."""
        layer, head = self.cam_layer(), self.head()
        kept: list[torch.Tensor] = []
        hook = layer.register_forward_hook(lambda module, args, out: kept.append(out))
        was_training = self.model.training
        self.model.eval()
        size = self.probe_size()
        try:
            with torch.no_grad():
                device = next(self.model.parameters()).device
                logits = self.model(torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device))
                features = kept[0] if kept else None
                if self.parts.family == "vit":
                    ok = features is not None and features.dim() == 3 and features.shape[-1] == head.in_features and features.shape[1] > self.parts.prefix_tokens
                else:
                    ok = features is not None and features.dim() == 4 and features.shape[1] == head.in_features
                    if ok:
                        pooled = features.mean((2, 3))
                        norm = self.cam_norm()
                        if norm is not None:
                            pooled = nn.functional.layer_norm(pooled, (pooled.shape[1],), norm.weight, norm.bias, norm.eps)
                        expected = head(pooled)
                        ok = torch.allclose(logits, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max().clamp(min=1)))
        finally:
            hook.remove()
            self.model.train(was_training)
        if not ok:
            raise BenchError(f"CAM needs global average pooling of '{self.cam_layer_name}' straight into the linear classifier '{self.head_name}' "
                             f"(a LayerNorm between them named as cam_norm is folded in), and {self.card.name}'s logits are not that",
                             "use a GAP + linear classifier backbone, or set cam_layer / cam_norm in its card; a Grad-CAM method would not be the paper's CAM")

    # --- stages ---

    def stem(self) -> "OrderedDict[str, nn.Module]":
        """conv1, bn1, the activation and maxpool (an Identity where the network has none), under
        torchvision's names."""
        for name in ("conv1", "bn1"):
            if name not in self.modules:
                raise BenchError(f"backbone {self.card.name} has no '{name}': its stem is not a ResNet's", "this path needs a ResNet-family backbone")
        act = next((self.modules[n] for n in STEM_ACTIVATIONS if n in self.modules), None)
        if act is None:
            raise BenchError(f"backbone {self.card.name} has no stem activation ({' or '.join(STEM_ACTIVATIONS)})", "this path needs a ResNet-family backbone")
        return OrderedDict(conv1=self.modules["conv1"], bn1=self.modules["bn1"], relu=act, maxpool=self.modules.get("maxpool", nn.Identity()))

    def stages(self) -> "OrderedDict[str, nn.Module]":
        """The stage modules, in order (a ResNet's layer1 .. layer4)."""
        return OrderedDict((name, self._module(name, "feature_layers")) for name in self.parts.stages)

    def staged(self) -> nn.Module:
        """The stem and the four stages as one module with torchvision's ResNet names (conv1, bn1,
        relu, maxpool, layer1 .. layer4), sharing the model's modules: the paper's C4 and SSD."""
        stem, stages = self.stem(), self.stages()
        if len(stages) != 4:
            raise BenchError(f"backbone {self.card.name} names {len(stages)} feature_layers; the ResNet detectors need four stages", "list four stages in the card's feature_layers")
        parts = nn.Module()
        for name, module in list(stem.items()) + [(f"layer{i}", m) for i, m in enumerate(stages.values(), start=1)]:
            parts.add_module(name, module)
        return parts

    def feature_specs(self, size: int | None = None) -> list[FeatureSpec]:
        """Channels and stride of each stage, from a probe forward pass (a ViT: its token grid)."""
        found = self.probe(size)
        specs = []
        for name in self.parts.stages:
            call = found.calls.get(name)
            if call is None or call.out_shape is None:
                raise BenchError(f"the stage '{name}' of {self.card.name} is not called in a forward pass", "list modules the forward pass runs in feature_layers")
            if self.parts.family == "vit":
                n = call.out_shape[1] - self.parts.prefix_tokens
                specs.append(FeatureSpec(name, int(call.out_shape[-1]), max(1, round(found.size / max(1, round(n ** 0.5))))))
            else:
                specs.append(FeatureSpec(name, int(call.out_shape[1]), int(found.stride(call.out_shape) or 0)))
        return specs

    def stage_groups(self) -> list[list[str]]:
        """The parameter-holding modules of the stem, then of each stage, in the order a forward
        pass runs them: what `frozen_stages` counts (1: the stem, 2: the stem and the first stage).
        The stem is everything that runs before the first stage's own modules."""
        found = self.probe()
        order = [c for c in found.finished() if any(True for _ in self.modules[c.name].parameters(recurse=False))]
        bounds = [found.calls[n].order for n in self.parts.stages]
        groups: list[list[str]] = [[] for _ in range(len(bounds) + 1)]
        first = self.parts.stages[0]
        # a first stage that is one layer without weights (VGG's ReLU after conv3_3) spans the
        # modules that run at its stride; otherwise its own modules
        by_stride = not any(True for _ in self.modules[first].parameters())
        first_stride = found.stride(found.calls[first].out_shape) or 0
        for call in order:
            if call.order > bounds[-1]:
                continue  # the head and what runs after the last stage
            k = next(i for i, b in enumerate(bounds) if call.order <= b)
            if by_stride:
                inside_first = (found.stride(call.out_shape) or 0) >= first_stride
            else:
                inside_first = call.name == first or call.name.startswith(first + ".")
            groups[k + 1 if (k > 0 or inside_first) else 0].append(call.name)
        return groups

    def freeze(self, frozen_stages: int) -> list[str]:
        """No gradient for the stem and the first frozen_stages - 1 stages (detectron2's FREEZE_AT);
        a ViT's stem is its patch and position embedding. Returns the frozen module names."""
        model = self.model
        if self.parts.family == "vit":
            if frozen_stages <= 0:
                return []
            names = [n for n in ("conv_proj", "patch_embed", "encoder.pos_embedding", "pos_embed", "cls_token", "class_token", "reg_token")
                     if n in dict(model.named_modules()) or n in dict(model.named_parameters())]
            params = dict(model.named_parameters())
            for n in names:
                (params[n] if n in params else model.get_submodule(n)).requires_grad_(False)
            return names
        groups = self.stage_groups()
        frozen = [n for g in groups[:frozen_stages] for n in g]
        modules = dict(model.named_modules())
        for n in frozen:
            for p in modules[n].parameters(recurse=False):
                p.requires_grad_(False)
        return frozen

    # --- the last stage's stride ---

    def set_final_stride(self, stride: int) -> tuple[list[str], str]:
        """Stride 1 for the steps into the stride-32 stage (the WSOL fine-tuning's layer4 at stride
        1: a map twice as fine). (changed modules, how): the steps are every convolution or pooling
        that halves a stride-16 map; stride 1 applies when each keeps the map's size at stride 1
        (an odd kernel with 'same' padding), and is recorded as not applicable otherwise (ConvNeXt's
        2x2 downsampling, a ViT, a network that ends at stride 16)."""
        if stride != 1:
            return [], "kept"
        if self.parts.family == "vit":
            return [], "not applicable (a ViT's patch grid has one stride)"
        found = self.probe()
        steps = [c for c in found.finished() if not any(True for _ in self.modules[c.name].children())
                 and found.stride(c.in_shape) == 16 and found.stride(c.out_shape) == 32]
        if not steps:
            return [], "not applicable (no step from stride 16 to 32: the map is at stride 16 or finer already)"
        bad = [c.name for c in steps if not _same_at_stride_1(self.modules[c.name])]
        if bad:
            return [], f"not applicable ({bad[0]} would change the map's size at stride 1)"
        last = self.parts.stages[-1]
        if self.parts.family == "resnet":  # the paper's: every strided convolution of layer4, in module order
            return self.set_stride(last, 1), "stride 1"
        for c in steps:
            module = self.modules[c.name]
            module.stride = (1, 1) if isinstance(module, nn.Conv2d) else 1
        self._probes.clear()
        return [c.name[len(last) + 1:] if c.name.startswith(last + ".") else c.name for c in steps], "stride 1"

    def set_stride(self, name: str, stride: int) -> list[str]:
        """Every strided convolution of one module at this stride (the ResNet path's layer4 -> 1)."""
        changed = []
        for sub, module in self._module(name, "cam_layer").named_modules():
            if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
                module.stride = (stride, stride)
                changed.append(sub)
        self._probes.clear()  # the shapes changed
        return changed

    def describe(self) -> dict[str, Any]:
        """What the record keeps of the adapter: the parts and where each came from."""
        return {**self.parts.to_dict(), "cam_method": self.cam_method if self.parts.cam_layer else None}


def _same_at_stride_1(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv2d):
        if type(module).__name__ == "Conv2dSame":  # timm's dynamic 'same' padding follows the stride
            return True
        k, d, p = module.kernel_size, module.dilation, module.padding
        if isinstance(p, str):
            return p == "same"
        return all(kk % 2 == 1 and pp == dd * (kk - 1) // 2 for kk, dd, pp in zip(k, d, p))
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
        p = module.padding if isinstance(module.padding, int) else module.padding[0]
        return k % 2 == 1 and p == (k - 1) // 2
    return False

