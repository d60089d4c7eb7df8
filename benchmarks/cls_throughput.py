"""imagenet_cls evaluation throughput against a bare torch loop over the same model, data,
batch size and workers (goal: ratio >= 0.9).

Writes an ILSVRC2012-layout val folder of ImageNet-sized JPEGs (random content, 500x375),
then alternates the two loops (bare, bench, bare, bench, ...) and compares the best round of each.
The bare loop is what a user would write: torchvision ImageFolder with Resize/CenterCrop/
ToTensor/Normalize in the workers, forward, top-5.

    python benchmarks/cls_throughput.py [--images 256] [--arch resnet18] [--batch-size 32] [--workers 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision import transforms as T

from bench.backbones.build import LoadedBackbone, LoadReport
from bench.cards import BackboneCard, Preprocessing
from bench.evaluation import run_plan
from bench.mini.layouts import write_imagenet_val
from bench.task import DataLocator, RunContext
from tasks.classification import ImageNetClassification

NUM_CLASSES = 10


def bare_loop(model: torch.nn.Module, val: Path, prep: Preprocessing, batch_size: int, workers: int) -> tuple[float, float]:
    tf = T.Compose([T.Resize(prep.resize), T.CenterCrop(prep.crop), T.ToTensor(), T.Normalize(prep.mean, prep.std)])
    loader = torch.utils.data.DataLoader(torchvision.datasets.ImageFolder(str(val), tf), batch_size=batch_size, num_workers=workers)
    start = time.perf_counter()
    hits = n = 0
    with torch.inference_mode():
        for x, y in loader:
            top = model(x).topk(5, 1).indices
            hits += int((top[:, 0] == y).sum())
            n += len(y)
    seconds = time.perf_counter() - start
    return n / seconds, 100 * (1 - hits / n)


def bench_loop(model: torch.nn.Module, root: Path, prep: Preprocessing, batch_size: int, workers: int, arch: str) -> tuple[float, float]:
    card = BackboneCard(name="bench", arch=arch, num_classes=NUM_CLASSES, preprocessing=prep)
    ctx = RunContext(
        backbone=LoadedBackbone(card, model, "0" * 64, None, LoadReport("state_dict")), config={}, data=DataLocator(str(root)),
        device="cpu", batch_size=batch_size, workers=workers, limit=None, seed=0, progress=False, artifact_dir=root / "artifacts",
    )
    start = time.perf_counter()
    task = ImageNetClassification()
    result = run_plan(task, task.plan(ctx), ctx)  # the runner's loop, as bench run uses it
    seconds = time.perf_counter() - start  # includes reading the folder and building the loader
    return result.n_evaluated / seconds, result.metrics["top1_err"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        labels = [i % NUM_CLASSES for i in range(args.images)]
        images = [rng.integers(0, 256, (375, 500, 3), dtype=np.uint8) for _ in labels]
        write_imagenet_val(root / "imagenet", images, labels, [f"n{i:08d}" for i in range(NUM_CLASSES)])
        torch.manual_seed(0)
        model = torchvision.models.get_model(args.arch, weights=None, num_classes=NUM_CLASSES).eval()
        prep = Preprocessing()
        bare, ours = [], []
        for r in range(args.rounds):
            b, b_err = bare_loop(model, root / "imagenet" / "val", prep, args.batch_size, args.workers)
            o, o_err = bench_loop(model, root, prep, args.batch_size, args.workers, args.arch)
            assert abs(b_err - o_err) < 1e-9, (b_err, o_err)  # same numbers, or the comparison means nothing
            bare.append(b)
            ours.append(o)
            print(f"round {r + 1}: bare {b:6.1f} img/s   bench {o:6.1f} img/s")
        ratio = max(ours) / max(bare)
        print(f"{args.arch}, {args.images} images 500x375, batch {args.batch_size}, workers {args.workers}, {torch.get_num_threads()} threads")
        print(f"best bare {max(bare):.1f} img/s, best bench {max(ours):.1f} img/s, ratio bench/bare = {ratio:.3f} [{'ok' if ratio >= 0.9 else 'BELOW 0.9'}]")


if __name__ == "__main__":
    main()
