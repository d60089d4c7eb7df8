"""Metrics recomputed under resampling weights, from per-sample sufficient statistics.

Each function takes a weight matrix W (replicates, units) (integer counts from
bench.stats.bootstrap; a row of ones gives the metric itself) and returns one value per
replicate. A replicate equals the real scorer run on the resampled list of samples (each unit
repeated as often as its weight): tests/test_stats.py checks that for every function here.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import sparse


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The mean of a per-unit value (a 0/1 correctness, a per-image score) in every replicate."""
    return (weights @ np.asarray(values, dtype=float)) / weights.sum(axis=1)


def hit_matrix(runs: Sequence[Sequence[Sequence[int]]], n_thresholds: int) -> sparse.csr_matrix:
    """Per image, the CAM threshold indices where its box hits, as [start, end) runs, turned into
    a sparse (images, thresholds + 1) matrix of +1 at each start and -1 at each end: the cumulative
    sum along thresholds of W @ it counts the hits at every threshold."""
    rows, cols, vals = [], [], []
    for i, image_runs in enumerate(runs):
        for start, end in image_runs:
            rows += [i, i]
            cols += [int(start), int(end)]
            vals += [1, -1]
    return sparse.csr_matrix((np.array(vals, np.int64), (np.array(rows, np.int64), np.array(cols, np.int64))), shape=(len(runs), n_thresholds + 1))


def max_box_acc(hits: Sequence[sparse.csr_matrix], weights: np.ndarray) -> np.ndarray:
    """MaxBoxAcc of each replicate, the max over CAM thresholds re-taken inside the replicate
    (the threshold choice is part of the statistic), averaged over the IoU thresholds given (one
    hit matrix per IoU: MaxBoxAcc with one, MaxBoxAccV2 with 30/50/70), in percent."""
    total = weights.sum(axis=1).astype(float)
    per_iou = []
    for h in hits:
        counts = np.cumsum(np.asarray((h.T @ weights.T.astype(np.int64))), axis=0)[:-1]  # (thresholds, replicates)
        per_iou.append(100.0 * counts.max(axis=0) / total)
    return np.mean(per_iou, axis=0)


def runs_of(hit: np.ndarray) -> list[list[int]]:
    """A boolean vector over thresholds as its [start, end) runs of True (what samples files keep)."""
    edges = np.diff(np.concatenate(([0], hit.astype(np.int8), [0])))
    return [[int(s), int(e)] for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))]


def _ap_11_point(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """VOC2007 11-point AP of (replicates, detections) curves: the devkit's mean over r of the best
    precision at recall >= r (recall is non-decreasing along detections)."""
    best_after = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    best_after = np.concatenate([best_after, np.zeros((len(precision), 1))], axis=1)
    ap = np.zeros(len(precision))
    for r in np.arange(0.0, 1.1, 0.1):
        first = (recall < r).sum(axis=1)  # the first detection with recall >= r (or none: 0)
        ap += best_after[np.arange(len(precision)), first] / 11.0
    return ap


def _ap_area(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Area under the precision envelope, per replicate (VOC2010+)."""
    b = len(recall)
    mrec = np.concatenate([np.zeros((b, 1)), recall, np.ones((b, 1))], axis=1)
    mpre = np.concatenate([np.zeros((b, 1)), precision, np.zeros((b, 1))], axis=1)
    mpre = np.maximum.accumulate(mpre[:, ::-1], axis=1)[:, ::-1]
    return np.sum((mrec[:, 1:] - mrec[:, :-1]) * mpre[:, 1:], axis=1)


def voc_map(classes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], gt_counts: np.ndarray, weights: np.ndarray, area: bool = False) -> np.ndarray:
    """VOC mAP (11-point, or the area with area=True) in percent, per replicate. `classes`: per
    class, its detections in score order (bench.metrics.voc.class_flags) as (image, tp, fp); a
    detection matched to a difficult object is neither. `gt_counts` (images, classes): the
    non-difficult objects. Matching is per image, so resampling images reweights the flags and
    the counts; a class whose objects all drop out of a replicate leaves its mean, as in the scorer.

    Only the points at true positives are formed: a false positive lowers precision at an
    unchanged recall, so the true positive before it dominates it in both APs (the same floats
    as the full curve, as the tests check). The false positives between consecutive true
    positives are summed per image first, a sparse product, so the cost grows with the true
    positives, not with the (often hundreds of) detections per image."""
    npos = weights @ gt_counts  # (replicates, classes)
    aps = np.full(npos.shape, np.nan)
    eps = np.finfo(np.float64).eps
    weights_t = weights.T.astype(float)  # (images, replicates), shared by every class
    for c, (image, tp, fp) in enumerate(classes):
        scored = npos[:, c] > 0
        if not scored.any():
            continue
        segment = np.cumsum(tp) - tp  # a detection's segment: the true positives before it
        n_tp = int(tp.sum())
        counts = sparse.csr_matrix((np.ones(int(fp.sum())), (segment[fp], image[fp])), shape=(n_tp + 1, len(weights_t)))
        fp_cum = np.cumsum(np.asarray(counts @ weights_t).T, axis=1)[scored][:, :n_tp]  # FPs before each true positive
        tp_cum = np.cumsum(weights[scored][:, image[tp]], axis=1, dtype=float)
        recall = tp_cum / npos[scored, c][:, None]
        precision = tp_cum / np.maximum(tp_cum + fp_cum, eps)
        aps[scored, c] = 100 * (_ap_area(recall, precision) if area else _ap_11_point(recall, precision))
    # the mean over the classes scored in each replicate, summed as the scorer sums them
    return np.array([float(np.mean(row[~np.isnan(row)])) if (~np.isnan(row)).any() else np.nan for row in aps])


def ece(confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray, n_bins: int = 15) -> np.ndarray:
    """ECE in percent per replicate (bench.metrics.calibration's bins: (m/M, (m+1)/M], the first
    also 0): the sum over bins of |weighted correct - weighted confidence| over the total weight."""
    confidence = np.asarray(confidence, np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    gap = np.zeros((len(confidence), n_bins))
    gap[np.arange(len(confidence)), index] = np.asarray(correct, np.float64) - confidence
    return 100.0 * np.abs(weights @ gap).sum(axis=1) / weights.sum(axis=1)


def auroc(positive: np.ndarray, negative: np.ndarray, w_pos: np.ndarray, w_neg: np.ndarray) -> np.ndarray:
    """AUROC per replicate, ties one half (sklearn's roc_auc_score on the resampled lists): the
    weighted share of (positive, negative) pairs in which the positive scores higher."""
    return _auroc(_Tail(positive, w_pos), negative, w_neg)


def _auroc(positive: "_Tail", negative: np.ndarray, w_neg: np.ndarray) -> np.ndarray:
    cum = positive.prefix
    lo, hi = np.searchsorted(positive.sorted, negative, side="left"), np.searchsorted(positive.sorted, negative, side="right")
    total = cum[:, -1:]
    above = (total - cum[:, hi]) + 0.5 * (cum[:, hi] - cum[:, lo])  # (replicates, negatives)
    return (above * w_neg).sum(axis=1) / (total[:, 0] * w_neg.sum(axis=1))


def auroc_mean(positive: np.ndarray, negatives: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The mean over OOD sets of each set's AUROC against one in-distribution set, per replicate:
    `weights` holds the in-distribution units first, then each set's (a stratified resample, the
    in-distribution set drawn once per replicate for every set)."""
    m = len(positive)
    tail = _Tail(positive, weights[:, :m])  # the in-distribution set's cumulative weights, once for every set
    out, start = [], m
    for neg in negatives:
        out.append(_auroc(tail, neg, weights[:, start:start + len(neg)]))
        start += len(neg)
    return np.mean(out, axis=0)


def corruption_errors(wrong: np.ndarray, present: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Top-1 error (percent) of every corruption x severity cell per replicate, from (sources,
    cells) 0/1 errors and presence: a cluster bootstrap, each source image carrying all its cells."""
    return 100.0 * (weights @ (wrong * present)) / (weights @ present)


def mce(wrong: np.ndarray, present: np.ndarray, cells: Sequence[tuple[str, int]], weights: np.ndarray, what: str = "mce",
        clean_wrong: np.ndarray | None = None) -> np.ndarray:
    """mCE (or the mean error over the 15 benchmark corruptions, what='mean_err_15', or relative mCE,
    what='relative_mce', with each source image's clean 0/1 error) per replicate,
    bench.metrics.corruption's definition: each corruption's mean over severities 1-5, over AlexNet's."""
    from bench.metrics.corruption import ALEXNET_CLEAN_ERR, ALEXNET_ERR, CORRUPTIONS

    errors = corruption_errors(wrong, present, weights)
    clean = None if clean_wrong is None else 100.0 * (weights @ clean_wrong) / weights.sum(axis=1)
    column = {cell: k for k, cell in enumerate(cells)}
    per = []
    for c in CORRUPTIONS:
        mean = sum(errors[:, column[(c, s)]] for s in (1, 2, 3, 4, 5)) / 5
        if what == "relative_mce":
            per.append((mean - clean) / (100 * (ALEXNET_ERR[c] - ALEXNET_CLEAN_ERR)) * 100)
        else:
            per.append(mean / ALEXNET_ERR[c] if what == "mce" else mean)
    return sum(per) / len(CORRUPTIONS)


def bleu(stats: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """Corpus BLEU-n (a fraction) per replicate from per-image counts [test length, closest
    reference length, guessed 1..4-grams, matching 1..4-grams], summed with the weights, then
    pycocoevalcap's BleuScorer formula (its tiny and small constants, the brevity penalty below a
    length ratio of 1), in its order of operations."""
    small, tiny = 1e-9, 1e-15
    totals = weights.astype(np.float64) @ np.asarray(stats, np.float64)  # integer sums, exact in float64
    value = np.ones(len(weights))
    for k in range(n):
        value = value * (totals[:, 6 + k] + tiny) / (totals[:, 2 + k] + small)
    value = value ** (1.0 / n)
    ratio = (totals[:, 0] + tiny) / (totals[:, 1] + small)
    return np.where(ratio < 1, value * np.exp(1 - 1 / np.where(ratio < 1, ratio, 1.0)), value)


OOD_RATES = ("tnr_at_tpr95", "detection_acc", "aupr_in", "aupr_out", "fpr_at_tpr95", "fpr_at_tpr95_ood")


def ood_rates(positive: np.ndarray, negative: np.ndarray, w_pos: np.ndarray, w_neg: np.ndarray,
              which: Sequence[str] = OOD_RATES) -> dict[str, np.ndarray]:
    """bench.metrics.ood's threshold metrics named in `which` (of OOD_RATES, fractions) per
    replicate, from one pass of weighted counts at the cuts of the full sample's distinct scores: a
    cut whose score no resampled sample holds repeats its neighbour's counts, which none of these
    metrics sees (ODIN's width-weighted TNR merges the two score intervals; the trapezoids and
    precision steps gain zero), so a replicate equals the scorer on the resampled lists (in floats,
    where the scorer keeps exact fractions)."""
    return _rates(_Tail(positive, w_pos), _Tail(negative, w_neg), which)


class _Tail:
    """Per replicate, the weighted count of samples scoring at or above any cut value, from one
    weighted cumulative sum: built once for the in-distribution set and read at every OOD set's cuts."""

    def __init__(self, scores: np.ndarray, w: np.ndarray):
        order = np.argsort(scores, kind="mergesort")
        self.sorted = np.asarray(scores, float)[order]
        self.prefix = np.concatenate([np.zeros((len(w), 1)), np.cumsum(w[:, order], axis=1, dtype=float)], axis=1)

    def at(self, values: np.ndarray) -> np.ndarray:  # (replicates, cuts + 1): the cuts, then one above all scores
        first = np.searchsorted(self.sorted, values, side="left")
        return np.concatenate([self.prefix[:, -1:] - self.prefix[:, first], np.zeros((len(self.prefix), 1))], axis=1)


def _rates(positive: _Tail, negative: _Tail, which: Sequence[str]) -> dict[str, np.ndarray]:
    from bench.metrics.ood import TPR_WINDOW

    unknown = set(which) - set(OOD_RATES)
    if unknown:
        raise ValueError(f"unknown OOD metric {sorted(unknown)[0]}")
    values = np.unique(np.concatenate([positive.sorted, negative.sorted]))
    tp, fp = positive.at(values), negative.at(values)
    n_in, n_out = tp[:, :1], fp[:, :1]
    tpr = tp / n_in
    rows = np.arange(len(tp))
    out = {}
    if {"fpr_at_tpr95", "tnr_at_tpr95"} & set(which):
        last95 = (tpr >= 0.95).sum(axis=1) - 1  # tpr falls along the cuts: the last cut keeping 95% of ID
        out["fpr_at_tpr95"] = fp[rows, last95] / n_out[:, 0]
    if "tnr_at_tpr95" in which:
        widths = np.concatenate([[0.0], np.diff(values), [0.0]])
        weight = ((tpr >= TPR_WINDOW[0]) & (tpr <= TPR_WINDOW[1])) * widths
        total = weight.sum(axis=1)
        windowed = (weight * fp).sum(axis=1) / np.where(total > 0, total, 1) / n_out[:, 0]
        out["tnr_at_tpr95"] = 1 - np.where(total > 0, windowed, out["fpr_at_tpr95"])
    if "detection_acc" in which:
        errors = (n_in - tp) * n_out + fp * n_in
        out["detection_acc"] = 1 - errors.min(axis=1) / (2 * n_in[:, 0] * n_out[:, 0])

    def average_precision(hits: np.ndarray, misses: np.ndarray, n_pos: np.ndarray) -> np.ndarray:  # cuts from the strictest
        accepted = hits + misses
        precision = np.where(accepted > 0, hits / np.where(accepted > 0, accepted, 1), 0.0)
        gain = np.diff(np.concatenate([np.zeros((len(hits), 1)), hits], axis=1), axis=1) / n_pos
        return (gain * precision).sum(axis=1)

    if "aupr_in" in which:
        out["aupr_in"] = average_precision(tp[:, ::-1], fp[:, ::-1], n_in)
    rej_out, rej_in = n_out - fp, n_in - tp
    if "aupr_out" in which:
        out["aupr_out"] = average_precision(rej_out, rej_in, n_out)
    if "fpr_at_tpr95_ood" in which:
        out["fpr_at_tpr95_ood"] = rej_in[rows, np.argmax(rej_out / n_out >= 0.95, axis=1)] / n_in[:, 0]
    return {k: out[k] for k in which}


def ood_rate(positive: np.ndarray, negative: np.ndarray, w_pos: np.ndarray, w_neg: np.ndarray, metric: str) -> np.ndarray:
    """One threshold metric of ood_rates."""
    return ood_rates(positive, negative, w_pos, w_neg, (metric,))[metric]


def ood_rates_mean(positive: np.ndarray, negatives: Sequence[np.ndarray], weights: np.ndarray,
                   which: Sequence[str] = OOD_RATES) -> dict[str, np.ndarray]:
    """The mean over OOD sets of each of ood_rates, weights laid out as for auroc_mean: the
    in-distribution samples first, then each set's."""
    m = len(positive)
    tail = _Tail(positive, weights[:, :m])
    per_set, start = [], m
    for neg in negatives:
        per_set.append(_rates(tail, _Tail(neg, weights[:, start:start + len(neg)]), which))
        start += len(neg)
    return {k: np.mean([d[k] for d in per_set], axis=0) for k in which}


def ood_rate_mean(positive: np.ndarray, negatives: Sequence[np.ndarray], weights: np.ndarray, metric: str) -> np.ndarray:
    """One threshold metric of ood_rates_mean."""
    return ood_rates_mean(positive, negatives, weights, (metric,))[metric]
