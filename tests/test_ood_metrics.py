"""OOD metrics against independent implementations: scikit-learn (AUROC, average precision, the
ROC points behind both FPR@95 conventions) and ODIN's threshold sweep (calMetric.py's tpr95 and
detection loops) written out here with exact fractions, on cases with heavy ties between ID and
OOD scores; and `bench score ood` on .npy and text files."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from bench.metrics.ood import ood_metrics


def odin_sweep(ins: np.ndarray, outs: np.ndarray) -> tuple[float, float]:
    """ODIN's calMetric.py loops (TPR = ID >= delta, FPR = OOD > delta, mean FPR over deltas with
    TPR in [0.9495, 0.9505]; detection error = min of (ID < delta + OOD > delta) / 2) over one
    delta between each pair of consecutive distinct scores (weighted by their gap, as many points
    as an even grid puts there) and one beyond each end: the limit of ODIN's grid, which never
    lands on a score. Exact fractions; returns (TNR, accuracy)."""
    values = np.unique(np.concatenate([ins, outs]))
    deltas = [values[0] - 1.0] + [(a + b) / 2 for a, b in zip(values[:-1], values[1:])] + [values[-1] + 1.0]
    # an even grid puts a number of points between two consecutive scores proportional to their gap
    gaps = [None] + [Fraction(float(b)) - Fraction(float(a)) for a, b in zip(values[:-1], values[1:])] + [None]
    total, fpr_sum = Fraction(0), Fraction(0)
    best = Fraction(1)
    window = []
    for delta, gap in zip(deltas, gaps):
        tpr = Fraction(int(np.sum(ins >= delta)), len(ins))
        fpr = Fraction(int(np.sum(outs > delta)), len(outs))
        if Fraction(9495, 10000) <= tpr <= Fraction(9505, 10000):
            fpr_sum += fpr * gap
            total += gap
        window.append((tpr, fpr))
        best = min(best, (Fraction(int(np.sum(ins < delta)), len(ins)) + fpr) / 2)
    if total:
        fpr95 = fpr_sum / total
    else:  # bench's stated fallback: the smallest TPR of at least 0.95
        fpr95 = min((t, f) for t, f in window if t >= Fraction(95, 100))[1]
    return float(100 * (1 - fpr95)), float(100 * (1 - best))


def sklearn_reference(ins: np.ndarray, outs: np.ndarray) -> dict[str, float]:
    y = np.concatenate([np.ones(len(ins)), np.zeros(len(outs))])
    s = np.concatenate([ins, outs])
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    fpr_o, tpr_o, _ = roc_curve(1 - y, -s, drop_intermediate=False)
    return {"auroc": 100 * roc_auc_score(y, s), "aupr_in": 100 * average_precision_score(y, s), "aupr_out": 100 * average_precision_score(1 - y, -s),
            "fpr_at_tpr95": 100 * fpr[np.argmax(tpr >= 0.95)], "fpr_at_tpr95_ood": 100 * fpr_o[np.argmax(tpr_o >= 0.95)]}


def cases():
    rng = np.random.default_rng(0)
    yield "continuous", rng.normal(1.0, 1.0, 3000), rng.normal(0.0, 1.0, 2000)
    # MSP-like saturation: many ID and OOD scores exactly 1.0, the rest quantised (ties everywhere)
    ins = np.where(rng.random(4000) < 0.6, 1.0, np.round(rng.uniform(0.3, 1.0, 4000), 2))
    outs = np.where(rng.random(2500) < 0.3, 1.0, np.round(rng.uniform(0.0, 1.0, 2500), 2))
    yield "ties", ins, outs
    # a small set: no cut has TPR in ODIN's window, the fallback applies
    yield "small", np.round(rng.normal(1, 1, 150), 1), np.round(rng.normal(0, 1, 90), 1)
    yield "separable", rng.uniform(2, 3, 500), rng.uniform(0, 1, 700)
    yield "all equal", np.full(2000, 0.5), np.full(300, 0.5)
    yield "reversed", rng.uniform(0, 1, 2000), rng.uniform(2, 3, 400)


@pytest.mark.parametrize("name,ins,outs", list(cases()), ids=[c[0] for c in cases()])
def test_metrics_equal_sklearn_and_odins_sweep(name, ins, outs):
    got = ood_metrics(ins, outs)
    tnr, acc = odin_sweep(ins, outs)
    assert got["tnr_at_tpr95"] == tnr  # exact, including ties
    assert got["detection_acc"] == acc
    ref = sklearn_reference(ins, outs)
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, abs=1e-10), key


def test_known_values_by_hand():
    # ID 1..20, OOD 0.5, 5.5 and 20 (tied with the best ID score)
    ins, outs = np.arange(1.0, 21.0), np.array([0.5, 5.5, 20.0])
    got = ood_metrics(ins, outs)
    # TPR 95% = 19 of 20 ID kept: cut at 2 accepts OOD 5.5 and 20 -> FPR 2/3, the only cut in the window
    assert got["tnr_at_tpr95"] == pytest.approx(100 / 3)
    assert got["fpr_at_tpr95"] == pytest.approx(200 / 3)
    # AUROC: pairs (ID > OOD) + 1/2 ties: OOD 0.5 below all 20, 5.5 below 15, 20 ties one -> (20 + 15 + 0.5) / 60
    assert got["auroc"] == pytest.approx(100 * 35.5 / 60)
    # best cut: at 6 rejects 5 ID (of 20) and accepts 1 OOD (of 3): (0.25 + 1/3) / 2; at 1: (0 + 2/3) / 2 = 1/3 is better
    assert got["detection_acc"] == pytest.approx(100 * (1 - min((5 / 20 + 1 / 3) / 2, (2 / 3) / 2)))


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="non-finite"):
        ood_metrics([0.1, float("nan")], [0.2])
    with pytest.raises(ValueError, match="1-D"):
        ood_metrics(np.zeros((3, 4)), [0.2])
    with pytest.raises(ValueError, match="empty"):
        ood_metrics([], [0.2])


def test_tnr_is_the_limit_of_odins_fine_grid():
    """ODIN's actual loop over an even grid (np.arange(start, end, gap), 400,000 steps) approaches
    bench's value; counting each cut once instead of by its width would be further off."""
    rng = np.random.default_rng(3)
    ins, outs = rng.beta(5, 1, 4000), rng.beta(2, 2, 3000)
    start, end = 0.0, 1.0
    deltas = np.arange(start, end, (end - start) / 400_000)
    si, so = np.sort(ins), np.sort(outs)
    tpr = 1 - np.searchsorted(si, deltas, side="left") / len(ins)  # ID >= delta
    fpr = 1 - np.searchsorted(so, deltas, side="right") / len(outs)  # OOD > delta
    window = (tpr >= 0.9495) & (tpr <= 0.9505)
    grid_tnr = 100 * (1 - fpr[window].mean())
    got = ood_metrics(ins, outs)["tnr_at_tpr95"]
    assert abs(got - grid_tnr) < 0.002, (got, grid_tnr)
