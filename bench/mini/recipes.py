"""The four training recipes of the paper's comparison, as batch transforms.

- baseline: plain labels.
- mixup (Zhang et al.; paper alpha 1): torchvision's v2.MixUp.
- cutmix (paper section 3.1; alpha 1, probability 1, one box and one pairing per batch, lambda
  corrected to the clipped box area): torchvision's v2.CutMix. Its box is the paper's rand_bbox
  (the same half-width int(W*sqrt(1-lam))//2 around a uniform centre, clipped, lambda recomputed),
  tests/test_mini_recipes.py checks this. It pairs each sample with the previous one in the
  batch (roll by one) where the paper draws a random permutation; on a shuffled batch that is
  a random pairing too, except that a sample is never paired with itself.
- cutout (DeVries & Taylor, the paper's Cutout baseline): our own. torchvision's RandomErasing
  keeps the hole inside the image, while Cutout centres a fixed-size square anywhere and clips
  it at the border, so holes near the edge are smaller; the test shows the difference.
Targets come out as (N, num_classes) probabilities; cross-entropy against them equals the paper's
lam * CE(y_a) + (1 - lam) * CE(y_b).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

RECIPES = ("baseline", "mixup", "cutout", "cutmix")


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One size x size hole per image, centre uniform over the image, clipped at the border, set to 0
    (the normalised mean, as Cutout applies it after normalisation)."""
    n, _, h, w = x.shape
    cy = torch.randint(h, (n,), generator=generator)
    cx = torch.randint(w, (n,), generator=generator)
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    y0, y1 = (cy - size // 2).clamp(0, h).view(n, 1, 1), (cy + size // 2).clamp(0, h).view(n, 1, 1)
    x0, x1 = (cx - size // 2).clamp(0, w).view(n, 1, 1), (cx + size // 2).clamp(0, w).view(n, 1, 1)
    hole = (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)
    return x.masked_fill(hole.unsqueeze(1), 0.0)


class Recipe:
    """Callable (images, labels) -> (images, soft targets) for one recipe."""

    def __init__(self, name: str, num_classes: int, cutout_size: int, alpha: float = 1.0):
        if name not in RECIPES:
            raise ValueError(f"unknown recipe {name!r}; choose from {RECIPES}")
        self.name = name
        self.num_classes = num_classes
        self.cutout_size = cutout_size
        self.mix = {"mixup": v2.MixUp(alpha=alpha, num_classes=num_classes), "cutmix": v2.CutMix(alpha=alpha, num_classes=num_classes)}.get(name)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mix is not None:  # draws lambda and the box from torch's global RNG (seeded, saved on resume)
            return self.mix(x, y)
        if self.name == "cutout":
            x = cutout(x, self.cutout_size, generator)
        return x, F.one_hot(y, self.num_classes).float()
