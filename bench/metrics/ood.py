"""Out-of-distribution detection metrics from two score arrays. Pure functions.

Scores are in-distribution scores: higher means "looks in-distribution" (max softmax
probability, energy's -E, max logit). Every metric comes from one pass over the cuts: the
thresholds between consecutive distinct scores, from below all (everything accepted as ID) to
above all (nothing accepted). A sample is accepted as ID at a cut when its score is at or above
it, so an ID and an OOD sample with equal scores are always on the same side. This is the limit
of ODIN's threshold sweep as its grid gets finer (a grid point never lands exactly on a score).

Conventions, per metric (all in percent):
- tnr_at_tpr95: ODIN's, in-distribution positive (the CutMix paper's Table 12): 1 - the mean FPR
  over the thresholds whose TPR lies in [0.9495, 0.9505], each cut weighted by the width of its
  score interval, as ODIN's evenly spaced grid weighs it. When no cut lies there (fewer than
  ~2,000 ID samples), the cut with the smallest TPR of at least 0.95.
- detection_acc: ODIN's, 1 - min over cuts of (P(ID rejected) + P(OOD accepted)) / 2: equal
  priors whatever the set sizes.
- auroc: area under the ROC curve, ties counted one half (scikit-learn's roc_auc_score); the same
  whichever class is positive.
- aupr_in / aupr_out: average precision (scikit-learn's average_precision_score, not the
  trapezoid), with ID positive (scores as they are) / OOD positive (scores negated). Depends on
  the ID:OOD ratio.
- fpr_at_tpr95: in-distribution positive, the convention of most later papers (energy, outlier
  exposure): the share of OOD accepted at the highest cut that keeps at least 95 % of ID.
- fpr_at_tpr95_ood: OpenOOD v1.5's, OOD positive: the share of ID rejected at the lowest cut that
  rejects at least 95 % of OOD.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

TPR_WINDOW = (0.9495, 0.9505)  # ODIN's calMetric.py
METRICS = ("tnr_at_tpr95", "detection_acc", "auroc", "aupr_in", "aupr_out", "fpr_at_tpr95", "fpr_at_tpr95_ood")
CONVENTIONS = {
    "tnr_at_tpr95": "ODIN (facebookresearch/odin calMetric.py), ID positive: 1 - mean FPR over the thresholds with TPR in [0.9495, 0.9505], "
                    "each cut weighted by its score interval's width as ODIN's even grid weighs it (none in the window: the cut with the smallest TPR >= 0.95)",
    "detection_acc": "ODIN, 1 - min over cuts of (P(ID rejected) + P(OOD accepted)) / 2",
    "auroc": "area under the ROC curve, ties count 1/2 (sklearn roc_auc_score); positive class does not matter",
    "aupr_in": "average precision with ID positive, scores as they are (sklearn average_precision_score)",
    "aupr_out": "average precision with OOD positive, scores negated (sklearn average_precision_score)",
    "fpr_at_tpr95": "ID positive (energy / outlier-exposure papers): share of OOD accepted at the highest cut keeping >= 95% of ID",
    "fpr_at_tpr95_ood": "OOD positive (OpenOOD v1.5): share of ID rejected at the lowest cut rejecting >= 95% of OOD",
}
CUTS = "a sample is accepted as ID when its score is >= the cut; cuts lie between consecutive distinct scores, so equal ID and OOD scores are never split"


def check_scores(scores: Any, what: str) -> np.ndarray:
    """A 1-D float64 array of finite scores, or ValueError naming what is wrong."""
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim != 1:
        a = a.reshape(-1) if a.ndim == 2 and 1 in a.shape else a
    if a.ndim != 1:
        raise ValueError(f"{what} scores must be one score per sample (1-D), got shape {tuple(np.shape(scores))}")
    if a.size == 0:
        raise ValueError(f"{what} scores are empty")
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{what} scores have {int(bad.sum())} non-finite value(s) (NaN or inf), the first at position {int(np.flatnonzero(bad)[0])}")
    return a


def cut_counts(in_scores: np.ndarray, out_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct scores ascending, ID count >= each, OOD count >= each), with a last entry for the
    cut above all (0, 0). Cut k accepts the samples scored >= values[k]."""
    values = np.unique(np.concatenate([in_scores, out_scores]))
    tp = len(in_scores) - np.searchsorted(np.sort(in_scores), values, side="left")
    fp = len(out_scores) - np.searchsorted(np.sort(out_scores), values, side="left")
    return values, np.append(tp, 0).astype(np.int64), np.append(fp, 0).astype(np.int64)


def _average_precision(tp: np.ndarray, fp: np.ndarray, n_pos: int) -> float:
    """sum over cuts (from the strictest) of (recall gained) x precision; tp, fp ascending in leniency."""
    accepted = tp + fp
    keep = accepted > 0
    precision = np.where(keep, tp / np.where(keep, accepted, 1), 0.0)
    recall_gain = np.diff(np.concatenate([[0], tp])) / n_pos
    return float(np.sum(recall_gain * precision))


def ood_metrics(in_scores: Any, out_scores: Any) -> dict[str, float]:
    """Every metric of METRICS, in percent, for one ID / OOD pair of score arrays."""
    ins = check_scores(in_scores, "in-distribution")
    outs = check_scores(out_scores, "out-of-distribution")
    n_in, n_out = len(ins), len(outs)
    values, tp, fp = cut_counts(ins, outs)  # cuts from the most lenient (all accepted) to none accepted
    tpr = tp / n_in

    window = np.flatnonzero((tpr >= TPR_WINDOW[0]) & (tpr <= TPR_WINDOW[1]))
    if len(window):
        # ODIN's grid puts points in each cut's score interval (values[k-1], values[k]] in proportion
        # to its width: its mean FPR is width-weighted. Exact in fractions (the window holds few cuts;
        # never cut 0 or the last, whose TPR is 1 and 0).
        widths = [Fraction(float(values[k])) - Fraction(float(values[k - 1])) for k in window]
        fpr95_odin = sum(w * int(fp[k]) for w, k in zip(widths, window)) / (sum(widths) * n_out)
    else:
        fpr95_odin = Fraction(int(fp[np.flatnonzero(tpr >= 0.95)[-1]]), n_out)
    # detection error as one integer numerator per cut over 2 n_in n_out
    errors = (n_in - tp) * n_out + fp * n_in
    detection_err = Fraction(int(errors.min()), 2 * n_in * n_out)
    # the ROC from no acceptance to full acceptance: trapezoids (ties give the diagonal's half)
    order = slice(None, None, -1)
    auroc = float(np.sum(np.diff(fp[order]) * (tp[order][1:] + tp[order][:-1]))) / (2 * n_in * n_out)
    aupr_in = _average_precision(tp[order], fp[order], n_in)
    # OOD positive, scores negated: accepted as OOD = score <= cut; from the strictest (lowest) cut up
    rej_out = n_out - fp  # OOD rejected (score < values[k]) at cut k, ascending in k
    rej_in = n_in - tp
    aupr_out = _average_precision(rej_out, rej_in, n_out)
    fpr95 = Fraction(int(fp[np.flatnonzero(tpr >= 0.95)[-1]]), n_out)
    fpr95_ood = Fraction(int(rej_in[np.flatnonzero(rej_out / n_out >= 0.95)[0]]), n_in)
    # ratios of counts are exact rationals: one rounding to float, so 92 of 100 gives 8.0, not 7.9999999999999964
    return {
        "tnr_at_tpr95": float(100 * (1 - fpr95_odin)),
        "detection_acc": float(100 * (1 - detection_err)),
        "auroc": 100.0 * auroc,
        "aupr_in": 100.0 * aupr_in,
        "aupr_out": 100.0 * aupr_out,
        "fpr_at_tpr95": float(100 * fpr95),
        "fpr_at_tpr95_ood": float(100 * fpr95_ood),
    }


def roc_points(in_scores: Any, out_scores: Any, max_points: int = 2000) -> dict[str, list[float]]:
    """(FPR, TPR) of the cuts, thinned to at most max_points for plots."""
    ins, outs = check_scores(in_scores, "in-distribution"), check_scores(out_scores, "out-of-distribution")
    _, tp, fp = cut_counts(ins, outs)
    tpr, fpr = (tp / len(ins))[::-1], (fp / len(outs))[::-1]
    if len(tpr) > max_points:
        keep = np.unique(np.linspace(0, len(tpr) - 1, max_points).round().astype(int))
        tpr, fpr = tpr[keep], fpr[keep]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
