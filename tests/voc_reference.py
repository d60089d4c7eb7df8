"""The classic VOC evaluation, written as plainly as possible from its definition (one class at a
time, one detection at a time): the independent reference for bench's vectorised scorer, in the
tests and in benchmarks/voc_scorer.py."""

from __future__ import annotations

import numpy as np


def classic_ap(gt_list, det_image, det_label, det_score, det_boxes, num_classes, iou_threshold=0.5, use_07=True):
    """gt_list: per image (boxes (n,4), labels (n,), difficult (n,)). Returns per-class AP (fraction, nan without GT)."""
    aps = []
    for c in range(num_classes):
        records, npos = {}, 0
        for i, (boxes, labels, difficult) in enumerate(gt_list):
            keep = labels == c
            records[i] = {"bbox": boxes[keep], "difficult": difficult[keep], "det": [False] * int(keep.sum())}
            npos += int((~difficult[keep]).sum())
        sel = np.flatnonzero(det_label == c)
        order = sel[np.argsort(-det_score[sel], kind="stable")]
        tp, fp = [], []
        for d in order:
            r = records[int(det_image[d])]
            bb = det_boxes[d]
            ovmax, jmax = -np.inf, -1
            for j, g in enumerate(r["bbox"]):
                iw = max(min(bb[2], g[2]) - max(bb[0], g[0]) + 1.0, 0.0)
                ih = max(min(bb[3], g[3]) - max(bb[1], g[1]) + 1.0, 0.0)
                inter = iw * ih
                uni = (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0) + (g[2] - g[0] + 1.0) * (g[3] - g[1] + 1.0) - inter
                if inter / uni > ovmax:
                    ovmax, jmax = inter / uni, j
            if ovmax > iou_threshold:
                if not r["difficult"][jmax]:
                    if not r["det"][jmax]:
                        tp.append(1.0)
                        fp.append(0.0)
                        r["det"][jmax] = True
                    else:
                        tp.append(0.0)
                        fp.append(1.0)
            else:
                tp.append(0.0)
                fp.append(1.0)
        if npos == 0:
            aps.append(float("nan"))
            continue
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec = tp / npos
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        if use_07:
            ap = 0.0
            for t in np.arange(0.0, 1.1, 0.1):
                p = np.max(prec[rec >= t]) if np.sum(rec >= t) > 0 else 0.0
                ap += p / 11.0
        else:
            mrec = np.concatenate(([0.0], rec, [1.0]))
            mpre = np.concatenate(([0.0], prec, [0.0]))
            for i in range(mpre.size - 1, 0, -1):
                mpre[i - 1] = max(mpre[i - 1], mpre[i])
            i = np.where(mrec[1:] != mrec[:-1])[0]
            ap = float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
        aps.append(float(ap))
    return aps
