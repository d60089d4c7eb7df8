"""Sweeps decode once: imagenet_occlusion's forward (every sweep point applied to one decoded
batch) against re-decoding the images for each sweep point, the same model and points. Images
are val-sized JPEGs (500x375) resized and cropped like the card says. With a fast model (the mini
ResNet at 64 px, standing in for a GPU) decoding dominates; with ResNet-18 at 224 px on a CPU the
forward passes do, and the gain is smaller. Goal: at least 2x for 15 points.

    python benchmarks/sweep_decode.py [--images 64] [--points 15] [--model mini|resnet18]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.cards import Preprocessing
from bench.data.images import ImageList, eval_transform
from bench.sweeps import occlude


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--points", type=int, default=15)
    parser.add_argument("--model", default="mini", choices=["mini", "resnet18"])
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(args.images):
        path = work / f"{i}.JPEG"
        Image.fromarray(rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)).resize((500, 375), Image.BICUBIC).save(path, quality=90)
        paths.append(path)
    if args.model == "mini":
        from bench.mini.model import mini_resnet

        model, prep = mini_resnet(10).eval(), Preprocessing(resize=73, crop=64)
    else:
        import torchvision

        model, prep = torchvision.models.resnet18(weights=None).eval(), Preprocessing(resize=256, crop=224)
    crop = prep.crop
    sizes = [round(k * crop / (args.points - 1)) for k in range(args.points)]
    data = ImageList(paths, [0] * len(paths), eval_transform(prep))
    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)

    def batches():
        return torch.utils.data.DataLoader(data, batch_size=args.batch, num_workers=0)

    def score(x, side):
        return model((occlude(x, side, "center", mean) - mean) / std).argmax(1)
    with torch.inference_mode():
        score(next(iter(batches()))[0].float() / 255, 0)  # warm-up
        start = time.perf_counter()
        once = [torch.stack([score(b[0].float() / 255, s) for s in sizes]) for b in batches()]
        t_once = time.perf_counter() - start
        start = time.perf_counter()
        per_point = {s: [score(b[0].float() / 255, s) for b in batches()] for s in sizes}  # a loader pass per sweep point
        t_naive = time.perf_counter() - start
    assert all(torch.equal(torch.stack([per_point[s][k] for s in sizes]), once[k]) for k in range(len(once)))
    print(f"{args.model} at {crop} px, {args.images} images of 500x375, {len(sizes)} sweep points, {torch.get_num_threads()} threads")
    print(f"  decode per point {t_naive:.2f} s, decode once {t_once:.2f} s: {t_naive / t_once:.2f}x (goal >= 2x for 15 points)")


if __name__ == "__main__":
    main()
