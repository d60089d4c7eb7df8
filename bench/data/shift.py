"""The natural distribution-shift test sets, in their released layouts.

- imagenet_v2 (ImageNetV2 matched-frequency, imagenetv2-matched-frequency.tar.gz):
  <root>/<class index 0..999>/*.jpeg, folders named by the class's index in the sorted wnid list;
- imagenet_sketch (ImageNet-Sketch): <root>/<wnid>/*.JPEG, all 1000 classes;
- imagenet_r (ImageNet-R, imagenet-r.tar) and imagenet_a (ImageNet-A, imagenet-a.tar):
  <root>/<wnid>/*.jpg over 200-class subsets, whose wnid lists ship with bench
  (bench/data/wnids/); they are scored with the logits restricted to those 200 classes.

Targets index the 1000-class sorted wnid list (bench/data/wnids/imagenet_1k.txt), except for the
200-class sets, whose targets index their subset (and `subset` maps it into the 1000 classes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bench.errors import BenchError

SETS = ("imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a")
WNIDS = Path(__file__).resolve().parent / "wnids"


@lru_cache(maxsize=None)
def wnid_list(name: str) -> tuple[str, ...]:
    """imagenet_1k (the sorted 1000 ILSVRC2012 wnids), imagenet_r or imagenet_a (their 200)."""
    return tuple((WNIDS / f"{name}.txt").read_text().split())


@dataclass
class ShiftSet:
    name: str
    images: list[Path]
    targets: list[int]
    subset: list[int] | None  # 1000-class indices the logits are restricted to (imagenet_r / imagenet_a)
    classes: int


def _class_dirs(root: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(root) if e.is_dir())


def read_shift_set(name: str, root: Path) -> ShiftSet:
    """List one set's images and targets, checking that its class folders are exactly the expected ones."""
    from bench.data.imagenet import class_folder_images

    found = _class_dirs(root)
    full = wnid_list("imagenet_1k")
    index = {w: i for i, w in enumerate(full)}
    subset = None
    if name == "imagenet_v2":
        expected = [str(i) for i in range(len(full))]
        folder_target = {f: int(f) for f in expected}
    elif name == "imagenet_sketch":
        expected = list(full)
        folder_target = index
    elif name in ("imagenet_r", "imagenet_a"):
        expected = list(wnid_list(name))
        folder_target = {w: k for k, w in enumerate(expected)}
        subset = [index[w] for w in expected]
    else:
        raise BenchError(f"unknown distribution-shift set '{name}'", f"sets: {', '.join(SETS)}")
    missing = sorted(set(expected) - set(found), key=expected.index)
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        what = f"lacks {len(missing)} class folder(s) (e.g. {', '.join(missing[:3])})" if missing else f"has {len(extra)} folder(s) that are not its classes (e.g. {', '.join(extra[:3])})"
        raise BenchError(f"{name} at {root} {what}; it should hold {len(expected)} class folders",
                         "restore the released set (class indices would shift), or point --data-path at it")
    folders = sorted(expected, key=lambda f: folder_target[f])
    images, targets = class_folder_images(root, folders, [folder_target[f] for f in folders], name)
    return ShiftSet(name, images, targets, subset, len(expected))
