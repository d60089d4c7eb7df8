"""The data check of a released-ImageNet-C cell on a tree of ImageNet-C's size: 19 corruptions x
5 severities x 1,000 class folders x 50 files = 4.75 million (empty) files, the check every
`bench run` does before its cache lookup.

- before: list every file and stat it (read_imagenet_c + Fingerprint.files, the check until the
  tree index), warm page cache;
- cold: the tree index's first lookup (it reads every folder and writes the index);
- warm: later lookups (one stat per folder, 100 folders re-read in full). Goal: under 5 s.
Then it changes the tree and says whether the warm check's fingerprint changed: a file added to
a class folder, and a file rewritten to another size in place (found when its folder is in the
lookup's sample; here the sample is every folder, which costs what the check before did).

    python benchmarks/imagenet_c_fingerprint.py [--classes 1000] [--per-class 50] [--root DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.data.fingerprint import Fingerprint
from bench.data.imagenet_c import ALL_CORRUPTIONS, read_imagenet_c, summarize_imagenet_c
from bench.metrics.corruption import SEVERITIES


def make_tree(root: Path, classes: int, per_class: int) -> int:
    n = 0
    for c in ALL_CORRUPTIONS:
        for s in SEVERITIES:
            for k in range(classes):
                folder = root / c / str(s) / f"n{k:08d}"
                folder.mkdir(parents=True)
                for i in range(per_class):
                    os.close(os.open(folder / f"ILSVRC2012_val_{k * per_class + i:08d}.JPEG", os.O_CREAT | os.O_WRONLY, 0o644))
                    n += 1
    return n


def timed(fn, repeat: int = 1) -> tuple[float, object]:
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
    parser.add_argument("--root", help="where to build the tree (default: a temporary folder, removed after)")
    parser.add_argument("--keep", action="store_true", help="keep the tree (with --root: reuse it when it is there)")
    args = parser.parse_args()
    base = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="imagenet_c_tree_"))
    cache = Path(tempfile.mkdtemp(prefix="bench_cache_"))
    os.environ["BENCH_CACHE"] = str(cache)  # a fresh, empty tree index
    root = base / "ImageNet-C"
    try:
        if not root.is_dir():
            t, n = timed(lambda: make_tree(root, args.classes, args.per_class))
            print(f"built {n} empty files in {len(ALL_CORRUPTIONS) * len(SEVERITIES) * args.classes} class folders in {t:.0f} s")
        corruptions, severities = list(ALL_CORRUPTIONS), list(SEVERITIES)

        def before() -> str:
            listing = read_imagenet_c(root, corruptions, severities, args.classes)
            return Fingerprint().files("imagenet_c", root, listing.images).values("labels", [listing.targets, listing.classes, listing.cells]).hexdigest()

        def check(sample: int | None = None):
            return summarize_imagenet_c(root, corruptions, severities, args.classes, sample=sample)

        before()  # warms the page cache for every pass below
        t_before, _ = timed(before)
        t_cold, cold = timed(check)
        t_warm, warm = timed(check, repeat=3)
        print(f"{warm.n_images} files, {len(warm.cells)} cells x {len(warm.classes)} classes; warm page cache")
        print(f"  before (list + stat every file):  {t_before:7.2f} s")
        print(f"  tree index, cold (first lookup): {t_cold:7.2f} s  index {cold.index}")
        print(f"  tree index, warm (median of 3):  {t_warm:7.2f} s  index {warm.index}")
        print(f"  ratio warm / before: {t_warm / t_before:.3f} ({t_before / t_warm:.0f}x faster); goal warm < 5 s: {'met' if t_warm < 5 else 'MISSED'}")
        assert cold.fingerprint == warm.fingerprint

        folder = root / ALL_CORRUPTIONS[7] / "3" / f"n{args.classes // 2:08d}"
        os.close(os.open(folder / "ILSVRC2012_val_99999999.JPEG", os.O_CREAT | os.O_WRONLY, 0o644))
        t_add, added = timed(check)
        print(f"  a file added to {folder.relative_to(root)}: fingerprint {'changed' if added.fingerprint != warm.fingerprint else 'UNCHANGED'} "
              f"({t_add:.2f} s, {added.index['read']} folder(s) read again)")
        victim = next(folder.parent.parent.glob("1/*/*.JPEG"))
        time.sleep(0.01)
        victim.write_bytes(b"x" * 10)  # same name, another size; its folder's mtime does not change
        t_default, missed = timed(check)
        t_all, found = timed(lambda: check(sample=10**9))
        print(f"  a file rewritten in place ({victim.relative_to(root)}): fingerprint with the default sample "
              f"{'changed' if missed.fingerprint != added.fingerprint else 'unchanged'} ({t_default:.2f} s, {missed.index['sampled']} folders sampled); "
              f"with every folder sampled {'changed' if found.fingerprint != added.fingerprint else 'UNCHANGED'} ({t_all:.2f} s)")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
