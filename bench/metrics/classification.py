"""Top-k classification error."""

from __future__ import annotations

import numpy as np


def topk_error(top_predictions: np.ndarray, targets: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Percent of samples whose target is not among the first k predicted classes.

    top_predictions: (N, K) class indices, best first, K >= max(ks); targets: (N,).
    Returns {'top1_err': ..., 'top5_err': ...} in percent (the paper reports error).
    """
    top_predictions = np.asarray(top_predictions)
    targets = np.asarray(targets)
    if top_predictions.ndim != 2 or top_predictions.shape[0] != targets.shape[0]:
        raise ValueError(f"need (N, K) predictions and (N,) targets, got {top_predictions.shape} and {targets.shape}")
    if len(targets) == 0:
        raise ValueError("no samples to score")
    if max(ks) > top_predictions.shape[1]:
        raise ValueError(f"top-{max(ks)} needs at least {max(ks)} predictions per sample")
    hits = top_predictions == targets[:, None]
    return {f"top{k}_err": float(100.0 * (1.0 - hits[:, :k].any(axis=1).mean())) for k in ks}
