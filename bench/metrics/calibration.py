"""Calibration of a classifier's top-label confidence (Guo et al., ICML 2017): ECE over equal-width
bins (15 by default; bin m holds confidences in (m/M, (m+1)/M], the first also 0), the
reliability diagram's per-bin data, and the negative log-likelihood. Pure functions on arrays."""

from __future__ import annotations

from typing import Any

import numpy as np


def reliability(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> list[dict[str, Any]]:
    """Per bin: its edges, sample count, mean confidence and accuracy (None for an empty bin)."""
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)  # (lower, upper]
    bins = []
    for m in range(n_bins):
        members = index == m
        n = int(members.sum())
        bins.append({"lower": float(edges[m]), "upper": float(edges[m + 1]), "count": n,
                     "confidence": float(confidence[members].mean()) if n else None, "accuracy": float(correct[members].mean()) if n else None})
    return bins


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE in percent: sum over bins of (bin share) x |accuracy - mean confidence|."""
    n = len(confidence)
    if n == 0:
        raise ValueError("no samples to calibrate")
    bins = reliability(confidence, correct, n_bins)
    return 100.0 * sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"])


def negative_log_likelihood(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean -log softmax(logits)[target], computed stably in float64."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), np.asarray(targets)].mean())


def calibration(logits: np.ndarray, targets: np.ndarray, n_bins: int = 15) -> dict[str, Any]:
    """ECE (%), NLL and the reliability bins of a classifier's logits."""
    z = np.asarray(logits, np.float64)
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    confidence, prediction = probs.max(axis=1), probs.argmax(axis=1)
    correct = prediction == np.asarray(targets)
    return {"ece": expected_calibration_error(confidence, correct, n_bins), "nll": negative_log_likelihood(z, targets),
            "reliability": reliability(confidence, correct, n_bins)}
