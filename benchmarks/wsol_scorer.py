"""MaxBoxAccV2 scoring speed: bench's scorer against the one-findContours-per-threshold loop
(wsolevaluation's algorithm), on CAM-like 224x224 maps at interval 0.001, results checked identical.

bench scores all --maps; the loop, at ~0.1 s a map, scores the first --loop-maps of them, and
the ratio compares time per map. The per-threshold counts of those maps must be identical.
numba's one-off compilation (cached on disk afterwards) is timed separately.

    python benchmarks/wsol_scorer.py [--maps 5000] [--loop-maps 1000] [--interval 0.001]
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np

from bench.metrics.wsol import BoxAccuracy, cam_thresholds, iou_matrix, normalize_scoremap


def loop_scorer(maps, gts, interval, ious=(30, 50, 70)):
    """The baseline: threshold, trace and box once per CAM threshold, as wsolevaluation does."""
    thresholds = list(np.arange(0, 1, interval))
    correct = {t: np.zeros(len(thresholds), np.int64) for t in ious}
    for scoremap, gt in zip(maps, gts):
        h, w = scoremap.shape
        image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
        best = []
        for th in thresholds:
            _, binary = cv2.threshold(image, int(th * np.max(image)), 255, cv2.THRESH_BINARY)
            contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            boxes = [[0, 0, 0, 0]]
            if contours:
                boxes = []
                for c in contours:
                    x, y, bw, bh = cv2.boundingRect(c)
                    boxes.append([x, y, min(x + bw, w - 1), min(y + bh, h - 1)])
            best.append(iou_matrix(np.array(boxes), gt).max())
        for t in ious:
            correct[t] += np.array(best) >= t / 100
    return correct


def cam_like(rng, n):
    """14x14 maps with a few blobs, bicubic-upsampled to 224 and min-max normalised, as CAMs are."""
    maps, gts = [], []
    y, x = np.mgrid[0:14, 0:14]
    for _ in range(n):
        m = sum(np.exp(-(((y - cy) / s) ** 2 + ((x - cx) / s) ** 2)) for cy, cx, s in rng.uniform([0, 0, 1], [14, 14, 4], (3, 3)))
        m = m + 0.2 * rng.random((14, 14))
        maps.append(normalize_scoremap(cv2.resize(m.astype(np.float32), (224, 224), interpolation=cv2.INTER_CUBIC)))
        x0, y0 = rng.integers(0, 150, 2)
        gts.append(np.array([[x0, y0, x0 + rng.integers(20, 74), y0 + rng.integers(20, 74)]]))
    return maps, gts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", type=int, default=5000)
    parser.add_argument("--loop-maps", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.001)
    args = parser.parse_args()
    maps, gts = cam_like(np.random.default_rng(0), args.maps)
    k = min(args.loop_maps, args.maps)
    t = time.perf_counter()
    BoxAccuracy(cam_thresholds(args.interval)).add(maps[0], gts[0])  # numba: compile, or load the cached code
    warmup = time.perf_counter() - t
    t = time.perf_counter()
    ours = BoxAccuracy(cam_thresholds(args.interval))
    ours.add_many(maps, gts, threads=1)
    fast = (time.perf_counter() - t) / args.maps
    threads = os.cpu_count() or 1
    t = time.perf_counter()
    threaded = BoxAccuracy(cam_thresholds(args.interval))
    threaded.add_many(maps, gts, threads=threads)
    fast_threads = (time.perf_counter() - t) / args.maps
    subset = BoxAccuracy(cam_thresholds(args.interval))
    subset.add_many(maps[:k], gts[:k])
    t = time.perf_counter()
    baseline = loop_scorer(maps[:k], gts[:k], args.interval)
    slow = (time.perf_counter() - t) / k
    same = all(np.array_equal(subset.correct[key], baseline[key]) for key in baseline)
    same_threads = all(np.array_equal(ours.correct[key], threaded.correct[key]) for key in ours.correct)
    print(f"{args.maps} maps 224x224, interval {args.interval}: bench {fast * 1000:.2f} ms/map on one thread "
          f"({fast * args.maps:.1f} s in all), {fast_threads * 1000:.2f} ms/map on {threads} threads; "
          f"loop {slow * 1000:.1f} ms/map (over {k} maps); first call {warmup:.2f} s (numba)")
    print(f"speed-up {slow / fast:.1f}x on one thread, {slow / fast_threads:.1f}x on {threads} threads; "
          f"identical per-threshold counts: {same} (loop vs bench, {k} maps), {same_threads} (1 vs {threads} threads); "
          f"MaxBoxAccV2 {ours.result()['maxboxacc_mean']:.2f}")


if __name__ == "__main__":
    main()
