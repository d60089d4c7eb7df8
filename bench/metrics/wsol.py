"""Weakly supervised localization metrics, by wsolevaluation's definitions (Choe et al., CVPR 2020).

Conventions (all from wsolevaluation's evaluation.py / inference.py, see ../shared/reference):
- a score map is min-max normalised per image; a map with a NaN or a constant map becomes all zeros;
- it is quantised to uint8 by truncation, `(map * 255).astype(uint8)`;
- at CAM threshold t the foreground is `pixels > int(t * max(uint8 map))` (cv2 THRESH_BINARY);
- contours are cv2.findContours(RETR_TREE, CHAIN_APPROX_SIMPLE); no contour gives the box [0, 0, 0, 0];
- MaxBoxAcc (V1): the largest contour (cv2.contourArea) only, IoU >= 0.5;
  MaxBoxAccV2: every contour, the best IoU over boxes x GT boxes, IoU in {0.3, 0.5, 0.7};
- a box is (x, y, x + w, y + h) of cv2.boundingRect, with x1, y1 capped at width - 1, height - 1;
- IoU uses inclusive pixel coordinates (+1 on widths and heights); degenerate unions give 0;
- for each IoU threshold, one CAM threshold is chosen for the whole dataset (the best one).

Speed: a uint8 map has at most 256 distinct foregrounds. With all contours (V2), their boxes
follow from the connected components of every level, found in one union-find pass
(`level_sets`); with the largest contour (V1), each distinct foreground is traced once, however
fine the threshold grid (wsolevaluation traces one per threshold).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np


def normalize_scoremap(cam: np.ndarray) -> np.ndarray:
    """Per-image min-max to [0, 1]; NaN or constant maps give zeros (wsolevaluation's convention)."""
    cam = np.array(cam, dtype=np.float64 if cam.dtype == np.float64 else np.float32, copy=True)
    if np.isnan(cam).any() or cam.min() == cam.max():
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


def check_scoremap(scoremap: np.ndarray, name: str = "score map") -> None:
    """A valid map is a 2-D float array in [0, 1] without NaN."""
    if not isinstance(scoremap, np.ndarray) or scoremap.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {getattr(scoremap, 'shape', None)}")
    if scoremap.dtype.kind != "f":
        raise ValueError(f"{name} must be float, got {scoremap.dtype}")
    if np.isnan(scoremap).any():
        raise ValueError(f"{name} contains NaN")
    if scoremap.size and (scoremap.min() < 0 or scoremap.max() > 1):
        raise ValueError(f"{name} has values outside [0, 1]")


def cam_thresholds(interval: float) -> np.ndarray:
    """wsolevaluation's grid, np.arange(0, 1, interval)."""
    if not 0 < interval < 1:
        raise ValueError(f"the CAM threshold interval must be in (0, 1), got {interval}")
    return np.arange(0, 1, interval)


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of x0y0x1y1 boxes with inclusive pixel coordinates; degenerate unions give 0."""
    a = np.asarray(boxes_a, dtype=np.int64).reshape(-1, 4)[:, None, :]
    b = np.asarray(boxes_b, dtype=np.int64).reshape(-1, 4)[None, :, :]
    iw = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    ih = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def resize_box(box: tuple[int, int, int, int], image_size: tuple[int, int], size: tuple[int, int] = (224, 224)) -> tuple[int, int, int, int]:
    """A GT box from the image's (width, height) frame to the resized frame, truncated (wsolevaluation)."""
    (w, h), (nw, nh) = image_size, size
    x0, y0, x1, y1 = (float(v) for v in box)
    return int(x0 * nw / w), int(y0 * nh / h), int(x1 * nw / w), int(y1 * nh / h)


def _first_last(maxima: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each level, the first and last index whose maximum exceeds it (vectorised over levels)."""
    above = maxima[:, None] > levels[None, :]
    first = above.argmax(axis=0)
    last = len(maxima) - 1 - above[::-1].argmax(axis=0)
    return first, last


def best_iou_per_threshold(scoremap: np.ndarray, gt_boxes: np.ndarray, thresholds: np.ndarray, multi_contour: bool) -> np.ndarray:
    """For each CAM threshold, the best IoU between the map's boxes and any GT box.

    All contours (V2): from the connected components of every level at once (`level_sets`).
    The largest contour (V1): each distinct foreground (`image > level`) is traced once, on its
    bounding region plus a one-pixel margin of background (or the image border): the contours,
    their order and areas are those of the whole image, shifted.
    """
    import cv2

    image = (scoremap * 255).astype(np.uint8)
    height, width = image.shape
    levels = (np.asarray(thresholds) * image.max()).astype(np.int64)  # int() of positive values truncates
    if multi_contour:  # all contours: their boxes follow from the connected components of every level at once
        from bench.metrics.level_sets import best_iou_by_level

        return best_iou_by_level(image, gt_boxes)[levels]
    values = np.unique(image)
    # foreground = pixels > level; all levels between two consecutive pixel values give the same mask
    groups, inverse = np.unique(np.searchsorted(values, levels, side="right"), return_inverse=True)
    group_levels = np.where(groups > 0, values[np.maximum(groups - 1, 0)].astype(np.int64), -1)
    y_first, y_last = _first_last(image.max(axis=1), group_levels)
    x_first, x_last = _first_last(image.max(axis=0), group_levels)
    top = int(values[-1])
    rects = []  # (x, y, w, h) of the largest contour per distinct foreground; [0, 0, 0, 0] for an empty one
    for level, y0, y1, x0, x1 in zip(group_levels.tolist(), y_first.tolist(), y_last.tolist(), x_first.tolist(), x_last.tolist()):
        if level >= top:  # empty foreground: wsolevaluation's box [0, 0, 0, 0]
            rects.append((0, 0, 0, 0))
            continue
        y0 = y0 - 1 if y0 else 0
        x0 = x0 - 1 if x0 else 0
        crop = image[y0:y1 + 2, x0:x1 + 2]  # slicing past the end stops at the border
        mask = cv2.threshold(crop, level, 255, cv2.THRESH_BINARY)[1] if level >= 0 else np.full_like(crop, 255)
        contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea) if len(contours) > 1 else contours[0])  # V1: the largest
        rects.append((x + x0, y + y0, w, h))
    rects = np.array(rects, dtype=np.int64)
    # (x, y, w, h) -> (x, y, x + w, y + h) capped at the last pixel; the no-contour rows stay [0, 0, 0, 0]
    x1s = np.minimum(rects[:, 0] + rects[:, 2], width - 1)
    y1s = np.minimum(rects[:, 1] + rects[:, 3], height - 1)
    all_boxes = np.stack([rects[:, 0], rects[:, 1], x1s, y1s], axis=1)
    return iou_matrix(all_boxes, gt_boxes).max(axis=1)[inverse]


@dataclass
class BoxAccuracy:
    """Accumulates per-threshold correctness; MaxBoxAcc per IoU threshold, each with its own best CAM threshold."""

    thresholds: np.ndarray
    iou_thresholds: tuple[int, ...] = (30, 50, 70)
    multi_contour: bool = True
    count: int = 0
    correct: dict[int, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.correct = {t: np.zeros(len(self.thresholds), np.int64) for t in self.iou_thresholds}

    def add(self, scoremap: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
        best = best_iou_per_threshold(scoremap, gt_boxes, self.thresholds, self.multi_contour)
        self.add_best(best)
        return best

    def add_best(self, best: np.ndarray, hit: bool = True) -> None:
        """One image's best IoU per threshold; hit=False counts it wrong at every threshold (a
        wrong class under top-1 scoring)."""
        for t in self.iou_thresholds:
            self.correct[t] += (best >= t / 100) & hit
        self.count += 1

    def add_many(self, scoremaps: Iterable[np.ndarray], gt_boxes: Iterable[np.ndarray], threads: int = 1) -> list[np.ndarray]:
        """add() over many maps, returning each one's best IoU per threshold; the scorers release
        the GIL (OpenCV while tracing, numba while sweeping), so threads run in parallel."""
        pairs = list(zip(scoremaps, gt_boxes))
        if threads <= 1:
            return [self.add(s, g) for s, g in pairs]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            bests = list(pool.map(lambda sg: best_iou_per_threshold(sg[0], sg[1], self.thresholds, self.multi_contour), pairs))
        for best in bests:
            self.add_best(best)
        return bests

    def result(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("no score maps were scored")
        out: dict[str, float] = {}
        for t in self.iou_thresholds:
            acc = self.correct[t] * 100.0 / self.count
            out[f"maxboxacc@{t}"] = float(acc.max())
            out[f"best_cam_threshold@{t}"] = float(self.thresholds[int(acc.argmax())])
        out["maxboxacc_mean"] = float(np.mean([out[f"maxboxacc@{t}"] for t in self.iou_thresholds]))
        return out


def max_box_acc(scoremaps: list[np.ndarray], gt_boxes: list[np.ndarray], interval: float = 0.001) -> float:
    """MaxBoxAcc (V1): largest contour, IoU 0.5."""
    acc = BoxAccuracy(cam_thresholds(interval), (50,), multi_contour=False)
    for s, g in zip(scoremaps, gt_boxes):
        acc.add(s, g)
    return acc.result()["maxboxacc@50"]


def max_box_acc_v2(scoremaps: list[np.ndarray], gt_boxes: list[np.ndarray], interval: float = 0.001) -> float:
    """MaxBoxAccV2: all contours, mean over IoU 0.3 / 0.5 / 0.7."""
    acc = BoxAccuracy(cam_thresholds(interval), (30, 50, 70), multi_contour=True)
    for s, g in zip(scoremaps, gt_boxes):
        acc.add(s, g)
    return acc.result()["maxboxacc_mean"]


# --- The CutMix paper's protocol (CAM paper style): one fixed threshold, the largest component ---


def largest_component_box(scoremap: np.ndarray, threshold: float) -> tuple[int, int, int, int] | None:
    """Tight (x0, y0, x1, y1) inclusive box around the largest 8-connected component of
    `scoremap >= threshold * max(scoremap)`; None for an all-zero map (NaN or constant maps
    normalise to zeros), which then counts as not localized. Ties go to the component met
    first in raster order."""
    import cv2

    peak = float(scoremap.max()) if scoremap.size else 0.0
    if not peak > 0:
        return None
    foreground = (scoremap >= threshold * peak).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(foreground, connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    candidates = np.flatnonzero(areas == areas.max()) + 1
    if len(candidates) > 1:  # cv2's label order is not promised to be raster order: break ties explicitly
        flat = labels.ravel()
        first = {int(c): int(np.argmax(flat == c)) for c in candidates}
        best = min(first, key=first.get)
    else:
        best = int(candidates[0])
    x, y, w, h = (int(v) for v in stats[best, :4])
    return x, y, x + w - 1, y + h - 1


def crop_box(box: tuple[float, float, float, float], image_size: tuple[int, int], resize: int, crop: int) -> tuple[int, int, int, int]:
    """A GT box into the frame of resize-to-(resize, resize) then center-crop `crop`: scaled and
    truncated as `resize_box`, shifted by the crop offset, clipped to the crop."""
    x0, y0, x1, y1 = resize_box(box, image_size, (resize, resize))
    offset = int(round((resize - crop) / 2.0))  # torchvision's CenterCrop offset
    return tuple(int(min(max(v - offset, 0), crop - 1)) for v in (x0, y0, x1, y1))  # type: ignore[return-value]


def box_hits(box: tuple[int, int, int, int] | None, gt_boxes: np.ndarray, iou: float = 0.5) -> tuple[bool, float]:
    """(IoU > iou with any GT box, the best IoU); no box is a miss with IoU 0."""
    if box is None:
        return False, 0.0
    best = float(iou_matrix(np.asarray([box]), gt_boxes).max())
    return best > iou, best


# --- PxAP: pixel-wise average precision against masks (wsolevaluation's MaskEvaluator) ---


@dataclass
class PixelAP:
    """Histograms of score values at GT-foreground and GT-background pixels (ignore pixels, 255 in
    the mask, left out), pooled over the dataset; PxAP is the area under the resulting
    precision-recall curve, one point per CAM threshold, x100.

    Bins are [t_0, t_1), ..., [t_last, 1), [1, 2), [2, 3) with the thresholds t as left edges,
    so a point of the curve counts the pixels with score >= t (np.histogram's edges, as
    wsolevaluation sets them)."""

    thresholds: np.ndarray
    positive: np.ndarray = field(init=False)
    negative: np.ndarray = field(init=False)
    count: int = 0

    def __post_init__(self) -> None:
        self.edges = np.append(self.thresholds, [1.0, 2.0, 3.0])
        self.positive = np.zeros(len(self.edges) - 1, np.int64)
        self.negative = np.zeros(len(self.edges) - 1, np.int64)

    def add(self, scoremap: np.ndarray, gt_mask: np.ndarray) -> None:
        """gt_mask: 1 foreground, 0 background, 255 ignore, in the score map's frame."""
        if gt_mask.shape != scoremap.shape:
            raise ValueError(f"mask of shape {gt_mask.shape} for a score map of shape {scoremap.shape}")
        self.positive += np.histogram(scoremap[gt_mask == 1], bins=self.edges)[0]
        self.negative += np.histogram(scoremap[gt_mask == 0], bins=self.edges)[0]
        self.count += 1

    def result(self) -> dict[str, float]:
        tp = self.positive[::-1].cumsum()  # pixels with score >= each edge, from the highest edge down
        fp = self.negative[::-1].cumsum()
        if tp[-1] == 0:
            raise ValueError("no foreground pixel in any mask")
        if (tp + fp)[-1] == 0:
            raise ValueError("no pixel to score")
        precision = np.divide(tp, tp + fp, out=np.zeros(len(tp)), where=(tp + fp) > 0)
        recall = tp / tp[-1]
        scored = (tp + fp)[1:] > 0  # points with no predicted pixel are left out, as wsolevaluation does
        pxap = float((precision[1:] * np.diff(recall))[scored].sum() * 100)
        return {"pxap": pxap, "images": self.count}


def load_gt_mask(mask_paths: list[Path], ignore_path: Path | None, size: tuple[int, int]) -> np.ndarray:
    """wsolevaluation's GT mask in a (width, height) frame: the union of the instance masks (each
    grey PNG resized with nearest neighbour, > 0.5), and 255 on the ignore mask minus the foreground."""
    import cv2

    def read(path: Path) -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise ValueError(f"cannot read mask {path}")
        return cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_NEAREST) > 0.5

    foreground = np.logical_or.reduce([read(p) for p in mask_paths])
    ignore = read(ignore_path) & ~foreground if ignore_path is not None else np.zeros_like(foreground)
    return foreground.astype(np.uint8) + 255 * ignore.astype(np.uint8)
