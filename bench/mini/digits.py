"""Scenes of real handwriting: scikit-learn's bundled digits placed on cluttered canvases.

Each scene has one digit (its class) at a random size and place on a smooth colour texture
with distractor strokes, so that classification needs the object and localization is not
trivial. Deterministic from the seed; train and val scenes use disjoint digit samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

GENERATOR_VERSION = "2"  # bump whenever the scenes change: it keys every cache built from them


@dataclass(frozen=True)
class SceneSpec:
    canvas: int = 64
    min_size: int = 22
    max_size: int = 40
    strokes: int = 3


@dataclass
class Scenes:
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) digit class
    boxes: np.ndarray  # (N, 4) x0, y0, x1, y1, inclusive pixel coordinates of the ink


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's digits (1797 8x8 images, values 0-16), read from its data file without importing
    sklearn (which takes seconds); falls back to sklearn's loader if the file moved."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is not None and path.is_file():
        data = np.loadtxt(path, delimiter=",")
        return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target


def digit_pool(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images in [0, 1], labels): the first 1200 of the 1797 digits for train, the rest for val."""
    images, targets = _load_digits()
    part = slice(0, 1200) if split == "train" else slice(1200, None)
    return images[part].astype(np.float32) / 16.0, targets[part]


def _resize(a: np.ndarray, size: int, resample: int = Image.BILINEAR) -> np.ndarray:
    return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((size, size), resample))


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """(3, size, size) smooth colour noise: a 4x4 grid of random dark colours, upsampled."""
    coarse = rng.uniform(0.0, 0.45, size=(3, 4, 4)).astype(np.float32)
    return np.clip(np.stack([_resize(c, size, Image.BICUBIC) for c in coarse]), 0, 1)


def _strokes(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """A mask of thin random line segments (distractors)."""
    mask = np.zeros((size, size), np.float32)
    t = np.linspace(0, 1, 2 * size)
    for _ in range(count):
        x0, y0, x1, y1 = rng.uniform(0, size - 1, 4)
        xs = np.round(x0 + t * (x1 - x0)).astype(int)
        ys = np.round(y0 + t * (y1 - y0)).astype(int)
        mask[ys, xs] = rng.uniform(0.3, 0.6)
    return mask


def make_scenes(split: str, count: int, seed: int, spec: SceneSpec = SceneSpec()) -> Scenes:
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    pool, pool_labels = digit_pool(split)
    s = spec.canvas
    images = np.empty((count, s, s, 3), np.uint8)
    labels = np.empty(count, np.int64)
    boxes = np.empty((count, 4), np.int64)
    for i in range(count):
        j = int(rng.integers(len(pool)))
        size = int(rng.integers(spec.min_size, spec.max_size + 1))
        digit = np.clip(_resize(pool[j], size), 0, 1)
        x0, y0 = (int(v) for v in rng.integers(0, s - size + 1, 2))
        ink = rng.uniform(0.6, 1.0, size=3).astype(np.float32)[:, None, None]
        stroke = _strokes(rng, s, spec.strokes)
        canvas = _texture(rng, s) * (1 - stroke) + stroke * ink * 0.8
        alpha = np.zeros((s, s), np.float32)
        alpha[y0:y0 + size, x0:x0 + size] = digit
        canvas = canvas * (1 - alpha) + alpha * ink
        images[i] = (np.clip(canvas.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
        labels[i] = pool_labels[j]
        ys, xs = np.nonzero(alpha > 0.25)
        boxes[i] = (xs.min(), ys.min(), xs.max(), ys.max())
    return Scenes(images, labels, boxes)


@dataclass
class DetectionScenes:
    images: np.ndarray  # (N, H, W, 3) uint8
    objects: list[list[tuple[int, int, int, int, int, bool]]]  # per scene: (class, x0, y0, x1, y1 inclusive, difficult)


def make_detection_scenes(split: str, count: int, seed: int, canvas: int = 96, small: int = 18) -> DetectionScenes:
    """Scenes of 0-3 digits each (about one in ten empty), not overlapping, on the same cluttered
    canvases; digits drawn smaller than `small` pixels are flagged difficult, as VOC flags objects
    that are hard to recognise."""
    rng = np.random.default_rng([seed, 2 if split == "train" else 3])
    pool, pool_labels = digit_pool(split)
    images = np.empty((count, canvas, canvas, 3), np.uint8)
    objects: list[list[tuple[int, int, int, int, int, bool]]] = []
    for i in range(count):
        stroke = _strokes(rng, canvas, 4)
        ink0 = rng.uniform(0.6, 1.0, size=3).astype(np.float32)[:, None, None]
        image = _texture(rng, canvas) * (1 - stroke) + stroke * ink0 * 0.8
        placed: list[tuple[int, int, int, int, int, bool]] = []
        n = 0 if rng.random() < 0.1 else int(rng.integers(1, 4))
        for _ in range(20 * n):  # rejection sampling for free space
            if len(placed) == n:
                break
            size = int(rng.integers(14, 41))
            x0, y0 = (int(v) for v in rng.integers(0, canvas - size + 1, 2))
            if any(x0 <= b[3] + 2 and b[1] <= x0 + size + 1 and y0 <= b[4] + 2 and b[2] <= y0 + size + 1 for b in placed):
                continue
            j = int(rng.integers(len(pool)))
            alpha = np.zeros((canvas, canvas), np.float32)
            alpha[y0:y0 + size, x0:x0 + size] = np.clip(_resize(pool[j], size), 0, 1)
            ink = rng.uniform(0.6, 1.0, size=3).astype(np.float32)[:, None, None]
            image = image * (1 - alpha) + alpha * ink
            ys, xs = np.nonzero(alpha > 0.25)
            placed.append((int(pool_labels[j]), int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()), size < small))
        images[i] = (np.clip(image.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
        objects.append(placed)
    return DetectionScenes(images, objects)


def make_clutter(count: int, seed: int, canvas: int = 64, strokes: int = 3) -> np.ndarray:
    """(count, canvas, canvas, 3) uint8: the scenes' textures and distractor strokes with no digit,
    the mini benchmark's near-OOD set."""
    rng = np.random.default_rng([seed, 2])
    out = np.empty((count, canvas, canvas, 3), np.uint8)
    for i in range(count):
        ink = rng.uniform(0.6, 1.0, size=3).astype(np.float32)[:, None, None]
        stroke = _strokes(rng, canvas, strokes)
        image = _texture(rng, canvas) * (1 - stroke) + stroke * ink * 0.8
        out[i] = (np.clip(image.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
    return out


def photo_crops(count: int, seed: int, size: int = 64) -> np.ndarray:
    """(count, size, size, 3) uint8: square crops (64-256 pixels, then resized) of the real
    photographs that ship with scikit-learn and scikit-image: the mini benchmark's far-OOD set."""
    import importlib.util
    from pathlib import Path

    photos = []
    spec = importlib.util.find_spec("sklearn")
    if spec:
        for name in ("china.jpg", "flower.jpg"):
            path = Path(spec.submodule_search_locations[0]) / "datasets" / "images" / name
            if path.is_file():
                photos.append(np.asarray(Image.open(path).convert("RGB")))
    try:
        import skimage.data as sk

        for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "camera", "coins", "moon"):
            try:
                a = getattr(sk, name)()
            except Exception:  # an image that needs a download is left out
                continue
            photos.append(np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a[..., :3])
    except ImportError:
        pass
    if len(photos) < 2:
        raise RuntimeError("the mini OOD photographs need scikit-learn's or scikit-image's bundled images")
    rng = np.random.default_rng([seed, 3])
    out = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(64, min(256, h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        out[i] = np.asarray(Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR))
    return out
