"""VOC scoring speed: bench's vectorised AP against the classic per-class, per-detection loop
(tests/voc_reference.py), on 5,000 images x 20 classes x 100 detections per image; the per-class
APs must be identical.

    python benchmarks/voc_scorer.py [--images 5000] [--per-image 100]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from voc_reference import classic_ap  # noqa: E402

from bench.metrics.voc import Detections, GroundTruth, voc_detection_ap  # noqa: E402


def synthetic(rng: np.random.Generator, images: int, per_image: int) -> tuple[list[GroundTruth], Detections]:
    gts, rows = [], []
    for i in range(images):
        n = int(rng.integers(1, 6))
        xy = rng.uniform(1, 400, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(20, 200, (n, 2))], axis=1).round()
        labels = rng.integers(0, 20, n)
        gts.append(GroundTruth(boxes, labels, rng.random(n) < 0.1))
        for _ in range(per_image):
            if rng.random() < 0.3:  # near an object, sometimes the wrong class
                k = int(rng.integers(n))
                box, label = boxes[k] + rng.normal(0, 10, 4), labels[k] if rng.random() < 0.8 else int(rng.integers(20))
            else:
                p = rng.uniform(1, 450, 2)
                box, label = np.concatenate([p, p + rng.uniform(10, 150, 2)]), int(rng.integers(20))
            rows.append((i, label, float(rng.random()), box))
    dets = Detections(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), np.array([r[3] for r in rows]))
    return gts, dets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--per-image", type=int, default=100)
    args = parser.parse_args()
    gts, dets = synthetic(np.random.default_rng(0), args.images, args.per_image)
    t = time.perf_counter()
    ours = voc_detection_ap(gts, dets, 20)
    fast = time.perf_counter() - t
    t = time.perf_counter()
    plain = [(g.boxes, g.labels, g.difficult) for g in gts]
    ref = classic_ap(plain, dets.image, dets.labels, dets.scores, dets.boxes, 20)
    slow = time.perf_counter() - t
    same = all((math.isnan(a) and math.isnan(b)) or a == 100 * b for a, b in zip(ours["ap_voc07"], ref))
    print(f"{args.images} images x 20 classes, {len(dets.scores)} detections: bench {fast:.2f} s, classic loop {slow:.2f} s")
    print(f"speed-up {slow / fast:.1f}x; identical per-class 11-point APs: {same}; mAP {ours['map_voc07']:.2f}")


if __name__ == "__main__":
    main()
