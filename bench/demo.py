"""`bench demo`: the embedded mini benchmark, end to end, offline.

Builds (or reuses) an ILSVRC2012-layout dataset of handwritten-digit scenes, trains the mini
backbone (or reuses it), runs every task with a mini variant through the normal runner and
store, and writes the comparison table to reports/demo/. Everything is cached by a key of
generator version, seed and sizes, so a second run only re-reads results.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from bench.paths import cache_dir

SEED = 0
TRAIN_SCENES = 3000
VAL_SCENES = 500
EPOCHS = 6
TRAIN_BATCH = 128
WNIDS = [f"n{d:08d}" for d in range(10)]  # wnid-shaped names for the ten digit classes
TASKS = "imagenet_cls"  # later task issues add their mini variants here


def data_key() -> str:
    from bench.mini.digits import GENERATOR_VERSION

    return f"digits-v{GENERATOR_VERSION}-seed{SEED}-{TRAIN_SCENES}x{VAL_SCENES}"


def ensure_data(workdir: Path) -> Path:
    """The data root (holding imagenet/), generated unless a complete copy exists.

    A copy is complete only once its marker is written, after everything else; a half-written
    folder from a crash is rebuilt, never used.
    """
    from bench.mini.digits import make_scenes
    from bench.mini.layouts import write_imagenet_val

    root = workdir / "data" / data_key()
    if (root / ".complete").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    tmp = root.with_name(root.name + f".part-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    images, labels, boxes = make_scenes("val", VAL_SCENES, SEED)
    write_imagenet_val(tmp / "imagenet", images, labels, WNIDS, "class_folders")
    for w in WNIDS:  # a train tree names the full class list, which the val reader checks against
        (tmp / "imagenet" / "train" / w).mkdir(parents=True, exist_ok=True)
    (tmp / ".complete").write_text(data_key() + "\n")
    os.replace(tmp, root)
    return root


def ensure_weights(progress: bool) -> dict:
    """Train mini_baseline into the cache where its card looks, unless the same recipe is there."""
    from bench.mini.digits import make_scenes
    from bench.mini.train import save_official, train_baseline

    path = cache_dir() / "weights" / "mini_baseline" / "model_best.pth.tar"
    key = {"data": data_key(), "recipe": "baseline", "seed": SEED, "epochs": EPOCHS, "batch": TRAIN_BATCH}
    meta = path.with_name(path.name + ".json")
    if path.is_file() and meta.is_file() and json.loads(meta.read_text()).get("key") == key:
        return json.loads(meta.read_text())
    images, labels, _ = make_scenes("train", TRAIN_SCENES, SEED)
    model, stats = train_baseline(images, labels, EPOCHS, SEED, batch_size=TRAIN_BATCH, progress=progress)
    save_official(model, path, EPOCHS)
    info = {"key": key, **stats}
    meta.write_text(json.dumps(info))
    return info


def run_demo(workdir: Path | None, output: Path, progress: bool = True) -> int:
    from bench.runner import RunOptions, run_grid
    from bench.store import ResultsStore
    from bench.tables import report_table, run_table
    from bench.task import DataLocator

    workdir = workdir or cache_dir() / "mini"
    timings = {}
    t = time.perf_counter()
    data_root = ensure_data(workdir)
    timings["data"] = time.perf_counter() - t
    t = time.perf_counter()
    train = ensure_weights(progress)
    timings["training"] = time.perf_counter() - t
    t = time.perf_counter()
    opts = RunOptions(data=DataLocator(str(data_root)), results=workdir / "results", workers=0, batch_size=100, progress=progress)
    outcomes = run_grid("mini_*", TASKS, opts)
    timings["tasks"] = time.perf_counter() - t
    print(run_table(outcomes))
    store = ResultsStore.open(opts.results, write=False)
    records = [r for r in store.records(include_limited=False) if r["backbone"]["name"].startswith("mini_")]
    store.close()
    table = report_table(records)
    output.mkdir(parents=True, exist_ok=True)
    (output / "README.md").write_text(
        "# bench demo: the mini benchmark\n\n"
        f"Handwritten-digit scenes (scikit-learn's digits on cluttered 64x64 canvases; {TRAIN_SCENES} train, "
        f"{VAL_SCENES} val, seed {SEED}) in the ILSVRC2012 layout, and a 0.3M-parameter ResNet with torchvision's "
        "module names trained on a CPU. This shows what bench does, offline, in minutes; it is not a "
        "reproduction of the paper's numbers.\n\n"
        f"Mini backbone: {EPOCHS} epochs, final-epoch train accuracy {train['train_acc']:.1f}%.\n\n" + table + "\n"
    )
    print(f"\nwrote {output / 'README.md'}")
    print("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()), file=sys.stderr)
    return 1 if any(o.error for o in outcomes) else 0
