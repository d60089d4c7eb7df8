"""Every threshold's contour boxes of a uint8 map at once, with union-find (numba-compiled).

What cv2.findContours(RETR_TREE) returns for the mask `image > L`, as boxes, is fixed by the
mask's connected components (checked against cv2 on thousands of random masks, and exactly
against the per-threshold loop in the tests):
- one outer contour per 8-connected foreground component, whose boundingRect is the
  component's bounding box;
- one hole contour per 4-connected background component that does not touch the image border,
  whose boundingRect is the hole's bounding box grown by one pixel on each side.

Lowering L only adds foreground pixels and raising it only adds background pixels, so one pass
over the pixels in value order, merging components as pixels arrive, yields the components of
all 256 levels; the tracing loop instead redoes the whole image at every threshold. The best IoU
of each level's boxes against the GT boxes is recorded as the pass goes. This gives
MaxBoxAccV2's per-threshold correctness; MaxBoxAcc (V1) needs cv2.contourArea of the largest
contour, which is not a function of the components, so V1 keeps tracing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

@njit(cache=True, nogil=True)
def _best_iou(x0: int, y0: int, x1: int, y1: int, gt: np.ndarray) -> float:
    """Inclusive-pixel IoU against each GT box, as iou_matrix computes it; the best one."""
    best = 0.0
    for g in range(gt.shape[0]):
        iw = max(0, min(x1, gt[g, 2]) - max(x0, gt[g, 0]) + 1)
        ih = max(0, min(y1, gt[g, 3]) - max(y0, gt[g, 1]) + 1)
        inter = iw * ih
        union = (x1 - x0 + 1) * (y1 - y0 + 1) + (gt[g, 2] - gt[g, 0] + 1) * (gt[g, 3] - gt[g, 1] + 1) - inter
        iou = inter / union if union > 0 else 0.0
        if iou > best:
            best = iou
    return best


@njit(cache=True, nogil=True)
def _sweep(image: np.ndarray, gt: np.ndarray, foreground: bool) -> np.ndarray:
    """Best IoU per level L in 0..255 over the outer boxes of `image > L` (foreground=True) or the
    hole boxes of the same masks (foreground=False); -1 where a level has no such box.

    Pixels live in a grid padded by one never-added pixel on each side, so neighbours need no
    bounds checks; arrays are int32 to halve the memory traffic of the random accesses.
    """
    height, width = image.shape
    pw = width + 2
    n = (height + 2) * pw
    # interior pixels bucketed by value (counting sort), as padded indices
    start = np.zeros(257, np.int32)
    for y in range(height):
        for x in range(width):
            start[image[y, x] + 1] += 1
    for v in range(256):
        start[v + 1] += start[v]
    order = np.empty(height * width, np.int32)
    fill = start[:256].copy()
    for y in range(height):
        for x in range(width):
            v = image[y, x]
            order[fill[v]] = (y + 1) * pw + x + 1
            fill[v] += 1
    if foreground:  # 8-connected foreground, as cv2 traces outer borders
        offsets = np.array([-pw - 1, -pw, -pw + 1, -1, 1, pw - 1, pw, pw + 1], np.int32)
    else:  # 4-connected background, as cv2 traces holes
        offsets = np.array([-pw, -1, 1, pw], np.int32)
    parent = np.full(n, -1, np.int32)  # -1: not in the set (yet, or ever for the padding)
    size = np.zeros(n, np.int32)
    bx0, by0, bx1, by1 = np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.int32)
    border = np.zeros(n, np.bool_)
    roots = np.empty(height * width, np.int32)
    n_roots = 0
    best = np.full(256, -1.0)
    for step in range(256):
        # foreground: L = 255 - step gains the pixels of value L + 1; background: L = step gains value L
        level = 255 - step if foreground else step
        value = level + 1 if foreground else level
        if value <= 255:
            for k in range(start[value], start[value + 1]):
                p = order[k]
                y, x = p // pw - 1, p % pw - 1
                a = -1  # the root p joins
                for d in range(offsets.shape[0]):
                    b = p + offsets[d]
                    if parent[b] < 0:
                        continue
                    while parent[b] != b:
                        parent[b] = parent[parent[b]]  # path halving
                        b = parent[b]
                    if a < 0:
                        a = b
                    elif a != b:  # p bridges two components: union by size
                        if size[a] < size[b]:
                            a, b = b, a
                        parent[b] = a
                        size[a] += size[b]
                        bx0[a], by0[a] = min(bx0[a], bx0[b]), min(by0[a], by0[b])
                        bx1[a], by1[a] = max(bx1[a], bx1[b]), max(by1[a], by1[b])
                        border[a] = border[a] or border[b]
                on_border = x == 0 or y == 0 or x == width - 1 or y == height - 1
                if a < 0:  # a new component
                    parent[p], size[p] = p, 1
                    bx0[p], by0[p], bx1[p], by1[p] = x, y, x, y
                    border[p] = on_border
                    roots[n_roots] = p
                    n_roots += 1
                else:
                    parent[p] = a
                    size[a] += 1
                    bx0[a], by0[a] = min(bx0[a], x), min(by0[a], y)
                    bx1[a], by1[a] = max(bx1[a], x), max(by1[a], y)
                    border[a] = border[a] or on_border
        # score this level's boxes, dropping merged roots from the list as we go
        kept, level_best = 0, -1.0
        for i in range(n_roots):
            r = roots[i]
            if parent[r] != r:
                continue
            roots[kept] = r
            kept += 1
            if foreground:  # boundingRect (x, y, w, h) -> (x, y, min(x + w, W - 1), min(y + h, H - 1))
                iou = _best_iou(bx0[r], by0[r], min(bx1[r] + 1, width - 1), min(by1[r] + 1, height - 1), gt)
            elif not border[r]:  # a hole: its contour runs on the foreground pixels around it
                iou = _best_iou(bx0[r] - 1, by0[r] - 1, min(bx1[r] + 2, width - 1), min(by1[r] + 2, height - 1), gt)
            else:
                continue
            if iou > level_best:
                level_best = iou
        n_roots = kept
        best[level] = level_best
    return best


def best_iou_by_level(image: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """(256,) best IoU over all contour boxes of `image > L`, for L = 0..255, against any GT box;
    a level without contours gets the box [0, 0, 0, 0], as wsolevaluation does."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    gt = np.ascontiguousarray(np.asarray(gt_boxes, dtype=np.int64).reshape(-1, 4))
    outer = _sweep(image, gt, True)
    holes = _sweep(image, gt, False)
    empty = _best_iou(0, 0, 0, 0, gt)
    return np.where(outer < 0, empty, np.maximum(outer, holes))
