"""Pascal VOC detection AP, by the devkit's definition (the classic voc_eval), vectorised.

Per class: detections sorted by score (descending; equal scores keep their input order); each
is compared with the GT boxes of its image and class and takes the one of highest IoU (the
first of equal IoUs); IoU > 0.5 (strictly) with a GT that is not difficult and not yet matched
is a true positive, with a matched one a false positive (a duplicate), with a difficult GT
neither; IoU <= 0.5 or no GT is a false positive. Areas and intersections count pixels
inclusively (+1). Recall is over the non-difficult GT objects.

AP: VOC2007's 11-point interpolation (the paper's metric: the mean over recall 0, 0.1, ..., 1 of
the best precision at recall >= r) and the area under the interpolated curve (VOC2010+).
Classes without any non-difficult GT object have no AP and are left out of the means.
COCO-style AP/AP50/AP75 come from pycocotools itself (`coco_metrics`), difficult objects as crowd regions.

Vectorised: the candidate (detection, GT) pairs of all images come from one repeat/gather, the
best GT per detection from one segmented max, and "first detection to claim a GT" from one
unique over the score order; no Python loop over detections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass
class GroundTruth:
    boxes: np.ndarray  # (n, 4) x1 y1 x2 y2, inclusive pixels
    labels: np.ndarray  # (n,) class index
    difficult: np.ndarray  # (n,) bool


@dataclass
class Detections:
    image: np.ndarray  # (m,) index of the image in the GT list
    labels: np.ndarray  # (m,) class index
    scores: np.ndarray  # (m,)
    boxes: np.ndarray  # (m, 4) x1 y1 x2 y2


def ap_11_point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007: mean over r in {0, 0.1, ..., 1} of max precision at recall >= r (0 if none)."""
    ap = 0.0
    for r in np.arange(0.0, 1.1, 0.1):
        reached = precision[recall >= r]
        ap += (reached.max() if reached.size else 0.0) / 11.0  # summed in the devkit's order: identical floats
    return float(ap)


def ap_area(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+: area under the precision envelope, summed where recall changes."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    changed = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[changed + 1] - mrec[changed]) * mpre[changed + 1]))


def _pair_iou(det: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two (k, 4) arrays, +1 pixel convention."""
    iw = np.maximum(np.minimum(det[:, 2], gt[:, 2]) - np.maximum(det[:, 0], gt[:, 0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(det[:, 3], gt[:, 3]) - np.maximum(det[:, 1], gt[:, 1]) + 1.0, 0.0)
    inter = iw * ih
    union = (det[:, 2] - det[:, 0] + 1.0) * (det[:, 3] - det[:, 1] + 1.0) + (gt[:, 2] - gt[:, 0] + 1.0) * (gt[:, 3] - gt[:, 1] + 1.0) - inter
    return inter / union


def class_pr(gt_image: np.ndarray, gt_boxes: np.ndarray, gt_difficult: np.ndarray, det_image: np.ndarray, det_scores: np.ndarray,
             det_boxes: np.ndarray, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray, int]:
    """Recall and precision after each detection (in score order) for one class; and npos."""
    _, tp, fp, npos = class_flags(gt_image, gt_boxes, gt_difficult, det_image, det_scores, det_boxes, iou)
    tp_cum, fp_cum = np.cumsum(tp), np.cumsum(fp)
    recall = tp_cum / npos if npos else np.full(len(tp), np.nan)
    precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
    return recall, precision, npos


def class_flags(gt_image: np.ndarray, gt_boxes: np.ndarray, gt_difficult: np.ndarray, det_image: np.ndarray, det_scores: np.ndarray,
                det_boxes: np.ndarray, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One class's detections in score order (`order` indexes the input), whether each is a true
    positive and whether a false positive (one matched to a difficult object is neither), and npos.
    The flags depend only on the detection's own image, which is what lets a bootstrap over images
    reweight them (bench.stats.replicates.voc_map)."""
    npos = int((~gt_difficult).sum())
    order = np.argsort(-det_scores, kind="stable")
    det_image, det_boxes = det_image[order], det_boxes[order]
    nd = len(order)
    # GT grouped by image: the candidates of a detection are one contiguous run
    by_image = np.argsort(gt_image, kind="stable")
    gt_image, gt_boxes, gt_difficult = gt_image[by_image], gt_boxes[by_image], gt_difficult[by_image]
    n_images = int(max(det_image.max(initial=-1), gt_image.max(initial=-1))) + 1
    starts = np.searchsorted(gt_image, np.arange(n_images), side="left")
    counts = np.searchsorted(gt_image, np.arange(n_images), side="right") - starts
    per_det = counts[det_image] if nd else np.zeros(0, np.int64)
    pair_det = np.repeat(np.arange(nd), per_det)
    offsets = np.arange(len(pair_det)) - np.repeat(np.cumsum(per_det) - per_det, per_det)
    pair_gt = starts[det_image][pair_det] + offsets
    ious = _pair_iou(det_boxes[pair_det], gt_boxes[pair_gt])
    best = np.full(nd, -np.inf)
    np.maximum.at(best, pair_det, ious)
    # the first candidate reaching the best IoU is the matched GT (np.argmax's choice)
    at_best = np.flatnonzero(ious == best[pair_det])
    first = np.unique(pair_det[at_best], return_index=True)
    matched = np.full(nd, -1)
    matched[first[0]] = pair_gt[at_best[first[1]]]
    over = best > iou
    difficult_hit = over & np.append(gt_difficult, False)[matched]  # matched -1 (no GT) reads the appended False
    claim = over & ~difficult_hit
    tp = np.zeros(nd, bool)
    claimers = np.flatnonzero(claim)
    _, first_claim = np.unique(matched[claimers], return_index=True)  # in score order: the first claim wins
    tp[claimers[first_claim]] = True
    fp = ~tp & ~difficult_hit
    return order, tp, fp, npos


def voc_detection_ap(gt: Sequence[GroundTruth], dets: Detections, num_classes: int, iou: float = 0.5) -> dict[str, object]:
    """Per-class AP (11-point and area) and their means, in percent."""
    gt_image = np.concatenate([np.full(len(g.labels), i) for i, g in enumerate(gt)]) if gt else np.zeros(0, np.int64)
    gt_boxes = np.concatenate([g.boxes for g in gt]).reshape(-1, 4).astype(np.float64) if gt else np.zeros((0, 4))
    gt_labels = np.concatenate([g.labels for g in gt]).astype(np.int64) if gt else np.zeros(0, np.int64)
    gt_difficult = np.concatenate([g.difficult for g in gt]).astype(bool) if gt else np.zeros(0, bool)
    ap07, ap_all, npos_all = [], [], []
    for c in range(num_classes):
        g, d = gt_labels == c, dets.labels == c
        recall, precision, npos = class_pr(gt_image[g], gt_boxes[g], gt_difficult[g], dets.image[d].astype(np.int64),
                                           dets.scores[d].astype(np.float64), dets.boxes[d].astype(np.float64), iou)
        npos_all.append(npos)
        if npos == 0:
            ap07.append(float("nan"))
            ap_all.append(float("nan"))
        else:
            ap07.append(100 * ap_11_point(recall, precision))
            ap_all.append(100 * ap_area(recall, precision))
    scored = [i for i, n in enumerate(npos_all) if n > 0]
    return {
        "map_voc07": float(np.mean([ap07[i] for i in scored])) if scored else float("nan"),
        "map_area": float(np.mean([ap_all[i] for i in scored])) if scored else float("nan"),
        "ap_voc07": ap07,
        "ap_area": ap_all,
        "npos": npos_all,
    }


def coco_metrics(gt: Sequence[GroundTruth], dets: Detections, num_classes: int) -> dict[str, float]:
    """COCO-style AP, AP50, AP75 with pycocotools; boxes in COCO's [x, y, w, h] with the +1 of
    VOC's inclusive corners; difficult objects are crowd regions."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations = [], []
    for i, g in enumerate(gt):
        images.append({"id": i, "width": 1, "height": 1})
        for k, (box, label, difficult) in enumerate(zip(g.boxes, g.labels, g.difficult)):
            w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(label) + 1, "bbox": [float(box[0]), float(box[1]), float(w), float(h)],
                                "area": float(w * h), "iscrowd": int(difficult)})
    if not annotations or not len(dets.scores):
        return {"coco_ap": 0.0, "coco_ap50": 0.0, "coco_ap75": 0.0}
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations, "categories": [{"id": c + 1} for c in range(num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        results = coco.loadRes([{"image_id": int(i), "category_id": int(c) + 1, "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0] + 1), float(b[3] - b[1] + 1)], "score": float(s)}
                                for i, c, s, b in zip(dets.image, dets.labels, dets.scores, dets.boxes)])
        ev = COCOeval(coco, results, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"coco_ap": 100 * float(ev.stats[0]), "coco_ap50": 100 * float(ev.stats[1]), "coco_ap75": 100 * float(ev.stats[2])}


def detection_metrics(gt: Sequence[GroundTruth], dets: Detections, class_names: tuple[str, ...]) -> tuple[dict[str, float], dict[str, Any]]:
    """The detection tasks' metrics (VOC07 11-point and area mAP, COCO-style AP) and per-class details."""
    num_classes = len(class_names)
    voc = voc_detection_ap(gt, dets, num_classes)
    if not any(voc["npos"]):
        raise ValueError("the evaluation split has no (non-difficult) object to detect")
    nan_free = lambda v: None if v != v else v  # noqa: E731  JSON has no NaN: a class without GT has no AP
    voc["ap_voc07"], voc["ap_area"] = [nan_free(v) for v in voc["ap_voc07"]], [nan_free(v) for v in voc["ap_area"]]
    metrics = {"map_voc07": voc["map_voc07"], "map_area": voc["map_area"], **coco_metrics(gt, dets, num_classes)}
    per_class = {name: {"ap_voc07": a, "ap_area": b, "gt_objects": n} for name, a, b, n in zip(class_names, voc["ap_voc07"], voc["ap_area"], voc["npos"])}
    return metrics, {"per_class": per_class, "per_class_unit": "%", "classes_scored": sum(n > 0 for n in voc["npos"]),
                     "metric_notes": "map_voc07: VOC2007 11-point AP at IoU 0.5 (the paper's); map_area: area under the PR curve at IoU 0.5; coco_*: pycocotools AP@[.5:.95], AP50, AP75"}
