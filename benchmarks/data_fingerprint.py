"""The data fingerprint's cost: imagenet_cls's data check on a 50,000-file val folder (1,000 class
folders x 50 files, the ILSVRC2012 val shape), with the fingerprint and without it (the reader's
listing alone, what the check cost before), warm (the second of two passes, so the listing is in
the page cache). Goal: the whole check under 2 s warm.

    python benchmarks/data_fingerprint.py [--classes 1000] [--per-class 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.data.fingerprint import Fingerprint
from bench.data.imagenet import read_imagenet_val


def make_folder(root: Path, classes: int, per_class: int) -> Path:
    val = root / "imagenet" / "val"
    for c in range(classes):
        folder = val / f"n{c:08d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            (folder / f"ILSVRC2012_val_{c * per_class + i:08d}.JPEG").write_bytes(b"\xff\xd8" + bytes(i % 200))
    return root / "imagenet"


def timed(fn, repeat: int) -> tuple[float, object]:
    fn()  # the first pass warms the page cache
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_folder(Path(tmp), args.classes, args.per_class)

        def listing():
            return read_imagenet_val(root)

        def check():
            split = read_imagenet_val(root)
            return Fingerprint().files("val", root, split.images).values("labels", [split.targets, split.classes]).hexdigest()

        base, split = timed(listing, args.repeat)
        full, digest = timed(check, args.repeat)
    n = len(split.images)
    print(f"{n} files in {args.classes} class folders, median of {args.repeat} warm passes")
    print(f"  listing alone (the check before):     {base:.3f} s")
    print(f"  listing + fingerprint (the check now): {full:.3f} s  (fingerprint {digest})")
    print(f"  fingerprint's own cost: {full - base:.3f} s; ratio check now / before: {full / base:.2f}x; goal < 2 s: {'met' if full < 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
