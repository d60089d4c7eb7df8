"""Building the mini benchmark's datasets and backbone zoo, cached and crash-safe.

Data: one set of digit scenes per (generator version, seed, sizes), written by every dataset
writer in DATASET_WRITERS into its real on-disk layout under one data root. A later task adds its
dataset by adding a writer here. The folder is built under a temporary name and renamed into
place with a completion marker, so a crash never leaves half a dataset that looks whole.

Zoo: the mini ResNet trained with each recipe (two recipes at a time on separate cores, one
thread each, so the weights do not depend on the machine's core count), saved in the official
CutMix-PyTorch format where the cards mini_<recipe> look for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.errors import BenchError
from bench.mini.digits import GENERATOR_VERSION, Scenes, make_scenes
from bench.mini.recipes import RECIPES
from bench.paths import cache_dir

WNIDS = [f"n{d:08d}" for d in range(10)]  # wnid-shaped folder names for the ten digit classes


@dataclass(frozen=True)
class MiniSpec:
    seed: int = 0
    train: int = 2000
    val: int = 1000
    epochs: int = 8
    datasets: tuple[str, ...] | None = None  # which of DATASET_WRITERS to write (None: all; tests that need one data set build only it)

    def scenes_key(self) -> str:
        """What the scenes depend on (and so the backbones trained on them)."""
        return f"digits-v{GENERATOR_VERSION}-seed{self.seed}-{self.train}x{self.val}"

    def data_key(self) -> str:
        """The data folder also depends on which layouts are written."""
        from bench.mini.layouts import LAYOUT_VERSION

        return f"{self.scenes_key()}-{'+'.join(sorted(self.writers()))}-l{LAYOUT_VERSION}"

    def writers(self) -> dict[str, Callable[[Path, Scenes, Scenes, "MiniSpec"], None]]:
        unknown = sorted(set(self.datasets or ()) - set(DATASET_WRITERS))
        if unknown:
            raise ValueError(f"no mini writer for {', '.join(unknown)}")
        return {k: w for k, w in DATASET_WRITERS.items() if self.datasets is None or k in self.datasets}


def write_imagenet(root: Path, train: Scenes, val: Scenes, spec: "MiniSpec") -> None:
    """ILSVRC2012 layout: train/<wnid>/, val/<wnid>/ and the val box XMLs."""
    from bench.mini.layouts import write_imagenet_train, write_imagenet_val, write_imagenet_val_xml

    folder = root / "imagenet"
    write_imagenet_train(folder, train.images, train.labels, WNIDS)
    write_imagenet_val(folder, val.images, val.labels, WNIDS, "class_folders")
    h, w = val.images.shape[1:3]
    write_imagenet_val_xml(folder, [(w, h)] * len(val.labels), val.labels, WNIDS, [[tuple(b)] for b in val.boxes])


def write_cub(root: Path, train: Scenes, val: Scenes, spec: "MiniSpec") -> None:
    """CUB_200_2011 layout: the same scenes, train split flagged 1 and val scenes as the test split."""
    from bench.mini.layouts import write_cub as write

    images = np.concatenate([train.images, val.images])
    labels = np.concatenate([train.labels, val.labels])
    boxes = [tuple(b) for b in np.concatenate([train.boxes, val.boxes])]
    write(root / "CUB_200_2011", images, labels, boxes, [True] * len(train.labels) + [False] * len(val.labels), [f"Digit_{d}" for d in range(10)])


def voc_sizes(spec: "MiniSpec") -> dict[str, tuple[int, int]]:
    """(trainval, test) scenes per VOC year: 240 + 240 train and 160 test at the default scale."""
    trainval, test = max(4, spec.train * 12 // 100), max(4, spec.val * 16 // 100)
    return {"2007": (trainval, test), "2012": (trainval, 0)}


def write_voc(root: Path, train: Scenes, val: Scenes, spec: "MiniSpec") -> None:
    """VOCdevkit with VOC2007 (trainval, test) and VOC2012 (trainval) of multi-digit scenes at
    96x96: 0-3 digits each, some too small to recognise (difficult), some scenes empty. Digit d
    is VOC class d (aeroplane .. cow): the devkit's class names, so the real reader is used."""
    from bench.data.voc import CLASSES
    from bench.mini.digits import make_detection_scenes
    from bench.mini.layouts import write_voc as write

    for year, (trainval, test) in voc_sizes(spec).items():
        train_scenes = make_detection_scenes("train", trainval, spec.seed + int(year))
        test_scenes = make_detection_scenes("val", test, spec.seed + int(year)) if test else None
        ids = [f"{year}_{i:06d}" if year != "2007" else f"{i:06d}" for i in range(trainval + test)]
        images = list(train_scenes.images) + (list(test_scenes.images) if test_scenes else [])
        objects = train_scenes.objects + (test_scenes.objects if test_scenes else [])
        splits = {"trainval": ids[:trainval], "train": ids[:trainval:2], "val": ids[1:trainval:2]}
        if test:
            splits["test"] = ids[trainval:]
        write(root / "VOCdevkit", year, ids, images, objects, splits, CLASSES)


def write_coco(root: Path, train: Scenes, val: Scenes, spec: "MiniSpec") -> None:
    """MS-COCO 2014's captions layout: train scenes as train2014, val scenes as val2014, five
    reference captions each from what the scene holds (bench.mini.captions)."""
    import random

    from bench.mini.captions import scene_captions
    from bench.mini.layouts import write_coco_captions

    rng = random.Random(spec.seed)
    karpathy = []
    for split, scenes, first in (("train2014", train, 1), ("val2014", val, 100_001)):
        h, w = scenes.images.shape[1:3]
        captions = [scene_captions(int(label), tuple(box), w, h, rng) for label, box in zip(scenes.labels, scenes.boxes)]
        ids = list(range(first, first + len(scenes.labels)))
        write_coco_captions(root / "coco", split, ids, scenes.images, captions)
        for k, (image_id, caps) in enumerate(zip(ids, captions)):  # Karpathy's splits: val2014 dealt into test / val / restval
            part = "train" if split == "train2014" else ("test", "val", "restval")[k % 3]
            karpathy.append({"filepath": split, "filename": f"COCO_{split}_{image_id:012d}.jpg", "cocoid": image_id, "split": part, "imgid": len(karpathy),
                             "sentences": [{"raw": c, "tokens": c.lower().rstrip(".").split()} for c in caps]})
    (root / "coco" / "dataset_coco.json").write_text(json.dumps({"dataset": "coco", "images": karpathy}))


MINI_C_PER_CLASS = 5  # mini ImageNet-C: the first val scenes of each class, every corruption x severity (95 cells)


def write_imagenet_c(root: Path, train: Scenes, val: Scenes, spec: "MiniSpec") -> None:
    """ImageNet-C's released layout, <corruption>/<severity>/<wnid>/<name>.JPEG: the first
    MINI_C_PER_CLASS val scenes of each class through every corruption of imagecorruptions-imaug
    at severities 1-5, saved as JPEG quality 85 like the released files (bench.data.corruption_cache,
    the same code as `--set source=generated`; seeded, in two worker processes)."""
    from bench.data.corruption_cache import generate
    from bench.data.imagenet_c import ALL_CORRUPTIONS, MINI_MARKER
    from bench.mini.layouts import val_name

    chosen = [i for d in range(10) for i in np.flatnonzero(val.labels == d)[:MINI_C_PER_CLASS]]
    rel = [f"{WNIDS[int(val.labels[i])]}/{val_name(int(i) + 1)}.JPEG" for i in chosen]
    h, w = val.images.shape[1:3]
    generate(root / "ImageNet-C", [val.images[i] for i in chosen], rel, [(c, s) for c in ALL_CORRUPTIONS for s in range(1, 6)], spec.seed,
             {"resize": h, "crop": w, "interpolation": "bilinear"}, workers=2, manifests=False)
    (root / "ImageNet-C" / MINI_MARKER).write_text(json.dumps({"origin": "mini", "generator": "bench.mini.build.write_imagenet_c", "scenes": spec.scenes_key()}) + "\n")


MINI_OOD_COUNT = 150  # images per mini OOD set


def write_ood(root: Path, train: Scenes, val: Scenes, spec: "MiniSpec") -> None:
    """OOD sets for imagenet_ood on the mini val scenes, one image folder each under ood/: uniform
    and Gaussian noise (ODIN's definitions, quantised to PNG), crops of real photographs (far) and
    the scenes' clutter without a digit (near)."""
    from bench.mini.digits import make_clutter, photo_crops
    from bench.mini.layouts import write_image_folder

    h = val.images.shape[1]
    rng = np.random.default_rng([spec.seed, 4])
    shape = (MINI_OOD_COUNT, h, h, 3)
    noise = {"uniform": rng.uniform(0, 1, shape), "gaussian": np.clip(rng.normal(0.5, 1.0, shape), 0, 1)}
    for name, pixels in noise.items():
        write_image_folder(root / "ood" / name / "images", (pixels * 255).round().astype(np.uint8), ".png", f"{name}_")
    write_image_folder(root / "ood" / "photos" / "images", photo_crops(MINI_OOD_COUNT, spec.seed, h), ".jpg", "photo_")
    write_image_folder(root / "ood" / "near" / "images", make_clutter(MINI_OOD_COUNT, spec.seed, h), ".png", "clutter_")


# dataset name -> writer(data root, train scenes, val scenes, spec); later tasks add theirs
DATASET_WRITERS: dict[str, Callable[[Path, Scenes, Scenes, "MiniSpec"], None]] = {"imagenet": write_imagenet, "cub": write_cub, "voc": write_voc, "coco": write_coco,
                                                                                   "imagenet_c": write_imagenet_c, "ood": write_ood}


def require_writable(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise BenchError(f"{what} {folder} is not writable ({exc.strerror})", "set BENCH_CACHE (or --workdir) to a writable folder") from None


def ensure_data(workdir: Path, spec: MiniSpec) -> Path:
    """The mini data root, built unless a complete copy for this key exists. One process builds a
    key at a time (a lock file beside it): a second one waits, then uses the finished copy."""
    import fcntl

    root = workdir / "data" / spec.data_key()
    if (root / ".complete").is_file():
        return root
    require_writable(root.parent, "mini data folder")
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / ".complete").is_file():  # built by the process we waited for
            return root
        for stale in root.parent.glob(f"{root.name}.part-*"):  # left by crashed builds
            shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)  # half-written by a crash: rebuild, never use
        tmp = root.with_name(f"{root.name}.part-{os.getpid()}")
        train, val = make_scenes("train", spec.train, spec.seed), make_scenes("val", spec.val, spec.seed)
        for writer in spec.writers().values():
            writer(tmp, train, val, spec)
        (tmp / ".complete").write_text(spec.data_key() + "\n")
        os.replace(tmp, root)
    return root




def weights_file(recipe: str) -> Path:
    """Where the card mini_<recipe> finds its checkpoint."""
    return cache_dir() / "weights" / f"mini_{recipe}" / "model_best.pth.tar"


def _train_key(spec: MiniSpec, recipe: str) -> dict[str, Any]:
    from bench.mini.train import TrainConfig

    return {"scenes": spec.scenes_key(), "train": asdict(TrainConfig(recipe, epochs=spec.epochs, seed=spec.seed))}


def _is_current(recipe: str, key: dict[str, Any]) -> bool:
    meta = weights_file(recipe).with_suffix(".json")
    return weights_file(recipe).is_file() and meta.is_file() and json.loads(meta.read_text()).get("key") == key


def _train_one(data_root: str, recipe: str, key: dict[str, Any], state_dir: str, progress: bool) -> dict[str, Any]:
    """Worker: read the train tree through the real reader, train (or resume) one recipe, save."""
    import torch

    from bench.data.images import load_rgb
    from bench.data.imagenet import read_imagenet_train
    from bench.mini.train import TrainConfig, save_official, train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the weights must not depend on the machine's core count
    try:
        split = read_imagenet_train(Path(data_root) / "imagenet", len(WNIDS))
        images = np.stack([np.asarray(load_rgb(p)) for p in split.images])
        cfg = TrainConfig(**key["train"])
        model, stats = train(images, np.asarray(split.targets), cfg, Path(state_dir) / f"{recipe}.pt", progress)
    finally:  # in-process (parallel=1) the caller keeps its own thread count
        torch.set_num_threads(threads)
    save_official(model, weights_file(recipe), cfg.epochs)
    info = {"key": key, **stats}
    weights_file(recipe).with_suffix(".json").write_text(json.dumps(info))
    return info


def _worker(data_root: str, recipe: str, key: dict[str, Any], state_dir: str, progress: bool) -> None:
    """Process entry: Ctrl-C is the parent's to handle (it terminates us; we resume next time)."""
    import signal
    import threading

    from tqdm import tqdm

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tqdm.set_lock(threading.RLock())  # tqdm's default lock is a semaphore that leaks when we are terminated
    try:
        _train_one(data_root, recipe, key, state_dir, progress)
    except Exception as exc:  # reported by the parent as one line
        print(f"bench: error: training mini_{recipe} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(1)


def _train_in_processes(data_root: str, todo: list[str], keys: dict[str, Any], state_dir: str, progress: bool, workers: int) -> None:
    """Train recipes in parallel processes, at most `workers` at a time; stop them all on error or Ctrl-C."""
    import multiprocessing
    import time

    ctx = multiprocessing.get_context("spawn")
    queue, running = list(todo), []
    try:
        while queue or running:
            while queue and len(running) < workers:
                recipe = queue.pop(0)
                proc = ctx.Process(target=_worker, args=(data_root, recipe, keys[recipe], state_dir, progress), name=f"train-{recipe}")
                proc.start()
                running.append((recipe, proc))
            time.sleep(0.2)
            for recipe, proc in list(running):
                if proc.exitcode is None:
                    continue
                running.remove((recipe, proc))
                if proc.exitcode != 0:
                    raise BenchError(f"training mini_{recipe} failed (exit code {proc.exitcode})", "see the message above; the next run resumes")
    except BaseException:
        for _, proc in running:
            proc.terminate()
        for _, proc in running:
            proc.join()
        raise


def ensure_zoo(data_root: Path, workdir: Path, spec: MiniSpec, progress: bool = True, parallel: int | None = None) -> dict[str, dict[str, Any]]:
    """Train every recipe whose checkpoint is missing or from another key; resume interrupted ones."""
    keys = {r: _train_key(spec, r) for r in RECIPES}
    todo = [r for r in RECIPES if not _is_current(r, keys[r])]
    if todo:
        require_writable(weights_file(todo[0]).parent.parent, "weights cache")
        digest = hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:12]
        state_dir = workdir / "train" / digest
        require_writable(state_dir, "training state folder")
        workers = max(1, min(parallel or os.cpu_count() or 1, 2, len(todo)))
        if workers == 1:
            for r in todo:
                _train_one(str(data_root), r, keys[r], str(state_dir), progress)
        else:
            _train_in_processes(str(data_root), todo, keys, str(state_dir), progress, workers)
    infos = {r: json.loads(weights_file(r).with_suffix(".json").read_text()) for r in RECIPES}
    for r in todo:
        infos[r]["fresh"] = True
    return infos
