"""ImageNet-C in its released layout, read as one dataset.

- corruption folders: <root>/<corruption>/<severity 1..5>/<wnid>/*.JPEG (Zenodo's tars unpacked
  into one folder; what evaluation code expects);
- category folders: <root>/<noise|blur|weather|digital|extra>/<corruption>/<severity>/<wnid>/*.JPEG
  (the five tars each unpacked into a folder of their own).

Every (corruption, severity) cell must hold the same class folders, since a class missing in one
cell would shift its labels. Images are used as they are: ImageNet-C images are already the
crop size (224x224), so only the card's normalisation applies; an image of another size is an
error, not something to resize. Generated caches (bench.data.corruption_cache) are written in
the same layout with a manifest per cell, which the reader returns so that the two sources are
never confused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from bench.errors import BenchError
from bench.metrics.corruption import CORRUPTIONS, EXTRA_CORRUPTIONS

CATEGORIES = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
    "extra": EXTRA_CORRUPTIONS,
}
ALL_CORRUPTIONS = CORRUPTIONS + EXTRA_CORRUPTIONS
MANIFEST = ".generated.json"  # written by bench's corruption cache into each finished cell folder
EXPECTED = "<root>/<corruption>/<1..5>/<wnid>/*.JPEG, or <root>/<noise|blur|weather|digital|extra>/<corruption>/<1..5>/<wnid>/*.JPEG"


@dataclass
class ImageNetC:
    images: list[Path]  # cell by cell (the config's corruption order, severities ascending), then class, then file name
    targets: list[int]
    cell_of: list[int]  # index into cells, per image
    cells: list[tuple[str, int]]  # (corruption, severity)
    classes: list[str]
    layout: str  # corruption_folders | category_folders
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # "corruption/severity" -> bench's generator manifest, when generated


def locate(root: Path) -> tuple[dict[str, Path], str]:
    """Corruption name -> folder, and the layout they were found in."""
    found = {c: root / c for c in ALL_CORRUPTIONS if (root / c).is_dir()}
    layout = "corruption_folders"
    for category, members in CATEGORIES.items():
        for c in members:
            if c not in found and (root / category / c).is_dir():
                found[c] = root / category / c
                layout = "category_folders"
    return found, layout


def _class_dirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir())


def read_imagenet_c(root: Path, corruptions: Sequence[str], severities: Sequence[int], num_classes: int | None) -> ImageNetC:
    """List every image of the requested cells, checking that each cell is complete."""
    from bench.data.imagenet import class_folder_images

    found, layout = locate(root)
    if not found:
        raise BenchError(f"no ImageNet-C corruption folders under {root}", f"expected {EXPECTED}")
    missing = [c for c in corruptions if c not in found]
    if missing:
        raise BenchError(
            f"ImageNet-C at {root} lacks corruption folder(s) {', '.join(missing)} (found {len(found)}: {', '.join(c for c in ALL_CORRUPTIONS if c in found)})",
            "restore them, or score the partial set with --set corruptions=[...] naming only what is there (no mCE then)",
        )
    images: list[Path] = []
    targets: list[int] = []
    cell_of: list[int] = []
    cells: list[tuple[str, int]] = []
    manifests: dict[str, dict[str, Any]] = {}
    classes: list[str] | None = None
    first = ""
    for c in corruptions:
        for s in severities:
            cell = found[c] / str(s)
            if not cell.is_dir():
                raise BenchError(f"ImageNet-C severity folder {cell} is missing", "restore it, or score other severities with --set severities=[...] (no CE then)")
            here = _class_dirs(cell)
            if classes is None:
                classes, first = here, f"{c}/{s}"
                if not classes:
                    raise BenchError(f"ImageNet-C folder {cell} holds no class folders", f"expected {EXPECTED}")
                if num_classes is not None and len(classes) != num_classes:
                    raise BenchError(f"ImageNet-C folder {cell} has {len(classes)} class folders but the backbone predicts {num_classes}",
                                     "restore the missing class folders (indices would shift), or use a backbone for this label set")
            elif here != classes:
                lost, extra = sorted(set(classes) - set(here)), sorted(set(here) - set(classes))
                what = f"lacks class folder(s) {', '.join(lost[:3])}" if lost else f"has class folder(s) {', '.join(extra[:3])} that {first} has not"
                raise BenchError(f"ImageNet-C {c}/{s} at {cell} {what}", "class indices would shift; restore the complete folder")
            index = len(cells)
            cells.append((c, s))
            if (cell / MANIFEST).is_file():
                manifests[f"{c}/{s}"] = json.loads((cell / MANIFEST).read_text())
            found_images, found_targets = class_folder_images(cell, classes, list(range(len(classes))), "ImageNet-C")
            images += found_images
            targets += found_targets
            cell_of += [index] * len(found_images)
    assert classes is not None
    return ImageNetC(images, targets, cell_of, cells, classes, layout, manifests)


class SizedImages(torch.utils.data.Dataset):
    """(uint8 CHW image, target, index) for images used as they are, each checked to be size x size."""

    def __init__(self, paths: Sequence[Path], targets: Sequence[int], size: int, what: str = "ImageNet-C"):
        self.paths, self.targets, self.size, self.what = list(paths), list(targets), size, what

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        import numpy as np

        from bench.data.images import load_rgb

        img = load_rgb(self.paths[index])
        if img.size != (self.size, self.size):
            raise BenchError(
                f"{self.what} image {self.paths[index]} is {img.size[0]}x{img.size[1]}, not {self.size}x{self.size}",
                f"{self.what} images are scored as they are (no resize or crop): use the released files, whose size is the card's crop",
            )
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1), self.targets[index], index
