"""NIC beam search: captions per second at beam 20, all images of a batch searched together
against one image at a time (ratio), on the paper's decoder size (embed 100, hidden 300) with a
COCO-sized vocabulary; the captions must be the same.

    python benchmarks/beam_search.py [--images 200] [--beam 20] [--vocab 10000] [--batch 100]
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.captioning.model import NIC


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--beam", type=int, default=20)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = NIC(2048, args.vocab).eval()
    features = torch.randn(args.images, 2048)
    start = time.perf_counter()
    batched = [c for k in range(0, args.images, args.batch) for c in model.beam_search(features[k:k + args.batch], args.beam, args.max_length)]
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    single = [model.beam_search(features[k:k + 1], args.beam, args.max_length)[0] for k in range(args.images)]
    t_single = time.perf_counter() - start
    same = sum(a == b for a, b in zip(batched, single))
    print(f"{args.images} images, beam {args.beam}, vocabulary {args.vocab}, up to {args.max_length} words, {torch.get_num_threads()} threads")
    print(f"  batched ({args.batch} images at a time): {args.images / t_batched:.1f} captions/s")
    print(f"  one image at a time:                  {args.images / t_single:.1f} captions/s")
    print(f"  speed-up {t_single / t_batched:.2f}x; identical captions {same}/{args.images}")


if __name__ == "__main__":
    main()
