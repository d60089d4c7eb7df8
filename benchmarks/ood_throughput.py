"""cifar100_ood throughput (MSP) against a bare torch loop over the same images, and the cost of
ODIN's input perturbation. Fixture: a CIFAR-100 test set in the pickle layout, ODIN's five
folders of 32x32 JPEGs and the two noise sets, a 100-way ResNet-18 at 32 px.

bench's side is the whole `bench run` minus loading the checkpoint (reading the pickles, listing
and fingerprinting the folders, the loop, the scores, every metric, the samples file, the
record). The bare loop: one DataLoader per set (array to tensor, PIL decode, or noise drawn per
item), normalise, forward, max softmax, then sklearn's AUROC. Goal: at least 0.9x its images/s.
Then the same bench run with ODIN added (a backward and a second forward per batch).

    python benchmarks/ood_throughput.py [--test 2000] [--per-set 1000] [--workers 2] [--batch 128]
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

MEAN = [x / 255 for x in (125.3, 123.0, 113.9)]
STD = [x / 255 for x in (63.0, 62.1, 66.7)]
FOLDERS = {"tinyimagenet_crop": "Imagenet", "tinyimagenet_resize": "Imagenet_resize", "lsun_crop": "LSUN", "lsun_resize": "LSUN_resize", "isun": "iSUN"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--per-set", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ood-"))
    os.environ.setdefault("BENCH_CACHE", str(work / "cache"))
    os.environ["TQDM_DISABLE"] = "1"
    from bench.mini.layouts import write_cifar100, write_image_folder

    rng = np.random.default_rng(0)
    test = rng.integers(0, 256, size=(args.test, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 100, args.test)
    write_cifar100(work / "data", {"test": (test, labels)}, [f"c{i}" for i in range(100)])
    for folder in FOLDERS.values():
        write_image_folder(work / "data" / "ood" / folder / "test", rng.integers(0, 256, size=(args.per_set, 32, 32, 3), dtype=np.uint8), ".jpg")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=100).eval()
    torch.save(model.state_dict(), work / "r18.pth")

    from bench.cli import main as bench

    def run(results: str, scores: str) -> tuple[float, dict]:
        start = time.perf_counter()
        code = bench(["run", "--task", "cifar100_ood", "--backbone", str(work / "r18.pth"), "--arch", "resnet18", "--num-classes", "100", "--resize", "32",
                      "--crop", "32", "--mean", ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD)), "--data-root", str(work / "data"),
                      "--results", str(work / results), "--workers", str(args.workers), "--batch-size", str(args.batch),
                      "--set", f"noise_count={args.per_set}", "--set", f"scores=[{scores}]", "--quiet"])
        wall = time.perf_counter() - start
        assert code == 0
        (text,) = sqlite3.connect(work / results / "bench.sqlite").execute("SELECT record FROM results").fetchone()
        record = json.loads(text)
        return wall - record["timing"]["load_s"], record

    t_bench, record = run("msp", "msp")

    class Cifar(torch.utils.data.Dataset):
        def __len__(self):
            return len(test)

        def __getitem__(self, i):
            return torch.from_numpy(test[i].transpose(2, 0, 1).copy())

    class Folder(torch.utils.data.Dataset):
        def __init__(self, folder):
            self.files = sorted((work / "data" / "ood" / folder / "test").iterdir())

        def __len__(self):
            return len(self.files)

        def __getitem__(self, i):
            with Image.open(self.files[i]) as img:
                return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)

    class Noise(torch.utils.data.Dataset):
        def __init__(self, kind):
            self.kind = kind

        def __len__(self):
            return args.per_set

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            x = torch.rand((3, 32, 32), generator=g) if self.kind == "uniform" else (torch.randn((3, 32, 32), generator=g) + 0.5).clamp(0, 1)
            return x * 255

    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    start = time.perf_counter()
    msp = {}
    sets = {"in": Cifar(), **{n: Folder(f) for n, f in FOLDERS.items()}, "uniform": Noise("uniform"), "gaussian": Noise("gaussian")}
    with torch.inference_mode():
        for name, dataset in sets.items():
            parts = [torch.softmax(model((x.float() / 255 - mean) / std).double(), 1).max(1).values
                     for x in torch.utils.data.DataLoader(dataset, batch_size=args.batch, num_workers=args.workers)]
            msp[name] = torch.cat(parts).numpy()
    from sklearn.metrics import roc_auc_score

    for name in FOLDERS:
        y = np.r_[np.ones(len(msp["in"])), np.zeros(len(msp[name]))]
        assert abs(100 * roc_auc_score(y, np.r_[msp["in"], msp[name]]) - record["metrics"][f"msp_auroc@{name}"]) < 1e-6, "bench and the bare loop disagree"
    t_bare = time.perf_counter() - start
    n = sum(len(v) for v in msp.values())
    print(f"resnet18 at 32 px, {n:,} images (CIFAR-100 test {args.test:,} + 5 folders + 2 noise sets x {args.per_set:,}), batch {args.batch}, "
          f"{args.workers} workers, {torch.get_num_threads()} threads")
    print(f"  MSP: bare loop {n / t_bare:.0f} images/s, bench run {n / t_bench:.0f} images/s: ratio {t_bare / t_bench:.3f} (goal >= 0.9)")
    t_odin, _ = run("odin", "msp, odin")
    print(f"  ODIN (T 1000, eps 0.0014) added: bench run {n / t_odin:.0f} images/s, {t_odin / t_bench:.2f}x the MSP run's time")


if __name__ == "__main__":
    main()
