"""Pure image operations of the occlusion and in-between-class sweeps (paper Figure 5), on
batches of images in [0, 1] pixel space (N, C, H, W), before the card's normalisation.

A "centred square of side s" starts at (H - s) // 2, (W - s) // 2: side 0 is nothing, side H
the whole image. Every sweep point is applied to the same decoded batch.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def center_square(height: int, width: int, side: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the centred square of side `side` (clipped to the image)."""
    sy, sx = min(side, height), min(side, width)
    y0, x0 = (height - sy) // 2, (width - sx) // 2
    return y0, y0 + sy, x0, x0 + sx


def occlude(x: torch.Tensor, side: int, mode: str, fill: torch.Tensor) -> torch.Tensor:
    """center: the centred square set to `fill`; boundary: everything outside it set to `fill`.
    fill is a (1, C, 1, 1) colour in pixel space (black: 0; the normalisation mean: 0 after it)."""
    y0, y1, x0, x1 = center_square(x.shape[2], x.shape[3], side)
    if mode == "center":
        out = x.clone()
        out[:, :, y0:y1, x0:x1] = fill
        return out
    if mode == "boundary":
        out = fill.expand_as(x).clone()
        out[:, :, y0:y1, x0:x1] = x[:, :, y0:y1, x0:x1]
        return out
    raise ValueError(f"unknown occlusion mode {mode}")


def mixup(a: torch.Tensor, b: torch.Tensor, lam: float) -> torch.Tensor:
    """lam * a + (1 - lam) * b: lam 1 is image a, 0 is image b."""
    return lam * a + (1.0 - lam) * b


def cutmix_center(a: torch.Tensor, b: torch.Tensor, side: int) -> torch.Tensor:
    """Image a with the centred square of side `side` taken from b (side 0: a; the full size: b)."""
    y0, y1, x0, x1 = center_square(a.shape[2], a.shape[3], side)
    out = a.clone()
    out[:, :, y0:y1, x0:x1] = b[:, :, y0:y1, x0:x1]
    return out


def class_pairs(targets: Sequence[int], n: int, seed: int) -> np.ndarray:
    """n pairs (i, j) of dataset indices whose classes differ, drawn uniformly with replacement
    from a seeded generator (numpy PCG64), redrawing j until the classes differ: fixed by
    (targets, n, seed)."""
    t = np.asarray(targets)
    if len(np.unique(t)) < 2:
        raise ValueError("pairs of different classes need at least two classes")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(t), size=n)
    second = rng.integers(0, len(t), size=n)
    same = t[first] == t[second]
    while same.any():
        second[same] = rng.integers(0, len(t), size=int(same.sum()))
        same = t[first] == t[second]
    return np.stack([first, second], axis=1)
