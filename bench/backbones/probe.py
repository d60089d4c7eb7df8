"""One forward pass of a probe image with a hook on every module: each module's input and output
shapes and the order in which modules finish. The backbone adapter reads the model's structure
from it (which module is the CAM map, which modules end each stride, which convolutions step
into the last stage), so that any family works without a table of module names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Call:
    """One module's first call in the probe pass."""

    name: str
    depth: int
    order: int  # when it finished, counting every module's first call
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...] | None


@dataclass
class Probe:
    size: int
    calls: dict[str, Call] = field(default_factory=dict)
    logits: torch.Tensor | None = None

    def stride(self, shape: tuple[int, ...] | None) -> int | None:
        """The stride of a (B, C, H, W) map relative to the probe input, a power of two."""
        if shape is None or len(shape) != 4 or shape[-1] < 1:
            return None
        return 2 ** round(math.log2(self.size / shape[-1]))

    def finished(self) -> list[Call]:
        return sorted(self.calls.values(), key=lambda c: c.order)


def _first_tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def probe(model: nn.Module, size: int, exclude: tuple[str, ...] = ()) -> Probe:
    """Run `model` once on a (2, 3, size, size) input in eval mode (the mode is restored) and
    record every module's first call; `exclude` names modules (and their children) left out."""
    result = Probe(size)
    counter = [0]
    handles = []

    def post(name: str, depth: int):
        def hook(module: nn.Module, args: tuple, out: object) -> None:
            if name in result.calls:
                return
            counter[0] += 1
            x, y = _first_tensor(args), _first_tensor(out)
            result.calls[name] = Call(name, depth, counter[0], tuple(x.shape) if x is not None else None, tuple(y.shape) if y is not None else None)
        return hook

    for name, module in model.named_modules():
        if not name or any(name == e or name.startswith(e + ".") for e in exclude):
            continue
        depth = name.count(".") + 1
        handles.append(module.register_forward_hook(post(name, depth)))
    was_training = model.training
    model.eval()
    try:
        device = next(iter(model.parameters())).device
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
        with torch.no_grad():
            out = model(x)
        result.logits = _first_tensor(out) if not isinstance(out, dict) else None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return result
