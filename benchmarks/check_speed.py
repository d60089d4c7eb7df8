"""Speed of bench check's statistics, each against a baseline run in the same process:

1. a Wilson interval, the exact McNemar test and a 10,000-resample paired bootstrap over 50,000
   per-image outcomes (bench.stats.paired.compare_proportions), against a bootstrap that
   resamples image indices and recomputes the mean in a loop (timed on 200 resamples, scaled);
2. the VOC mAP bootstrap, 4,952 images x 2,000 resamples (about 15,000 detections, 20 classes),
   from reweighted TP/FP flags (bench.stats.replicates.voc_map), against re-scoring each resampled
   image list with bench's VOC scorer (timed on 5 resamples, scaled);
3. the six OOD threshold metrics of one score (TNR and FPR at TPR 95%, detection accuracy,
   AUPR-in/out, FPR at TPR 95% of OOD), 2,000 stratified resamples of 10,000 in-distribution and
   4 x 2,000 OOD samples, from one pass (bench.stats.paired.compare_bootstrap_many), against a
   bootstrap of each metric alone;
4. with --results DIR: `bench check` of two backbones from a stored results folder, in a fresh
   process (goal: under 5 s for two mini backbones over every demo task).

    python benchmarks/check_speed.py [--results ~/.cache/bench/mini/results --new mini_cutmix --ref mini_baseline]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def proportions() -> None:
    from bench.stats.paired import compare_proportions

    rng = np.random.default_rng(0)
    ref = rng.random(50000) < 0.76
    new = np.where(rng.random(50000) < 0.9, ref, rng.random(50000) < 0.75)
    ours = timed(lambda: compare_proportions(new, ref, 100.0, 10000, 0))

    def loop(b: int) -> None:
        g = np.random.default_rng(1)
        d = new.astype(float) - ref
        for _ in range(b):
            idx = g.integers(0, len(d), len(d))
            d[idx].mean()

    base = timed(lambda: loop(200), 1) * 10000 / 200
    print(f"proportions, 50,000 paired outcomes, 10,000 resamples: {ours:.3f} s (goal < 1 s); index-resampling loop {base:.1f} s; ratio {ours / base:.4f}")


def voc() -> None:
    from bench.metrics.voc import Detections, GroundTruth, class_flags, voc_detection_ap
    from bench.stats.bootstrap import chunks, resample_weights
    from bench.stats.replicates import voc_map

    rng = np.random.default_rng(0)
    n, k = 4952, 20
    gts, det = [], {"image": [], "labels": [], "scores": [], "boxes": []}
    for i in range(n):
        m = int(rng.integers(1, 4))
        xy = rng.integers(1, 300, (m, 2))
        boxes = np.concatenate([xy, xy + rng.integers(20, 150, (m, 2))], axis=1).astype(float)
        labels = rng.integers(0, k, m)
        gts.append(GroundTruth(boxes, labels, rng.random(m) < 0.1))
        for b, c in zip(boxes, labels):
            for _ in range(int(rng.integers(0, 3))):
                det["image"].append(i), det["labels"].append(int(c) if rng.random() < 0.8 else int(rng.integers(0, k)))
                det["scores"].append(float(rng.random())), det["boxes"].append(b + rng.normal(0, 10, 4))
        det["image"].append(i), det["labels"].append(int(rng.integers(0, k))), det["scores"].append(float(rng.random()) * 0.5)
        det["boxes"].append(np.array([10.0, 10.0, 60.0, 60.0]))
    dets = Detections(np.array(det["image"]), np.array(det["labels"]), np.array(det["scores"]), np.array(det["boxes"]))
    gt_image = np.concatenate([np.full(len(g.labels), i) for i, g in enumerate(gts)])
    gt_boxes, gt_labels, gt_diff = np.concatenate([g.boxes for g in gts]), np.concatenate([g.labels for g in gts]), np.concatenate([g.difficult for g in gts])
    counts = np.zeros((n, k), np.int64)
    np.add.at(counts, (gt_image[~gt_diff], gt_labels[~gt_diff]), 1)

    def ours_fn() -> None:
        classes = []
        for c in range(k):
            g, d = gt_labels == c, dets.labels == c
            order, tp, fp, _ = class_flags(gt_image[g], gt_boxes[g], gt_diff[g], dets.image[d], dets.scores[d], dets.boxes[d])
            classes.append((dets.image[d][order], tp, fp))
        rs = np.random.default_rng(0)
        for size in chunks(2000, n):
            voc_map(classes, counts, resample_weights(n, size, rs))

    ours = timed(ours_fn, 1)

    def rescore(b: int) -> None:
        rs = np.random.default_rng(1)
        for _ in range(b):
            picked = rs.integers(0, n, n)
            rows = np.concatenate([np.flatnonzero(dets.image == i) for i in picked])
            new_image = np.concatenate([np.full(int((dets.image == i).sum()), j) for j, i in enumerate(picked)])
            voc_detection_ap([gts[i] for i in picked], Detections(new_image, dets.labels[rows], dets.scores[rows], dets.boxes[rows]), k)

    base = timed(lambda: rescore(5), 1) * 2000 / 5
    print(f"VOC mAP, {n} images x 2,000 resamples, {len(dets.scores)} detections: {ours:.2f} s (goal < 10 s); re-scoring each resample {base:.0f} s; ratio {ours / base:.4f}")


def ood_group() -> None:
    from bench.stats import paired, replicates

    rng = np.random.default_rng(3)
    sizes = [10000] + [2000] * 4
    pos = (rng.normal(1, 1, 10000), rng.normal(1.05, 1, 10000))
    negs = ([rng.normal(0, 1, 2000) for _ in range(4)], [rng.normal(0, 1, 2000) for _ in range(4)])
    kinds = {f"ood_mean:{m}": 100.0 for m in replicates.OOD_RATES}
    data_a, data_b = (pos[0], negs[0]), (pos[1], negs[1])
    ours = timed(lambda: paired.compare_bootstrap_many(paired.GROUPS["ood_mean"](list(kinds)), data_a, data_b, sum(sizes), kinds, 2000, 0, strata=sizes), 1)
    base = timed(lambda: [paired.compare_bootstrap(paired.STATISTICS[k], data_a, data_b, sum(sizes), 100.0, 2000, 0, k, strata=sizes)
                          for k in kinds], 1)
    print(f"OOD threshold metrics of one score, 6 metrics x 2,000 resamples, 18,000 samples: {ours:.2f} s in one pass; each alone {base:.2f} s; ratio {ours / base:.3f}")


def check_command(results: str, new: str, ref: str) -> None:
    argv = [sys.executable, "-m", "bench", "check", "--backbone", new, "--against", ref, "--results", results, "--format", "json"]
    t = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    wall = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import bench.cli"], capture_output=True, cwd=Path(__file__).resolve().parent.parent)
    start = time.perf_counter() - t
    import json

    compared = len(json.loads(out.stdout)["metrics"]) if out.returncode in (0, 1) else 0
    print(f"bench check {new} vs {ref} from {results}: {wall:.2f} s wall (goal < 5 s), exit {out.returncode}, {compared} metrics compared; "
          f"a bare 'import bench.cli' {start:.2f} s; ratio {wall / start:.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results")
    ap.add_argument("--new", default="mini_cutmix")
    ap.add_argument("--ref", default="mini_baseline")
    args = ap.parse_args()
    proportions()
    voc()
    ood_group()
    if args.results:
        check_command(args.results, args.new, args.ref)
