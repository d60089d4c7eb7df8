"""Where things live: the weights cache, the data root and per-dataset folders, the results dir."""

from __future__ import annotations

import os
from pathlib import Path

from bench.errors import BenchError

# Conventional folder names under the data root, one per dataset bench reads.
DATASET_DIRS = {
    "imagenet": "imagenet",
    "cub": "CUB_200_2011",
    "voc": "VOCdevkit",
    "coco": "coco",
    "imagenet_c": "ImageNet-C",
    "imagenet_v2": "imagenetv2-matched-frequency-format-val",
    "imagenet_sketch": "sketch",
    "imagenet_r": "imagenet-r",
    "imagenet_a": "imagenet-a",
    "ood": "ood",
    "cifar100": "cifar-100-python",
}


def cache_dir() -> Path:
    """Downloaded weights and cached artifacts: BENCH_CACHE, else ~/.cache/bench."""
    return Path(os.environ.get("BENCH_CACHE") or Path.home() / ".cache" / "bench").expanduser()


def demo_folder(what: str) -> Path | None:
    """The default demo's 'results' or 'data' folder (data: the one its last run used), when a
    `bench demo` has written it; errors that find no results store or data root point there."""
    mini = cache_dir() / "mini"
    path = mini / "results" if what == "results" else mini / "data" / "current"
    marker = path / "bench.sqlite" if what == "results" else path / ".complete"
    return path if marker.is_file() else None


def shown(path: Path) -> str:
    """A path as a user would type it: ~ for the home folder."""
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home):] if text == home or text.startswith(home + os.sep) else text


def results_dir(arg: str | None) -> Path:
    """--results, else BENCH_RESULTS, else ./results."""
    return Path(arg or os.environ.get("BENCH_RESULTS") or "results").expanduser()


def parse_overrides(items: list[str] | None) -> dict[str, Path]:
    """--data-path NAME=DIR items -> {NAME: DIR}."""
    out: dict[str, Path] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise BenchError(f"--data-path expects NAME=DIR, got '{item}'", f"names: {', '.join(DATASET_DIRS)}")
        if name not in DATASET_DIRS:
            raise BenchError(f"--data-path names unknown dataset '{name}'", f"names: {', '.join(DATASET_DIRS)}")
        out[name] = Path(value).expanduser()
    return out


def dataset_dir(name: str, data_root: str | None, overrides: dict[str, Path]) -> Path:
    """The folder of one dataset: its override, else <data root>/<conventional name>.

    The data root is --data-root, else BENCH_DATA. Errors say which of these to set.
    """
    if name in overrides:
        path = overrides[name]
        if not path.is_dir():
            raise BenchError(f"{name} folder {path} (from --data-path) does not exist", "check the path")
        return path
    root = data_root or os.environ.get("BENCH_DATA")
    if not root:
        demo = demo_folder("data")
        raise BenchError(
            f"no data root for dataset '{name}'",
            f"pass --data-root DIR (or set BENCH_DATA) so that DIR/{DATASET_DIRS[name]} exists, or --data-path {name}=DIR"
            + (f"; the demo's data is --data-root {shown(demo)} (with --mini)" if demo else ""),
        )
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise BenchError(f"data root {root_path} does not exist", "pass --data-root (or BENCH_DATA) pointing at an existing folder")
    path = root_path / DATASET_DIRS[name]
    if not path.is_dir():
        raise BenchError(
            f"dataset '{name}' not found: {path} does not exist",
            f"place it there, or pass --data-path {name}=DIR",
        )
    return path
