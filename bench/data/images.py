"""Decoding images with errors that name the file, and the card's eval transform."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from PIL import Image, UnidentifiedImageError
from torchvision import transforms

from bench.cards import Preprocessing
from bench.errors import BenchError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def load_rgb(path: Path | str) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise BenchError(f"cannot decode image {path} ({exc})", "replace the file with a valid image, or remove it and its label") from None


def eval_transform(prep: Preprocessing) -> Callable[[Image.Image], torch.Tensor]:
    """Resize the short side, center-crop, and return uint8 CHW.

    Normalisation happens on the batch on the device (`Normalizer`), which moves 4x fewer bytes
    from the loader workers and gives bit-identical values to ToTensor + Normalize.
    """
    interpolation = transforms.InterpolationMode(prep.interpolation)
    return transforms.Compose([
        transforms.Resize(prep.resize, interpolation=interpolation),
        transforms.CenterCrop(prep.crop),
        transforms.PILToTensor(),
    ])


def squash_crop_flip(image: Image.Image, prep: Preprocessing, draw: int) -> torch.Tensor:
    """The paper's NIC code's image transform, at train and test alike: Resize([resize, resize])
    (the aspect ratio squashed), a random crop x crop, a horizontal flip with probability 1/2;
    uint8 CHW. `draw` seeds the crop and the flip, so a draw is the same in any worker."""
    import random

    from torchvision.transforms import functional as F

    rng = random.Random(draw)
    image = F.resize(image, [prep.resize, prep.resize], interpolation=transforms.InterpolationMode(prep.interpolation))
    top, left = rng.randint(0, prep.resize - prep.crop), rng.randint(0, prep.resize - prep.crop)
    image = F.crop(image, top, left, prep.crop, prep.crop)
    if rng.random() < 0.5:
        image = F.hflip(image)
    return F.pil_to_tensor(image)


class Normalizer:
    """uint8 batch -> float, /255, (x - mean) / std: the same operations as ToTensor + Normalize."""

    def __init__(self, prep: Preprocessing, device: torch.device | str):
        self.mean = torch.tensor(prep.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(prep.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.float().div_(255).sub_(self.mean).div_(self.std)


class ImageList(torch.utils.data.Dataset):
    """(image, target, index) for a list of files; `index` lets evaluators restore dataset order."""

    def __init__(self, paths: Sequence[Path], targets: Sequence[int], transform: Callable[[Image.Image], Any]):
        self.paths = list(paths)
        self.targets = list(targets)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int, int]:
        return self.transform(load_rgb(self.paths[index])), self.targets[index], index
