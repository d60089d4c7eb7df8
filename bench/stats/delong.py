"""DeLong's variance of AUROC and the test for two correlated AUROCs on the same samples
(DeLong, DeLong and Clarke-Pearson 1988), with the midrank computation of the structural
components (Sun and Xu 2014): O(n log n) instead of all positive x negative pairs.

Positives are the in-distribution samples (a higher score means more in-distribution), as in
bench.metrics.ood; ties count one half, as in sklearn's roc_auc_score.
"""

from __future__ import annotations

import numpy as np
from scipy import special  # not scipy.stats: importing it costs a second


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks along the last axis, ties given the mean of their ranks (scipy's rankdata)."""
    x = np.atleast_2d(x)
    out = np.empty(x.shape)
    for k, row in enumerate(x):
        order = np.argsort(row, kind="mergesort")
        sorted_row = row[order]
        starts = np.flatnonzero(np.r_[True, sorted_row[1:] != sorted_row[:-1]])
        ends = np.r_[starts[1:], len(row)]
        mid = (starts + ends + 1) / 2.0  # the mean of ranks start+1 .. end
        out[k, order] = np.repeat(mid, ends - starts)
    return out


def components(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For k score vectors (k, m) positives and (k, n) negatives: the AUCs (k,) and the structural
    components V10 (k, m), each positive's share of negatives below it, and V01 (k, n), each
    negative's share of positives above it."""
    positive, negative = np.atleast_2d(positive).astype(float), np.atleast_2d(negative).astype(float)
    m, n = positive.shape[1], negative.shape[1]
    if m == 0 or n == 0:
        raise ValueError("AUROC needs at least one positive and one negative sample")
    ranks_all = _midranks(np.concatenate([positive, negative], axis=1))
    ranks_pos, ranks_neg = _midranks(positive), _midranks(negative)
    v10 = (ranks_all[:, :m] - ranks_pos) / n
    v01 = 1.0 - (ranks_all[:, m:] - ranks_neg) / m
    auc = v10.mean(axis=1)
    return auc, v10, v01


def covariance(v10: np.ndarray, v01: np.ndarray) -> np.ndarray:
    """DeLong's (k, k) covariance of the AUC estimates: S10 / m + S01 / n."""
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(v10), len(v10)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(v01), len(v01)))
    return s10 / m + s01 / n


def auc_interval(positive: np.ndarray, negative: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(AUC, lower, upper): the normal interval with DeLong's variance, clipped to [0, 1]."""
    auc, v10, v01 = components(positive, negative)
    se = float(np.sqrt(max(covariance(v10, v01)[0, 0], 0.0)))
    z = float(special.ndtri(0.5 + level / 2))
    return float(auc[0]), max(0.0, float(auc[0]) - z * se), min(1.0, float(auc[0]) + z * se)


def paired_test(positive_a: np.ndarray, negative_a: np.ndarray, positive_b: np.ndarray, negative_b: np.ndarray,
                level: float = 0.95) -> dict[str, float]:
    """AUC_a - AUC_b on the same samples (row j of a and of b is the same image): the difference,
    its standard error, its normal interval and the two-sided p-value of DeLong's z test."""
    auc, v10, v01 = components(np.stack([positive_a, positive_b]), np.stack([negative_a, negative_b]))
    cov = covariance(v10, v01)
    diff = float(auc[0] - auc[1])
    se = float(np.sqrt(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0)))
    z = float(special.ndtri(0.5 + level / 2))
    p = 1.0 if se == 0 else float(2 * special.ndtr(-abs(diff) / se))
    if se == 0 and diff != 0:
        p = 0.0
    return {"auc_a": float(auc[0]), "auc_b": float(auc[1]), "diff": diff, "se": se, "low": diff - z * se, "high": diff + z * se, "p": p}
