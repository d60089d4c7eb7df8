"""CIFAR-100 in its official python layout: cifar-100-python/{train,test,meta}, pickles of
{'data': (N, 3072) uint8 rows (1024 red, 1024 green, 1024 blue, row-major 32x32), 'fine_labels',
'coarse_labels', 'filenames', ...} and meta {'fine_label_names', ...}.

The pickles are read with an unpickler that only builds numpy arrays: a pickle is code, and a
dataset file should never run any. Every file is checked (keys, shapes, label range, counts),
since a short or relabelled test set gives a plausible, wrong error rate.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bench.errors import BenchError

SPLIT_SIZES = {"train": 50000, "test": 10000}  # the released files'
NUM_CLASSES = 100
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
            ("_codecs", "encode"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a CIFAR file never holds")


def read_pickle(path: Path) -> dict[str, Any]:
    """A CIFAR pickle as a dict with str keys (the released files were written by Python 2)."""
    if not path.is_file():
        raise BenchError(f"CIFAR file {path} does not exist", "extract cifar-100-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) under the data root")
    try:
        with open(path, "rb") as fh:
            obj = _ArraysOnly(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, UnicodeDecodeError, OSError) as exc:
        raise BenchError(f"cannot read CIFAR file {path}: truncated or not a CIFAR pickle ({type(exc).__name__}: {str(exc)[:120]})",
                         "download and extract cifar-100-python.tar.gz again") from None
    if not isinstance(obj, dict):
        raise BenchError(f"CIFAR file {path} holds a {type(obj).__name__}, not a dict", "download and extract cifar-100-python.tar.gz again")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


@dataclass
class CifarSplit:
    images: np.ndarray  # (N, 32, 32, 3) uint8, RGB
    targets: np.ndarray  # (N,) int64 fine labels, 0-99
    classes: list[str]
    names: list[str]  # the files' 'filenames'
    files: list[Path]  # what was read, for the fingerprint


def _require(obj: dict[str, Any], keys: tuple[str, ...], path: Path) -> None:
    lacking = [k for k in keys if k not in obj]
    if lacking:
        raise BenchError(f"CIFAR file {path} lacks {', '.join(lacking)} (it has {', '.join(sorted(obj)) or 'nothing'})",
                         "is this CIFAR-100's python version? CIFAR-10's files have 'labels' instead of 'fine_labels'")


def read_cifar100(root: Path, split: str = "test") -> CifarSplit:
    """One split of cifar-100-python, checked: 3072 uint8 values per image, 100 fine labels."""
    meta_path, path = root / "meta", root / split
    meta = read_pickle(meta_path)
    _require(meta, ("fine_label_names",), meta_path)
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta["fine_label_names"]]
    if len(classes) != NUM_CLASSES:
        raise BenchError(f"CIFAR-100 meta {meta_path} names {len(classes)} fine classes, not 100", "download and extract cifar-100-python.tar.gz again")
    obj = read_pickle(path)
    _require(obj, ("data", "fine_labels"), path)
    data = obj["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise BenchError(f"CIFAR file {path}: 'data' must be an (N, 3072) uint8 array, got {type(data).__name__} {shape} {getattr(data, 'dtype', '')}",
                         "download and extract cifar-100-python.tar.gz again")
    labels = np.asarray(obj["fine_labels"], dtype=np.int64)
    if labels.shape != (len(data),):
        raise BenchError(f"CIFAR file {path} has {len(data)} images but {labels.size} fine labels", "download and extract cifar-100-python.tar.gz again")
    bad = (labels < 0) | (labels >= NUM_CLASSES)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BenchError(f"CIFAR file {path}: label {int(labels[i])} of image {i} is outside 0-99", "download and extract cifar-100-python.tar.gz again")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in obj.get("filenames", [])] or [f"{split}_{i:05d}" for i in range(len(data))]
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return CifarSplit(np.ascontiguousarray(images), labels, classes, names, [meta_path, path])


class ArrayImages(torch.utils.data.Dataset):
    """(image, target, index) from an (N, H, W, 3) uint8 array. The card's resize and crop apply
    only when the images are not already the crop's size (a CIFAR card's are), so a CIFAR card gets
    the released pixels, as ToTensor + Normalize would."""

    def __init__(self, images: np.ndarray, targets: Any, transform: Callable[[Any], torch.Tensor] | None = None):
        self.images, self.targets, self.transform = images, np.asarray(targets, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        array = self.images[index]
        if self.transform is None:
            image = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
        else:
            from PIL import Image

            image = self.transform(Image.fromarray(array))
        return image, int(self.targets[index]), index


def array_transform(prep: Any, size: tuple[int, int]) -> Callable[[Any], torch.Tensor] | None:
    """None (the pixels as they are) when the card's resize and crop leave `size` unchanged."""
    from bench.data.images import eval_transform

    if size[0] == size[1] == prep.crop == prep.resize:
        return None
    return eval_transform(prep)
