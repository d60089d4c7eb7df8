"""Class activation maps from one forward pass: a hook keeps the CAM layer's output, and one
einsum over the batch weighs it by the classifier rows. `CamComputer` adds the Grad-CAM family
(grad-cam package) behind the same call.

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
    """Each CAM resized to (width, height) with cv2's bicubic and min-max normalised (NaN or constant
    -> zeros), in float64 as wsolevaluation does (its t2n casts the CAM to float64 before the resize),
    so that the uint8 truncation that follows sees the same values."""
    import cv2

    cams64 = cams.detach().float().cpu().numpy().astype(np.float64)
    return [normalize_scoremap(cv2.resize(c, size, interpolation=cv2.INTER_CUBIC)) for c in cams64]


CAM_METHODS = ("cam", "gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "scorecam", "eigencam")


class CamComputer:
    """Logits and CAMs for a batch: plain CAM with one forward pass and one einsum, or a Grad-CAM
    family method from the grad-cam package (one target per image: its loss sums over the batch)."""

    def __init__(self, model: torch.nn.Module, layer: str, classifier: str, method: str):
        self.model, self.method = model, method
        self.extractor = CamExtractor(model, layer, classifier)
        self.layer = dict(model.named_modules())[layer]

    def __call__(self, x: torch.Tensor, classes: list[torch.Tensor | None], size: tuple[int, int]) -> tuple[torch.Tensor, list[list[np.ndarray]]]:
        """Logits, and for each entry of `classes` (None: the predicted class) one score map per image."""
        with torch.inference_mode():
            logits = self.extractor(x)
            wanted = [logits.argmax(1) if c is None else c.to(logits.device) for c in classes]
            if self.method == "cam":
                return logits, [scoremaps(self.extractor.cams(c), size) for c in wanted]
        return logits, [self._grad_cam(x, c, size) for c in wanted]

    def _grad_cam(self, x: torch.Tensor, classes: torch.Tensor, size: tuple[int, int]) -> list[np.ndarray]:
        import cv2
        import pytorch_grad_cam as gc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        method = {"gradcam": gc.GradCAM, "gradcam++": gc.GradCAMPlusPlus, "xgradcam": gc.XGradCAM, "hirescam": gc.HiResCAM,
                  "layercam": gc.LayerCAM, "scorecam": gc.ScoreCAM, "eigencam": gc.EigenCAM}[self.method]
        with torch.enable_grad(), method(model=self.model, target_layers=[self.layer]) as cam:
            maps = cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(int(c)) for c in classes])
        # grad-cam returns maps at the input size after ReLU and min-max; bring them to `size` with our convention
        return [normalize_scoremap(m if m.shape[::-1] == size else cv2.resize(m, size, interpolation=cv2.INTER_CUBIC)) for m in maps]

    def close(self) -> None:
        self.extractor.remove()
