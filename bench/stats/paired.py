"""One metric of two checkpoints compared on the same samples: each one's 95% interval, the
difference NEW - REF with its interval and two-sided p-value, its standard error and the minimum
detectable effect at this sample size.

Procedures by the metric's declared kind (bench.task.Stat):
- proportion (per-sample 0/1): Wilson intervals; the exact McNemar test on the discordant pairs;
  the difference's interval from a bootstrap of the 2x2 table of paired outcomes (a multinomial
  over its four cells: the same distribution as resampling images, at O(1) per replicate);
- every other kind in STATISTICS (means of per-sample values, ECE, MaxBoxAcc, VOC mAP, BLEU,
  mCE over source images, the OOD metrics over strata): a paired bootstrap over the units (the
  same resampled ids for both), the metric recomputed per replicate from sufficient statistics
  (bench.stats.replicates), percentile intervals, p-value (1 + #extreme) / (1 + B) of the
  replicates shifted to the null;
- auroc (one OOD set): DeLong's variance and his test for two correlated AUCs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy import special  # not scipy.stats: importing it costs a second

from bench.stats import bootstrap, delong, replicates
from bench.stats.proportion import exact_mcnemar, wilson

POWER = 0.8  # the minimum detectable effect: what a two-sided test at alpha finds with this power
DEFAULT_RESAMPLES = {"proportion": 10000, "mean": 10000, "ece": 10000, "maxboxacc": 2000, "voc_map": 2000, "voc_map_area": 2000, "auroc": 0, "auroc_mean": 2000, "mce": 2000, "mean_err_15": 2000, "relative_mce": 2000, **{f"bleu_{n}": 10000 for n in (1, 2, 3, 4)},
                     **{f"ood{mean}:{m}": 2000 for m in replicates.OOD_RATES for mean in ("", "_mean")}}


@dataclass
class Paired:
    kind: str
    method: str  # what computed the intervals and the p-value, in words
    n: int  # paired units
    new: float
    new_low: float
    new_high: float
    ref: float
    ref_low: float
    ref_high: float
    diff: float  # NEW - REF, in the metric's unit
    low: float
    high: float
    se: float
    p: float
    mde: float  # minimum detectable |difference| at alpha (two-sided) and POWER
    resamples: int  # bootstrap replicates (0: analytic)
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mde(se: float, alpha: float) -> float:
    return float((special.ndtri(1 - alpha / 2) + special.ndtri(POWER)) * se)


def compare_proportions(new: np.ndarray, ref: np.ndarray, scale: float, resamples: int, seed: int, alpha: float = 0.05) -> Paired:
    new, ref = np.asarray(new, bool), np.asarray(ref, bool)
    n = len(new)
    both, only_new, only_ref = int((new & ref).sum()), int((new & ~ref).sum()), int((~new & ref).sum())
    cells = np.array([both, only_new, only_ref, n - both - only_new - only_ref]) / n
    draws = np.random.default_rng(seed).multinomial(n, cells, size=resamples)
    diffs = scale * (draws[:, 1] - draws[:, 2]) / n
    level = 1 - alpha
    lo, hi = bootstrap.percentile_interval(diffs, level)
    (nl, nh), (rl, rh) = wilson(int(new.sum()), n, level), wilson(int(ref.sum()), n, level)
    se = float(diffs.std(ddof=1))
    return Paired("proportion", "Wilson intervals; exact McNemar test; percentile bootstrap of the paired 2x2 table for the difference", n,
                  scale * new.mean(), scale * nl, scale * nh, scale * ref.mean(), scale * rl, scale * rh,
                  scale * (only_new - only_ref) / n, lo, hi, se, exact_mcnemar(only_new, only_ref), _mde(se, alpha), resamples, level)


def compare_bootstrap(statistic: Callable[[Any, np.ndarray], np.ndarray], new: Any, ref: Any, n_units: int, scale: float, resamples: int,
                      seed: int, kind: str, alpha: float = 0.05, strata: list[int] | None = None, units: str = "samples") -> Paired:
    """A paired bootstrap: `statistic(data, weights)` is the metric of each replicate, weights per
    unit (a cluster bootstrap aggregates its clusters into units first, as bench.checks.pairing.as_data
    does for ImageNet-C's source images); with `strata`, sizes of consecutive groups of units, each
    group resampled to its own size."""
    return compare_bootstrap_many(lambda data, w: {kind: statistic(data, w)}, new, ref, n_units, {kind: scale}, resamples, seed,
                                  alpha, strata, units)[kind]


def compare_bootstrap_many(statistic: Callable[[Any, np.ndarray], dict[str, np.ndarray]], new: Any, ref: Any, n_units: int,
                           scales: dict[str, float], resamples: int, seed: int, alpha: float = 0.05, strata: list[int] | None = None,
                           units: str = "samples") -> dict[str, Paired]:
    """compare_bootstrap for a statistic that yields several metrics from one pass (dict kind ->
    values per replicate, as the OOD threshold metrics of one score do): every metric sees the
    same replicates, each one's result the same as a bootstrap of it alone with this seed."""
    ones = np.ones((1, n_units), np.int32)
    observed_new = statistic(new, ones)
    observed_ref = observed_new if ref is new else statistic(ref, ones)
    values_new: dict[str, list[np.ndarray]] = {k: [] for k in scales}
    values_ref: dict[str, list[np.ndarray]] = {k: [] for k in scales}
    for w in bootstrap.replicate_weights(n_units, resamples, seed, strata):
        a = statistic(new, w)
        b = a if ref is new else statistic(ref, w)  # one checkpoint's own interval (bench report): computed once
        for k in scales:
            values_new[k].append(a[k])
            values_ref[k].append(b[k])
    level = 1 - alpha
    how = "stratified paired" if strata else "paired"
    out = {}
    for kind, scale in scales.items():
        a, b = scale * np.concatenate(values_new[kind]), scale * np.concatenate(values_ref[kind])
        diffs = a - b
        on, orf = scale * float(observed_new[kind][0]), scale * float(observed_ref[kind][0])
        se = float(diffs.std(ddof=1))
        out[kind] = Paired(kind, f"{how} percentile bootstrap over {units}, the metric recomputed per replicate", n_units,
                           on, *bootstrap.percentile_interval(a, level), orf, *bootstrap.percentile_interval(b, level),
                           on - orf, *bootstrap.percentile_interval(diffs, level), se, bootstrap.p_value(diffs, on - orf), _mde(se, alpha), resamples, level)
    return out


def compare_auroc(new: tuple[np.ndarray, np.ndarray], ref: tuple[np.ndarray, np.ndarray], scale: float, alpha: float = 0.05) -> Paired:
    """new, ref: (in-distribution scores, out-of-distribution scores), aligned sample by sample."""
    level = 1 - alpha
    out = delong.paired_test(new[0], new[1], ref[0], ref[1], level)
    _, nl, nh = delong.auc_interval(new[0], new[1], level)
    _, rl, rh = delong.auc_interval(ref[0], ref[1], level)
    return Paired("auroc", "DeLong intervals and DeLong's test for two correlated AUCs", len(new[0]) + len(new[1]),
                  scale * out["auc_a"], scale * nl, scale * nh, scale * out["auc_b"], scale * rl, scale * rh,
                  scale * out["diff"], scale * out["low"], scale * out["high"], scale * out["se"], out["p"], _mde(scale * out["se"], alpha), 0, level)


STATISTICS: dict[str, Callable[[Any, np.ndarray], np.ndarray]] = {
    "mean": lambda data, w: replicates.weighted_mean(data, w),
    "ece": lambda data, w: replicates.ece(data[0], data[1], w) / 100.0,  # as a fraction: the spec's scale makes it percent
    "maxboxacc": lambda data, w: replicates.max_box_acc(data, w) / 100.0,
    "auroc_mean": lambda data, w: replicates.auroc_mean(data[0], data[1], w),
    "mce": lambda data, w: replicates.mce(*data, w) / 100.0,
    "mean_err_15": lambda data, w: replicates.mce(*data, w, what="mean_err_15") / 100.0,
    "relative_mce": lambda data, w: replicates.mce(*data[:3], w, what="relative_mce", clean_wrong=data[3]) / 100.0,
    **{f"bleu_{n}": (lambda data, w, n=n: replicates.bleu(data, w, n)) for n in (1, 2, 3, 4)},
    **{f"ood{mean}:{m}": (lambda data, w, m=m: replicates.ood_rate_mean(data[0], data[1], w, m)) for m in replicates.OOD_RATES for mean in ("", "_mean")},
    "voc_map": lambda data, w: replicates.voc_map(data[0], data[1], w) / 100.0,
    "voc_map_area": lambda data, w: replicates.voc_map(data[0], data[1], w, area=True) / 100.0,
}

# Statistics that yield several metrics from one pass, by the prefix of their kinds ("ood:tnr_at_tpr95"
# is one of "ood"'s): GROUPS[prefix](kinds) computes the named kinds of the group in one pass.
def _ood_group(prefix: str) -> Callable[[Sequence[str]], Callable[[Any, np.ndarray], dict[str, np.ndarray]]]:
    def of(kinds: Sequence[str]) -> Callable[[Any, np.ndarray], dict[str, np.ndarray]]:
        which = [k.split(":", 1)[1] for k in kinds]
        return lambda data, w: {f"{prefix}:{k}": v for k, v in replicates.ood_rates_mean(data[0], data[1], w, which).items()}
    return of


GROUPS = {prefix: _ood_group(prefix) for prefix in ("ood", "ood_mean")}
