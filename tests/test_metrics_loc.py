"""The paper's fixed-threshold localization (largest connected component) against an
independent implementation (scipy.ndimage labelling), and the box frame conversions by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bench.metrics.wsol import box_hits, crop_box, largest_component_box, normalize_scoremap
from test_metrics_wsol import varied_maps


def scipy_box(scoremap, threshold):
    if not scoremap.max() > 0:
        return None
    labels, n = ndimage.label(scoremap >= threshold * scoremap.max(), structure=np.ones((3, 3)))
    if n == 0:
        return None
    areas = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    best = int(np.argmax(areas)) + 1  # scipy labels in raster order: the first of equal areas wins
    ys, xs = ndimage.find_objects(labels)[best - 1]
    return xs.start, ys.start, xs.stop - 1, ys.stop - 1


@pytest.mark.parametrize("threshold", [0.0, 0.15, 0.2, 0.5, 0.9])
def test_largest_component_matches_scipy(threshold):
    maps, _ = varied_maps(np.random.default_rng(3), n=60)
    rng = np.random.default_rng(4)
    maps += [normalize_scoremap(rng.random((20, 30))) for _ in range(20)]  # many small components, ties
    twins = np.zeros((16, 24), np.float32)
    twins[2:5, 3:6] = twins[9:12, 15:18] = 1.0  # two components of equal area: the first in raster order
    maps.append(twins)
    for m in maps:
        assert largest_component_box(m, threshold) == scipy_box(m, threshold)
    assert largest_component_box(twins, 0.5) == (3, 2, 5, 4)


def test_zero_map_has_no_box():
    assert largest_component_box(np.zeros((8, 8), np.float32), 0.15) is None
    assert box_hits(None, np.array([[0, 0, 3, 3]])) == (False, 0.0)


def test_crop_box_by_hand():
    # 500x375 image, resize to 256x256, center crop 224 (offset 16)
    assert crop_box((100, 50, 400, 300), (500, 375), 256, 224) == (35, 18, 188, 188)
    assert crop_box((0, 0, 10, 10), (500, 375), 256, 224) == (0, 0, 0, 0)  # outside the crop: clipped
    assert crop_box((0, 0, 499, 374), (500, 375), 256, 224) == (0, 0, 223, 223)


def test_iou_must_exceed_half():
    gt = np.array([[0, 0, 19, 9]])
    assert box_hits((0, 0, 9, 9), gt) == (False, 0.5)  # exactly 0.5 (inclusive pixels) is a miss
    hit, iou = box_hits((0, 0, 10, 9), gt)
    assert hit and iou == pytest.approx(110 / 200)
    assert box_hits((0, 0, 9, 9), np.array([[50, 50, 60, 60], [0, 0, 9, 9]])) == (True, 1.0)  # best GT box
