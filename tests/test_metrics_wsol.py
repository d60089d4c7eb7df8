"""Box metrics against an independent, deliberately naive implementation of wsolevaluation's
definitions: one cv2.threshold + findContours per CAM threshold per map, plain Python IoU."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bench.metrics.wsol import BoxAccuracy, best_iou_per_threshold, cam_thresholds, iou_matrix, max_box_acc, max_box_acc_v2, normalize_scoremap, resize_box


def naive_boxes(scoremap, threshold, multi_contour):
    height, width = scoremap.shape
    image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
    _, binary = cv2.threshold(src=image, thresh=int(threshold * np.max(image)), maxval=255, type=cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        return [[0, 0, 0, 0]]
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    boxes = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    return boxes


def naive_iou(a, b):
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / union if union > 0 else 0.0


def naive_accuracies(maps, gts, interval, ious, multi_contour):
    thresholds = list(np.arange(0, 1, interval))
    correct = {t: np.zeros(len(thresholds), np.int64) for t in ious}
    for scoremap, gt in zip(maps, gts):
        for i, th in enumerate(thresholds):
            best = max(naive_iou(p, g) for p in naive_boxes(scoremap, th, multi_contour) for g in gt)
            for t in ious:
                correct[t][i] += best >= t / 100
    return correct


def naive_normalize(cam):
    """wsolevaluation's normalize_scoremap, written out: NaN or constant maps become zeros, others
    (cam - min) / max of that."""
    if np.isnan(cam).any():
        return np.zeros_like(cam)
    if cam.min() == cam.max():
        return np.zeros_like(cam)
    cam = cam - cam.min()
    return cam / cam.max()


def blob(h, w, cy, cx, sy, sx):
    y, x = np.mgrid[0:h, 0:w]
    return np.exp(-(((y - cy) / sy) ** 2 + ((x - cx) / sx) ** 2))


def varied_maps(rng, n=24, size=(56, 64)):
    """Several blobs, rings (holes), maps touching the border, noise, constant and NaN maps."""
    h, w = size
    maps, gts = [], []
    for i in range(n):
        kind = i % 6
        if kind == 0:  # several blobs
            m = sum(blob(h, w, *rng.uniform(0, [h, w]), *rng.uniform(2, 10, 2)) * rng.uniform(0.3, 1) for _ in range(3))
        elif kind == 1:  # a ring: the foreground has a hole at most thresholds
            r = np.hypot(*np.mgrid[0:h, 0:w] - np.array([h / 2, w / 2])[:, None, None])
            m = np.exp(-((r - rng.uniform(8, 16)) / 3) ** 2)
        elif kind == 2:  # touching the border
            m = blob(h, w, 0, w - 1, *rng.uniform(5, 15, 2)) + 0.5 * blob(h, w, h - 1, 0, 6, 6)
        elif kind == 3:  # upsampled coarse map, as a CAM
            m = cv2.resize(rng.random((7, 8)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        elif kind == 4:
            m = rng.random((h, w))
        else:  # constant, or NaN: wsolevaluation's convention makes both all-zero
            m = np.full((h, w), 0.3) if i % 12 == 5 else np.where(rng.random((h, w)) < 0.01, np.nan, rng.random((h, w)))
        maps.append(naive_normalize(m.astype(np.float32)))
        boxes = []
        for _ in range(1 + i % 3):
            x0, y0 = rng.integers(0, w - 5), rng.integers(0, h - 5)
            boxes.append([x0, y0, rng.integers(x0, w), rng.integers(y0, h)])
        gts.append(np.array(boxes))
    return maps, gts


@pytest.mark.parametrize("multi_contour,ious", [(True, (30, 50, 70)), (False, (50,))])
@pytest.mark.parametrize("interval", [0.01, 0.001])
def test_identical_to_the_naive_loop(multi_contour, ious, interval):
    maps, gts = varied_maps(np.random.default_rng(int(interval * 1000) + multi_contour), n=24 if interval == 0.01 else 12)
    ours = BoxAccuracy(cam_thresholds(interval), ious, multi_contour)
    for m, g in zip(maps, gts):
        ours.add(m, g)
    naive = naive_accuracies(maps, gts, interval, ious, multi_contour)
    for t in ious:
        assert np.array_equal(ours.correct[t], naive[t]), t  # every threshold, not just the maximum
    result = ours.result()
    for t in ious:
        assert result[f"maxboxacc@{t}"] == naive[t].max() * 100.0 / len(maps)


def test_nan_and_constant_maps_follow_wsolevaluation():
    rng = np.random.default_rng(0)
    for m in [rng.random((9, 7)).astype(np.float32) * 5 - 2, np.full((3, 3), 2.0, np.float32), np.array([[np.nan, 1.0]], np.float32)]:
        assert np.array_equal(normalize_scoremap(m), naive_normalize(m))
    assert not normalize_scoremap(np.full((4, 4), 0.7, np.float32)).any()
    assert not normalize_scoremap(np.array([[0.1, np.nan], [0.3, 0.9]], np.float32)).any()
    n = normalize_scoremap(np.array([[2.0, 4.0], [6.0, 10.0]], np.float32))
    assert n.min() == 0 and n.max() == 1 and n[0, 1] == 0.25
    # an all-zero map has no contour at any threshold: the box [0, 0, 0, 0], as the naive loop
    zeros = np.zeros((10, 10), np.float32)
    best = best_iou_per_threshold(zeros, np.array([[0, 0, 1, 1]]), cam_thresholds(0.1), True)
    assert np.allclose(best, 0.25)


def test_iou_by_hand():
    assert iou_matrix([[0, 0, 1, 1]], [[1, 1, 2, 2]])[0, 0] == pytest.approx(1 / 7)
    assert iou_matrix([[0, 0, 9, 9]], [[0, 0, 9, 9], [20, 20, 30, 30]]).tolist() == [[1.0, 0.0]]
    assert iou_matrix([[5, 5, 4, 4]], [[5, 5, 4, 4]])[0, 0] == 0.0  # degenerate: x1 < x0 gives no area
    # 3x3 box against a 3x2 box sharing 2x2 pixels: 4 / (9 + 6 - 4)... by the +1 convention
    assert iou_matrix([[0, 0, 2, 2]], [[1, 1, 3, 2]])[0, 0] == pytest.approx(4 / 11)


def test_resize_box_truncates_like_wsolevaluation():
    assert resize_box((10, 20, 300, 400), (500, 375)) == (4, 11, 134, 238)


def test_v1_and_v2_wrappers():
    maps, gts = varied_maps(np.random.default_rng(7), n=12)
    naive1 = naive_accuracies(maps, gts, 0.01, (50,), False)
    naive2 = naive_accuracies(maps, gts, 0.01, (30, 50, 70), True)
    assert max_box_acc(maps, gts, 0.01) == naive1[50].max() * 100.0 / 12
    assert max_box_acc_v2(maps, gts, 0.01) == np.mean([naive2[t].max() * 100.0 / 12 for t in (30, 50, 70)])
    with pytest.raises(ValueError):
        cam_thresholds(0)


def test_threads_give_the_same_counts():
    maps, gts = varied_maps(np.random.default_rng(3), n=18)
    serial, threaded = BoxAccuracy(cam_thresholds(0.01)), BoxAccuracy(cam_thresholds(0.01))
    serial.add_many(maps, gts, threads=1)
    threaded.add_many(maps, gts, threads=3)
    assert all(np.array_equal(serial.correct[t], threaded.correct[t]) for t in (30, 50, 70)) and threaded.count == 18


def test_every_level_of_coarse_mazes_matches_cv2():
    """Maps of few values (islands in holes in islands, plateaus, one-pixel gaps, the border):
    the union-find boxes of every level against cv2's contours of that level, box for box."""
    from bench.metrics.level_sets import best_iou_by_level

    rng = np.random.default_rng(11)
    for i in range(60):
        h, w = rng.integers(3, 40, 2)
        image = (rng.integers(0, 4 + i % 5, (h, w)) * (255 // (3 + i % 5))).astype(np.uint8)
        if i % 4 == 0:
            image = cv2.resize(image, (w * 3, h * 3), interpolation=cv2.INTER_NEAREST)  # blocky: thick rings
        gt = np.array([[rng.integers(0, image.shape[1]), rng.integers(0, image.shape[0]), image.shape[1] - 1, image.shape[0] - 1], [0, 0, 2, 2]])
        table = best_iou_by_level(image, gt)
        for level in range(256):
            _, binary = cv2.threshold(image, level, 255, cv2.THRESH_BINARY)
            contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            boxes = [[0, 0, 0, 0]]
            if contours:
                boxes = [[x, y, min(x + cw, image.shape[1] - 1), min(y + ch, image.shape[0] - 1)] for x, y, cw, ch in map(cv2.boundingRect, contours)]
            assert table[level] == max(naive_iou(b, g) for b in boxes for g in gt), (i, level)
