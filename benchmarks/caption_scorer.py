"""Caption scoring at COCO val2014's size: 40,504 images x 5 references (default), tokenizer
included, as `bench score captions` runs it; and the Java-free tokenizer's time against the PTB
tokenizer's on the same captions (ratio).

    python benchmarks/caption_scorer.py [--images 40504] [--no-meteor]
"""

from __future__ import annotations

import argparse
import random
import time

from bench.metrics.captions import caption_metrics, java_available, ptb_tokenize, python_tokenize

SUBJECTS = ["a man", "a woman", "two dogs", "a cat", "a red bus", "a plate of food", "a surfer", "a child", "three birds", "a train"]
VERBS = ["sitting on", "standing next to", "riding", "looking at", "parked near", "lying on", "walking along", "flying over"]
OBJECTS = ["a wooden bench", "the beach", "a busy street", "a green field", "a white table", "the water", "a snowy hill", "a couch"]


def caption(rng: random.Random) -> str:
    text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
    return text[0].upper() + text[1:] + rng.choice([".", "", " .", "!"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40504)
    parser.add_argument("--no-meteor", action="store_true", help="score without Java's METEOR (the Java-free path)")
    args = parser.parse_args()
    rng = random.Random(0)
    refs = {i: [caption(rng) for _ in range(5)] for i in range(args.images)}
    cands = {i: caption(rng).lower() for i in range(args.images)}
    everything = {**{("r", i): c for i, c in refs.items()}, **{("c", i): [c] for i, c in cands.items()}}
    start = time.perf_counter()
    python_tokenize(everything)
    t_python = time.perf_counter() - start
    print(f"{args.images} images x 5 references + 1 candidate each")
    print(f"  python tokenizer: {t_python:.1f} s")
    if java_available():
        start = time.perf_counter()
        ptb_tokenize(everything)
        t_ptb = time.perf_counter() - start
        print(f"  PTB tokenizer (Java): {t_ptb:.1f} s; python / PTB time ratio {t_python / t_ptb:.2f}")
    start = time.perf_counter()
    metrics, info = caption_metrics(refs, cands, java=False if args.no_meteor else None)
    total = time.perf_counter() - start
    shown = ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if v is not None)
    print(f"  whole scoring ({info['tokenizer']}; METEOR {info['meteor_status']}): {total:.1f} s  [{shown}]")


if __name__ == "__main__":
    main()
