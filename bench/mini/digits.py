"""Scenes of real handwriting: scikit-learn's bundled digits placed on cluttered canvases.

Each scene has one digit (its class) at a random size and place on a textured background with
distractor strokes, so that classification needs the object and localization is not trivial.
Deterministic from the seed. Train and val scenes use disjoint digit samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

GENERATOR_VERSION = "1"  # bump whenever the scenes change: it keys the caches


@dataclass(frozen=True)
class SceneSpec:
    canvas: int = 64
    min_size: int = 22
    max_size: int = 40
    strokes: int = 3


def digit_pool(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images in [0, 1], labels): the first 1200 of sklearn's 1797 digits for train, the rest for val."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    cut = 1200
    sl = slice(0, cut) if split == "train" else slice(cut, None)
    return images[sl], digits.target[sl]


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour noise: a 4x4 grid of random colours, upsampled."""
    coarse = torch.from_numpy(rng.uniform(0.0, 0.45, size=(1, 3, 4, 4)).astype(np.float32))
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0].clamp(0, 1).numpy()


def _strokes(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """A mask of thin random line segments (distractors)."""
    mask = np.zeros((size, size), np.float32)
    for _ in range(count):
        x0, y0, x1, y1 = rng.uniform(0, size - 1, 4)
        t = np.linspace(0, 1, 2 * size)
        xs = np.clip(np.round(x0 + t * (x1 - x0)).astype(int), 0, size - 1)
        ys = np.clip(np.round(y0 + t * (y1 - y0)).astype(int), 0, size - 1)
        mask[ys, xs] = rng.uniform(0.3, 0.6)
    return mask


def make_scenes(split: str, count: int, seed: int, spec: SceneSpec = SceneSpec()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images uint8 (N, H, W, 3), labels (N,), boxes (N, 4) as x0, y0, x1, y1 inclusive)."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    pool, pool_labels = digit_pool(split)
    s = spec.canvas
    images = np.empty((count, s, s, 3), np.uint8)
    labels = np.empty(count, np.int64)
    boxes = np.empty((count, 4), np.int64)
    for i in range(count):
        j = int(rng.integers(len(pool)))
        size = int(rng.integers(spec.min_size, spec.max_size + 1))
        digit = F.interpolate(torch.from_numpy(pool[j])[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0].clamp(0, 1).numpy()
        x0, y0 = (int(v) for v in rng.integers(0, s - size + 1, 2))
        canvas = _texture(rng, s)
        stroke = _strokes(rng, s, spec.strokes)
        ink = rng.uniform(0.6, 1.0, size=3).astype(np.float32)[:, None, None]
        canvas = canvas * (1 - stroke) + stroke * ink * 0.8
        alpha = np.zeros((s, s), np.float32)
        alpha[y0:y0 + size, x0:x0 + size] = digit
        canvas = canvas * (1 - alpha) + alpha * ink
        images[i] = (np.clip(canvas.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
        labels[i] = pool_labels[j]
        ys, xs = np.nonzero(alpha > 0.25)
        boxes[i] = (xs.min(), ys.min(), xs.max(), ys.max())
    return images, labels, boxes
