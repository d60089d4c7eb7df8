"""Class activation maps from one forward pass: a hook keeps the CAM layer's output, and one
einsum over the batch weighs it by the classifier rows.

CAM (wsolevaluation's ResNet definition): the class-weighted mean over channels of the last
feature map, with no classifier bias and no ReLU. Upsampling (cv2 bicubic to the input size) and
min-max normalisation follow wsolevaluation's inference.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.metrics.wsol import normalize_scoremap


class CamExtractor:
    """Wraps a classifier: `logits = extractor(x)` runs the model once and keeps the features."""

    def __init__(self, model: torch.nn.Module, layer: str = "layer4", classifier: str = "fc"):
        self.model = model
        self.features: torch.Tensor | None = None
        modules = dict(model.named_modules())
        for name in (layer, classifier):
            if name not in modules:
                raise ValueError(f"the model has no module '{name}'")
        self.weight = modules[classifier].weight
        self._hook = modules[layer].register_forward_hook(self._keep)

    def _keep(self, module: Any, inputs: Any, output: torch.Tensor) -> None:
        self.features = output

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def cams(self, classes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) maps for one class per image, from the last forward pass."""
        if self.features is None:
            raise RuntimeError("run a forward pass first")
        weights = self.weight[classes]  # (B, C)
        return torch.einsum("bc,bchw->bhw", weights, self.features) / self.features.shape[1]

    def remove(self) -> None:
        self._hook.remove()


def scoremaps(cams: torch.Tensor, size: tuple[int, int]) -> list[np.ndarray]:
    """Each CAM resized to (width, height) with cv2's bicubic and min-max normalised (NaN or constant -> zeros)."""
    import cv2

    return [normalize_scoremap(cv2.resize(c, size, interpolation=cv2.INTER_CUBIC)) for c in cams.detach().float().cpu().numpy()]
