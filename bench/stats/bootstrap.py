"""Resampling weights and what is read off a bootstrap distribution.

A replicate is a vector of integer weights, one per unit: how often the unit appears in a resample
of n units drawn with replacement (a multinomial). Every metric is then recomputed as a weighted
sum of per-unit sufficient statistics (bench.stats.replicates), vectorised over replicates, never
by re-scoring in a Python loop. The same weight matrix is applied to both checkpoints of a paired
comparison. Units: images, or clusters of rows aggregated into one unit (the source image of
ImageNet-C's 75 cells); strata resampled apart (in- and out-of-distribution sets) by
`stratified_weights`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator, Sequence

import numpy as np

CHUNK_ELEMENTS = 1 << 23  # weights held at once (32 MiB of int32)
KEPT_ELEMENTS = 1 << 25  # weights replicate_weights keeps for reuse (128 MiB of int32)
_KEPT: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()  # by replicate_weights' arguments, the most recent last


def resample_weights(n: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(replicates, n) int32: unit j's count in each resample of n draws with replacement."""
    if n <= 0:
        raise ValueError("resampling needs at least one unit")
    idx = rng.integers(0, n, size=(replicates, n))
    idx += (np.arange(replicates) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=replicates * n).reshape(replicates, n).astype(np.int32)


def stratified_weights(sizes: Sequence[int], replicates: int, rng: np.random.Generator) -> np.ndarray:
    """Weights for units laid out stratum after stratum, each stratum resampled to its own size."""
    return np.concatenate([resample_weights(int(s), replicates, rng) for s in sizes], axis=1)


def chunks(replicates: int, n: int) -> Iterator[int]:
    """Replicate counts per chunk so that a chunk's weights stay under CHUNK_ELEMENTS."""
    step = max(1, CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, replicates, step):
        yield min(step, replicates - start)


def replicate_weights(n: int, replicates: int, seed: int, strata: Sequence[int] | None = None) -> Iterator[np.ndarray]:
    """The weights of `replicates` resamples of n units (strata: sizes of consecutive groups of
    units, each resampled to its own size), chunk by chunk, from a generator seeded with `seed`.
    The metrics of one task are bootstrapped over the same units with the same seed: the chunks of
    the last draws, up to KEPT_ELEMENTS weights in all, are kept and handed out again rather than
    redrawn. They are read-only, so no caller can change another's replicates."""
    key = (n, replicates, seed, tuple(strata) if strata else None)
    if key in _KEPT:
        _KEPT.move_to_end(key)
        yield from _KEPT[key]
        return
    rng = np.random.default_rng(seed)
    keep = n * replicates <= KEPT_ELEMENTS // 2
    drawn = []
    for size in chunks(replicates, n):
        w = stratified_weights(strata, size, rng) if strata else resample_weights(n, size, rng)
        if keep:
            w.flags.writeable = False
            drawn.append(w)
        yield w
    if keep:
        _KEPT[key] = drawn
        while sum(c.size for chunk in _KEPT.values() for c in chunk) > KEPT_ELEMENTS:
            _KEPT.popitem(last=False)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of a bootstrap distribution (not BCa)."""
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def p_value(replicates: np.ndarray, observed: float) -> float:
    """Two-sided bootstrap p-value of H0 "no difference": the replicates shifted to the null
    (minus the observed difference), the share at least as far from 0 as observed, with the +1
    correction, (1 + #extreme) / (1 + B) (Davison and Hinkley; sacrebleu's paired bootstrap)."""
    extreme = np.abs(replicates - observed) >= abs(observed) - 1e-12
    return float((1 + int(extreme.sum())) / (1 + len(replicates)))
