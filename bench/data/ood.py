"""Out-of-distribution sets: image folders under the data root's `ood/` folder, and the noise
sets generated as ODIN defines them.

CIFAR's classic sets are the folders ODIN released (facebookresearch/odin README: Imagenet,
Imagenet_resize, LSUN, LSUN_resize, iSUN tarballs, 32x32 images, read by ImageFolder). ImageNet's
are whatever folders the user puts there (e.g. the iNaturalist / SUN / Places / Textures subsets).
Images are found recursively, in sorted order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.errors import BenchError
from bench.registry import unknown_name

# bench name -> (folder under ood/, images in the released set)
ODIN_FOLDERS = {
    "tinyimagenet_crop": ("Imagenet", 10000),
    "tinyimagenet_resize": ("Imagenet_resize", 10000),
    "lsun_crop": ("LSUN", 10000),
    "lsun_resize": ("LSUN_resize", 10000),
    "isun": ("iSUN", 8925),
}
NOISE = ("uniform", "gaussian")
CIFAR_OOD_SETS = tuple(ODIN_FOLDERS) + NOISE  # the paper's Table 12 / A2 order
NOISE_DEFINITION = {
    "uniform": "i.i.d. U[0, 1] per pixel and channel, in [0, 1] pixel space, then the card's normalisation (ODIN calData.py testUni)",
    "gaussian": "i.i.d. N(0.5, 1) per pixel and channel clipped to [0, 1], then the card's normalisation (ODIN calData.py testGaussian)",
}
ODIN_URL = "https://github.com/facebookresearch/odin#downloading--out-of-distribtion-datasets"


@dataclass
class OodFolder:
    name: str
    root: Path
    images: list[Path]


def _images_below(folder: Path) -> list[Path]:
    from bench.data.images import is_image

    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image(p.name))


def read_ood_folder(ood_root: Path, name: str, folder: str | None = None, hint: str = "") -> OodFolder:
    """One set: every image below <ood root>/<folder or name>; missing or empty is an error."""
    path = ood_root / (folder or name)
    if not path.is_dir():
        available = sorted(p.name for p in ood_root.iterdir() if p.is_dir()) if ood_root.is_dir() else []
        if folder is None and available:
            raise unknown_name("OOD set", name, available, f"each OOD set is a folder under {ood_root}; name one of them in --set ood_sets=[...]")
        raise BenchError(f"OOD set '{name}' not found: {path} does not exist", hint or f"put its images under {path}")
    images = _images_below(path)
    if not images:
        raise BenchError(f"OOD set '{name}' has no images: {path} is empty", hint or f"put its images (jpg, png, ...) under {path}")
    return OodFolder(name, path, images)


class NoiseImages(torch.utils.data.Dataset):
    """ODIN's noise images, `count` of them, seeded per (seed, kind, index) so that sharding and
    --limit give every image the same pixels. Items are float CHW tensors in [0, 255] (not
    quantised: ODIN's are continuous), so the shared Normalizer's /255 gives [0, 1] pixels."""

    def __init__(self, kind: str, count: int, size: int, seed: int):
        if kind not in NOISE:
            raise ValueError(kind)
        self.kind, self.count, self.size, self.seed = kind, count, size, seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        seed = int(np.random.SeedSequence([self.seed, NOISE.index(self.kind), index]).generate_state(1)[0])
        g = torch.Generator().manual_seed(seed)
        shape = (3, self.size, self.size)
        if self.kind == "uniform":
            pixels = torch.rand(shape, generator=g)
        else:
            pixels = (torch.randn(shape, generator=g) + 0.5).clamp_(0, 1)
        return pixels.mul_(255), -1, index
