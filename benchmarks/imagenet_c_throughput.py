"""imagenet_c throughput against a bare torch loop over the same folders: one DataLoader over
every (corruption, severity) image (PIL decode, to tensor, normalise, forward, argmax), the same
batch size, workers and model. bench's side is the whole `bench run` of the task minus loading
the checkpoint (listing and checking 95 folders, the data fingerprint, the loop, scoring, the
record). Goal: at least 0.9x the bare loop's images/s.

    python benchmarks/imagenet_c_throughput.py [--per-class 1] [--classes 4] [--workers 2] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=1)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-c-"))
    os.environ.setdefault("BENCH_CACHE", str(work / "cache"))
    os.environ["TQDM_DISABLE"] = "1"
    from bench.data.imagenet_c import ALL_CORRUPTIONS

    rng = np.random.default_rng(0)
    wnids = [f"n{k:08d}" for k in range(args.classes)]
    files = []
    for c in ALL_CORRUPTIONS:
        for s in range(1, 6):
            for k, w in enumerate(wnids):
                folder = work / "data" / "ImageNet-C" / c / str(s) / w
                folder.mkdir(parents=True)
                for j in range(args.per_class):
                    path = folder / f"ILSVRC2012_val_{k * args.per_class + j + 1:08d}.JPEG"
                    Image.fromarray(rng.integers(0, 256, size=(28, 28, 3), dtype=np.uint8)).resize((224, 224), Image.BICUBIC).save(path, quality=85)
                    files.append((path, k))
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=args.classes).eval()
    torch.save(model.state_dict(), work / "r18.pth")

    from bench.cli import main as bench

    start = time.perf_counter()
    code = bench(["run", "--task", "imagenet_c", "--backbone", str(work / "r18.pth"), "--arch", "resnet18", "--num-classes", str(args.classes),
                  "--data-root", str(work / "data"), "--results", str(work / "r"), "--workers", str(args.workers), "--batch-size", str(args.batch),
                  "--set", "clean=none", "--quiet"])
    wall = time.perf_counter() - start
    assert code == 0
    (text,) = sqlite3.connect(work / "r" / "bench.sqlite").execute("SELECT record FROM results").fetchone()
    record = json.loads(text)
    t_bench = wall - record["timing"]["load_s"]

    class Bare(torch.utils.data.Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            path, label = files[i]
            with Image.open(path) as img:
                x = torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)
            return x, label
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    start = time.perf_counter()
    wrong = 0
    with torch.inference_mode():
        for x, y in torch.utils.data.DataLoader(Bare(), batch_size=args.batch, num_workers=args.workers):
            wrong += int((model((x.float() / 255 - mean) / std).argmax(1) != y).sum())
    t_bare = time.perf_counter() - start
    cells = [v for k, v in record["metrics"].items() if k.startswith("err@") and "-" in k]  # equal-sized cells: their mean is the overall error
    assert abs(100.0 * wrong / len(files) - float(np.mean(cells))) < 1e-6, "bench and the bare loop disagree"
    n = len(files)
    print(f"resnet18 at 224 px, {n} ImageNet-C images (19 corruptions x 5 severities x {args.classes} classes x {args.per_class}), "
          f"batch {args.batch}, {args.workers} workers, {torch.get_num_threads()} threads")
    print(f"  bare loop {n / t_bare:.1f} images/s, bench run {n / t_bench:.1f} images/s: ratio {t_bare / t_bench:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
