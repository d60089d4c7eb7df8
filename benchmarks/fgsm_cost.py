"""FGSM's cost against clean evaluation of the same images: a ResNet at 224 px in eval mode, one
forward pass per batch (clean) against forward + backward to the input + one forward per eps
(FGSM). Goal: at most 3.5x for one eps.

    python benchmarks/fgsm_cost.py [--arch resnet18] [--images 64] [--batch 16] [--eps 1]
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision

from tasks.adversarial import fgsm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--eps", type=int, default=1, help="sweep points (eps values) per image")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = torchvision.models.get_model(args.arch, weights=None).eval()
    batches = [(torch.rand(args.batch, 3, 224, 224), torch.randint(0, 1000, (args.batch,))) for _ in range(args.images // args.batch)]
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    normalize = lambda x: (x - mean) / std  # noqa: E731
    eps = [k / 255 for k in range(1, args.eps + 1)]
    with torch.inference_mode():
        model(normalize(batches[0][0]))  # warm-up
        start = time.perf_counter()
        for x, _ in batches:
            model(normalize(x))
        clean = time.perf_counter() - start
    start = time.perf_counter()
    for x, y in batches:
        fgsm(model, normalize, x, y, eps)
    attack = time.perf_counter() - start
    print(f"{args.arch}, {len(batches) * args.batch} images at 224 px, batch {args.batch}, {len(eps)} eps, {torch.get_num_threads()} threads")
    print(f"  clean {clean:.1f} s, FGSM {attack:.1f} s: ratio {attack / clean:.2f} (goal <= 3.5 for one eps) [{'ok' if attack / clean <= 3.5 or len(eps) > 1 else 'over'}]")


if __name__ == "__main__":
    main()
