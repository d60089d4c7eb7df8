"""Class activation maps from one forward pass: a hook keeps the CAM layer's output, and one
einsum over the batch weighs it by the classifier rows. `CamComputer` adds the Grad-CAM family
(grad-cam package) behind the same call.

CAM (wsolevaluation's ResNet definition): the class-weighted mean over channels of the last
feature map, with no classifier bias and no ReLU. Upsampling (cv2 bicubic to the input size) and
min-max normalisation follow wsolevaluation's inference.py. A LayerNorm between the pooling and
the classifier (ConvNeXt) is folded into the weights: its centring and scale are one affine map
per image, the same at every location, which min-max normalisation removes. A ViT's map is the
head applied to each patch token of the final normalised sequence (method `vit_patch_tokens`),
on the patch grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.metrics.wsol import normalize_scoremap


class CamExtractor:
    """Wraps a classifier: `logits = extractor(x)` runs the model once and keeps the features."""

    def __init__(self, model: torch.nn.Module, layer: str = "layer4", classifier: str = "fc", norm: str | None = None,
                 prefix_tokens: int | None = None):
        """`norm`: a LayerNorm between pooling and classifier (folded into the weights of a map, applied
        to each token of a ViT); `prefix_tokens`: the layer gives a ViT's tokens, this many before the patches."""
        self.model = model
        self.features: torch.Tensor | None = None
        self.size: tuple[int, int] = (0, 0)
        modules = dict(model.named_modules())
        for name in (layer, classifier) + ((norm,) if norm else ()):
            if name not in modules:
                raise ValueError(f"the model has no module '{name}'")
        self.classifier = modules[classifier]
        self.norm = modules[norm] if norm else None
        self.prefix = prefix_tokens
        self._hook = modules[layer].register_forward_hook(self._keep)

    @property
    def weight(self) -> torch.Tensor:
        return self.classifier.weight

    def _keep(self, module: Any, inputs: Any, output: torch.Tensor) -> None:
        self.features = output

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.size = (int(x.shape[-2]), int(x.shape[-1]))
        return self.model(x)

    def grid(self, n: int) -> tuple[int, int]:
        """The patch grid (rows, columns) of n tokens for the last input's aspect ratio."""
        h, w = self.size
        rows = max(1, round((n * h / max(w, 1)) ** 0.5))
        return rows, n // rows

    def tokens_to_map(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, prefix + N, D) tokens -> (B, D, rows, columns) patch maps (Grad-CAM's reshape)."""
        patches = tokens[:, self.prefix:]
        rows, cols = self.grid(patches.shape[1])
        return patches.reshape(patches.shape[0], rows, cols, patches.shape[2]).permute(0, 3, 1, 2)

    def cams(self, classes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) maps for one class per image, from the last forward pass."""
        if self.features is None:
            raise RuntimeError("run a forward pass first")
        weights = self.weight[classes]  # (B, C)
        if self.prefix is not None:  # a ViT: the head on each (normalised) patch token, without its bias
            patches = self.features[:, self.prefix:]
            if self.norm is not None:
                patches = torch.nn.functional.layer_norm(patches, self.norm.normalized_shape, self.norm.weight, self.norm.bias, self.norm.eps)
            maps = torch.einsum("bc,bnc->bn", weights, patches) / patches.shape[-1]
            return maps.reshape(maps.shape[0], *self.grid(maps.shape[1]))
        if self.norm is not None and self.norm.weight is not None:
            weights = weights * self.norm.weight[None, :]
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

    def __init__(self, model: torch.nn.Module, layer: str, classifier: str, method: str, norm: str | None = None, prefix_tokens: int | None = None):
        self.model, self.method = model, method
        self.extractor = CamExtractor(model, layer, classifier, norm, prefix_tokens)
        self.layer = dict(model.named_modules())[layer]

    @classmethod
    def for_view(cls, view: Any, method: str) -> "CamComputer":
        """For a BackboneView's model, with the parts the view derived (and checked)."""
        parts = view.parts
        return cls(view.model, view.cam_layer_name, view.head_name, method, parts.cam_norm, parts.prefix_tokens if parts.family == "vit" else None)

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
        reshape = self.extractor.tokens_to_map if self.extractor.prefix is not None else None
        self.extractor.size = (int(x.shape[-2]), int(x.shape[-1]))
        with torch.enable_grad(), method(model=self.model, target_layers=[self.layer], reshape_transform=reshape) as cam:
            maps = cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(int(c)) for c in classes])
        # grad-cam returns maps at the input size after ReLU and min-max; bring them to `size` with our convention
        return [normalize_scoremap(m if m.shape[::-1] == size else cv2.resize(m, size, interpolation=cv2.INTER_CUBIC)) for m in maps]

    def close(self) -> None:
        self.extractor.remove()
