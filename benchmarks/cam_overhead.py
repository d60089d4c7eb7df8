"""CAM extraction overhead: forward + CAMs (hook on layer4, one einsum) against the bare forward
of the same model and batch. Goal: at most 10% more time.

    python benchmarks/cam_overhead.py [--arch resnet50] [--batch 16] [--size 224] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision

from bench.cam import CamExtractor


def interleaved(fns: list, repeat: int) -> list[float]:
    """Best time of each function, runs alternated so that drift in machine load hits all alike."""
    for fn in fns:
        fn()  # warm-up
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    model = torchvision.models.get_model(args.arch, weights=None).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    labels = torch.randint(0, 1000, (args.batch,))
    plain = torchvision.models.get_model(args.arch, weights=None).eval()
    plain.load_state_dict(model.state_dict())
    ext = CamExtractor(model)

    def with_cams() -> None:
        ext(x)
        ext.cams(labels)

    with torch.inference_mode():
        bare, cams = interleaved([lambda: plain(x), with_cams], args.repeat)
    ext.remove()
    print(f"{args.arch}, batch {args.batch} at {args.size}px, {torch.get_num_threads()} threads: forward {bare * 1000:.1f} ms, "
          f"forward + CAMs {cams * 1000:.1f} ms, overhead {100 * (cams / bare - 1):+.1f}% [{'ok' if cams / bare <= 1.10 else 'OVER 10%'}]")


if __name__ == "__main__":
    main()
