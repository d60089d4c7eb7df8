"""Top-k error against scikit-learn's top_k_accuracy_score."""

import numpy as np
import pytest
import torch
from sklearn.metrics import top_k_accuracy_score

from bench.metrics.classification import topk_error


def test_hand_computed():
    top = np.array([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [1, 0, 2, 3, 4], [9, 8, 7, 6, 5]])
    targets = np.array([0, 0, 2, 1])
    # top-1 hits: sample 0 only -> 75% error; top-5 hits: samples 0, 1, 2 -> 25% error
    assert topk_error(top, targets) == {"top1_err": 75.0, "top5_err": 25.0}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(1000, 37)).astype(np.float32)
    targets = rng.integers(0, 37, size=1000)
    top = torch.from_numpy(logits).topk(5, dim=1).indices.numpy()
    ours = topk_error(top, targets)
    labels = np.arange(37)
    assert ours["top1_err"] == pytest.approx(100 * (1 - top_k_accuracy_score(targets, logits, k=1, labels=labels)), abs=1e-12)
    assert ours["top5_err"] == pytest.approx(100 * (1 - top_k_accuracy_score(targets, logits, k=5, labels=labels)), abs=1e-12)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        topk_error(np.zeros((3, 5)), np.zeros(4))
    with pytest.raises(ValueError):
        topk_error(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(ValueError):
        topk_error(np.zeros((0, 5)), np.zeros(0))
