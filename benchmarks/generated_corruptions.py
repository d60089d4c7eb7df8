"""Generated ImageNet-C cost: images per second for each corruption of imagecorruptions-imaug,
through the whole pipeline bench runs (decode a val-sized JPEG, resize 256, center crop 224,
corrupt, save as JPEG quality 85), single process, severity 3, and the rate of a parallel build
(bench.data.corruption_cache.generate) with --workers processes. A full generated ImageNet-C is
50,000 images x 19 corruptions x 5 severities; divide by the rate for what it costs.

    python benchmarks/generated_corruptions.py [--images 8] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data import corruption_cache as cache
from bench.data.imagenet_c import ALL_CORRUPTIONS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-gen-"))
    rng = np.random.default_rng(0)
    sources = []
    for i in range(args.images):  # smooth random photos-sized images (500x375, like ImageNet val's median)
        small = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
        path = work / "src" / f"{i}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(small).resize((500, 375), Image.BICUBIC).save(path, quality=90)
        sources.append(path)
    pipeline = {"resize": 256, "crop": 224, "interpolation": "bilinear"}
    cache._init_worker({**pipeline, "root": str(work / "out")})
    cache.corrupt_to_jpeg(cache._decode(sources[0]), "glass_blur", 1, 0)  # numba's compile, once per process
    print(f"imagecorruptions-imaug {cache.library_version()}, {args.images} images of 500x375 -> 224x224, severity 3, one process")
    total = 0.0
    for name in ALL_CORRUPTIONS:
        start = time.perf_counter()
        for i, src in enumerate(sources):
            cache.corrupt_to_jpeg(cache._decode(src), name, 3, i)
        took = time.perf_counter() - start
        total += took / len(sources)
        print(f"  {name:18s} {len(sources) / took:7.1f} images/s")
    print(f"  all 19 x 5 severities of one val image: {total * 5:.2f} s in one process")
    rel = [f"n00000000/{p.name}" for p in sources]
    cells = [(c, s) for c in ALL_CORRUPTIONS for s in range(1, 6)]
    start = time.perf_counter()
    counts = cache.generate(work / "out", sources, rel, cells, 0, pipeline, workers=args.workers, manifests=False)
    took = time.perf_counter() - start
    rate = counts["written"] / took
    print(f"parallel build, {args.workers} workers: {counts['written']} images in {took:.1f} s = {rate:.1f} images/s "
          f"(a full ImageNet-C, 4.75 M images: {4.75e6 / rate / 3600:.0f} h at this rate)")


if __name__ == "__main__":
    main()
