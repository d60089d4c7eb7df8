"""VOC AP against the classic one-detection-at-a-time algorithm (tests/voc_reference.py):
difficult objects, duplicates, empty images, classes without detections or without GT."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.metrics.voc import Detections, GroundTruth, ap_11_point, voc_detection_ap
from voc_reference import classic_ap


def random_case(rng, n_images=40, num_classes=6):
    gts, det = [], {"image": [], "labels": [], "scores": [], "boxes": []}
    for i in range(n_images):
        n = int(rng.integers(0, 5))  # some images have no object
        xy = rng.integers(1, 80, (n, 2))
        boxes = np.concatenate([xy, xy + rng.integers(5, 40, (n, 2))], axis=1).astype(float)
        labels = rng.integers(0, num_classes - 1, n)  # the last class never has GT
        difficult = rng.random(n) < 0.2
        gts.append(GroundTruth(boxes, labels, difficult))
        for b, c in zip(boxes, labels):  # near-hits, duplicates (several per object), and misses
            for _ in range(int(rng.integers(0, 3))):
                det["image"].append(i)
                det["labels"].append(c if rng.random() < 0.9 else int(rng.integers(0, num_classes)))
                det["scores"].append(round(float(rng.random()), 2))  # ties happen
                det["boxes"].append(b + rng.normal(0, 4, 4))
        for _ in range(int(rng.integers(0, 3))):  # background detections
            xy = rng.integers(1, 80, 2)
            det["image"].append(i)
            det["labels"].append(int(rng.integers(0, num_classes)))
            det["scores"].append(round(float(rng.random()), 2))
            det["boxes"].append(np.concatenate([xy, xy + rng.integers(5, 40, 2)]).astype(float))
    dets = Detections(np.array(det["image"]), np.array(det["labels"]), np.array(det["scores"]), np.array(det["boxes"]).reshape(-1, 4))
    return gts, dets


def same(a, b):
    return len(a) == len(b) and all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b))


@pytest.mark.parametrize("seed", range(6))
def test_identical_to_the_classic_loop(seed):
    rng = np.random.default_rng(seed)
    gts, dets = random_case(rng)
    ours = voc_detection_ap(gts, dets, 6)
    plain = [(g.boxes, g.labels, g.difficult) for g in gts]
    ref07 = classic_ap(plain, dets.image, dets.labels, dets.scores, dets.boxes, 6, use_07=True)
    ref_area = classic_ap(plain, dets.image, dets.labels, dets.scores, dets.boxes, 6, use_07=False)
    assert same(ours["ap_voc07"], [100 * a for a in ref07]) and same(ours["ap_area"], [100 * a for a in ref_area])
    assert math.isnan(ours["ap_voc07"][5])  # no GT: no AP, and left out of the mean
    assert ours["map_voc07"] == np.mean([100 * a for a in ref07[:5]])


def test_by_hand():
    gt = [GroundTruth(np.array([[1, 1, 10, 10], [20, 20, 29, 29], [40, 40, 49, 49]], float), np.array([0, 0, 0]), np.array([False, False, True])),
          GroundTruth(np.zeros((0, 4)), np.zeros(0, int), np.zeros(0, bool))]
    dets = Detections(
        image=np.array([0, 0, 0, 0, 1]),
        labels=np.array([0, 0, 0, 0, 0]),
        scores=np.array([0.9, 0.8, 0.7, 0.6, 0.5]),
        boxes=np.array([[1, 1, 10, 10], [1, 1, 10, 10], [40, 40, 49, 49], [20, 20, 29, 29], [1, 1, 5, 5]], float),
    )
    # 0.9 hit; 0.8 duplicate (FP); 0.7 on a difficult object (ignored); 0.6 hit; 0.5 in an empty image (FP)
    # precision/recall after each counted detection: (1, .5), (.5, .5), (2/3, 1), (.5, 1)
    result = voc_detection_ap(gt, dets, 1)
    assert result["ap_voc07"][0] == pytest.approx(100 * (6 * 1 + 5 * (2 / 3)) / 11)
    assert result["ap_area"][0] == pytest.approx(100 * (0.5 * 1 + 0.5 * 2 / 3))
    assert result["npos"] == [2]
    assert ap_11_point(np.array([]), np.array([])) == 0.0
