"""A check of NEW against REF: every task both have complete results for, metric by metric, with
the paired procedure each metric declares (bench.task.Stat), Holm's correction across the
metrics, tolerances and verdicts. Pure bookkeeping over stored records and samples files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special  # not scipy.stats: importing it costs a second

from bench.checks import pairing
from bench.checks.verdicts import Tolerances, degradation, verdict
from bench.errors import BenchError
from bench.stats import paired, replicates
from bench.stats.multiple import holm
from bench.tables import declared_order


@dataclass
class MetricCheck:
    task: str
    metric: str
    unit: str
    higher_is_better: bool
    headline: bool
    result: paired.Paired
    tolerance: float
    tolerance_from: str
    seeds: tuple[list[int], list[int]]
    scope: str  # what the interval covers: image noise only, or seeds as well
    p_adjusted: float = 1.0
    verdict: str = ""
    image: paired.Paired | None = None  # with seeds: the image-level comparison of the first seed pair

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("result", "image")}
        out["result"] = self.result.to_dict()
        if self.image is not None:
            out["image_level"] = self.image.to_dict()
        return out


@dataclass
class CheckResult:
    new: str
    ref: str
    alpha: float
    metrics: list[MetricCheck] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # metrics without a declared statistic, and why

    def deciding(self) -> list[MetricCheck]:
        return [m for m in self.metrics if m.headline]

    def exit_code(self, strict: bool) -> int:
        if any(m.verdict == "worse" for m in self.deciding()):
            return 1
        if strict and any(m.verdict == "inconclusive" for m in self.deciding()):
            return 3
        return 0

    def to_dict(self) -> dict[str, Any]:
        return {"new": self.new, "ref": self.ref, "alpha": self.alpha, "metrics": [m.to_dict() for m in self.metrics], "skipped": self.skipped}


def _clean_of(values: list[list[Any]], rows: list[dict[str, Any]], who: str) -> np.ndarray:
    """Per source image (in as_data's order), its clean 0/1 top-1 error from the clean split's rows."""
    clean = {str(r.get("image", "")).rsplit("/", 1)[-1]: r["top1_wrong"] for r in rows if r.get("split") == "clean" and "top1_wrong" in r}
    if not clean:
        raise pairing.NotComparable("relative mCE needs each image's clean error: the clean split was not scored in this run (--set clean=run)")
    sources = sorted({v[1] for v in values})
    names = {s.rsplit("/", 1)[-1] for s in sources}
    if names != set(clean) or len(names) != len(sources):  # the stored clean error is over the clean split: the same images, or no pairing
        raise pairing.NotComparable(f"the clean split of {who} holds other images than ImageNet-C's source images ({len(clean)} vs {len(sources)}, "
                                    f"{len(names & set(clean))} in common), so its clean error cannot be resampled with them")
    return np.array([clean[s.rsplit("/", 1)[-1]] for s in sources], float)


@dataclass
class Groups:
    """Metrics computed with their group in one pass (paired.GROUPS: the OOD threshold metrics of
    one score and set), once per check of a task: the same rows, field, set, resamples and seed give
    the same replicates. `wanted`: the (field, kind) pairs the task's metrics ask for."""
    wanted: set[tuple[str, str]]
    done: dict[tuple, dict[str, paired.Paired]] = field(default_factory=dict)
    joins: dict[tuple, tuple] = field(default_factory=dict)  # the same rows joined on the same fields, for several metrics

    def joined(self, task: Any, metric: str, pattern: str, stat: Any, new_rows: list[dict[str, Any]], ref_rows: list[dict[str, Any]],
               who_new: str, who_ref: str) -> tuple:
        """pairing.joined, once per rows, fields and filters (the metrics of one split share their join)."""
        fields, filters = pairing.metric_fields(stat, pattern, metric, new_rows)
        key = (id(new_rows), id(ref_rows), tuple(fields), tuple(filters))
        if key not in self.joins:
            self.joins[key] = pairing.joined(task, metric, pattern, stat, new_rows, ref_rows, who_new, who_ref)
        return self.joins[key]

    @classmethod
    def of(cls, task: Any, metrics: Any) -> "Groups":
        stats = [task.metric_spec(m).stat for m in metrics]
        return cls({(s.field, s.kind) for s in stats if s is not None})


def compare_metric(task: Any, metric: str, spec: Any, new_rows: list[dict[str, Any]], ref_rows: list[dict[str, Any]], who_new: str, who_ref: str,
                   resamples: int | None, seed: int, alpha: float, groups: Groups | None = None) -> paired.Paired:
    """One metric of two samples files, with the procedure its spec declares; with `groups`, a
    metric of a group is computed with the group's other wanted members."""
    from bench.task import Stat

    stat = spec.stat
    kind, scale = stat.kind, stat.scale
    b = resamples or paired.DEFAULT_RESAMPLES[kind]
    prefix = kind.split(":", 1)[0]
    key = None
    if prefix in paired.GROUPS and groups is not None:
        key = (prefix, id(new_rows), id(ref_rows), stat.field, tuple(pairing.metric_fields(stat, spec.name, metric, new_rows)[1]), scale, b, seed, alpha)
        if key in groups.done:
            return groups.done[key][kind]
    if kind in ("auroc", "auroc_mean") or kind.startswith("ood"):  # positives: the in-distribution rows; negatives: the OOD set's (each set's, for a mean)
        def scores(st: Stat) -> tuple[np.ndarray, np.ndarray]:
            _, a, r, _ = (groups.joined if groups is not None else pairing.joined)(task, metric, spec.name, st, new_rows, ref_rows, who_new, who_ref)
            return np.array([v[0] for v in a], float), np.array([v[0] for v in r], float)

        in_a, in_b = scores(Stat("mean", stat.field, (("in_distribution", "1"),)))
        if kind == "auroc":
            out_a, out_b = scores(stat)
            return paired.compare_auroc((in_a, out_a), (in_b, out_b), scale, alpha)
        one = kind.startswith("ood:")  # one set's threshold metric: a stratified bootstrap of the in-distribution set and that set
        sets = sorted({r["set"] for r in new_rows if r.get("in_distribution") == 0})
        outs = [scores(stat)] if one else [scores(Stat("mean", stat.field, (("set", s),))) for s in sets]
        strata = [len(in_a)] + [len(o[0]) for o in outs]
        data_a = (in_a, [o[0] for o in outs])
        data_b = data_a if new_rows is ref_rows else (in_b, [o[1] for o in outs])  # one side's own interval: its replicates computed once
        units = "the in-distribution set and each OOD set apart"
        if key is None:
            return paired.compare_bootstrap(paired.STATISTICS[kind], data_a, data_b, sum(strata), scale, b, seed, kind, alpha=alpha, strata=strata, units=units)
        kinds = {k: scale for k in (f"{prefix}:{m}" for m in replicates.OOD_RATES) if k == kind or (stat.field, k) in groups.wanted}
        groups.done[key] = paired.compare_bootstrap_many(paired.GROUPS[prefix](list(kinds)), data_a, data_b, sum(strata), kinds, b, seed, alpha, strata, units)
        return groups.done[key][kind]
    _, a, r, _ = (groups.joined if groups is not None else pairing.joined)(task, metric, spec.name, stat, new_rows, ref_rows, who_new, who_ref)
    data_a, n = pairing.as_data(kind, a)
    data_b = data_a if new_rows is ref_rows else pairing.as_data(kind, r)[0]
    if kind == "relative_mce":  # each source image's clean error, from the clean split scored in the same run
        data_a = data_a + (_clean_of(a, new_rows, who_new),)
        data_b = data_a if new_rows is ref_rows else data_b + (_clean_of(r, ref_rows, who_ref),)
    if kind == "proportion":
        return paired.compare_proportions(data_a, data_b, scale, b, seed, alpha)
    units = "source images (a cluster bootstrap: each carries all its corruption x severity cells)" if stat.cluster else "samples"
    return paired.compare_bootstrap(paired.STATISTICS[kind], data_a, data_b, n, scale, b, seed, kind, alpha=alpha, units=units)


def _seed_level(values_new: list[float], values_ref: list[float], image: list[paired.Paired], alpha: float) -> paired.Paired:
    """Several seeds per side: the difference of the seed means, with Welch's variance of it plus the
    image-level variance (the mean of the seed pairs' paired variances over their number); a t
    interval with Welch-Satterthwaite's degrees of freedom."""
    a, b = np.array(values_new), np.array(values_ref)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    img = float(np.mean([p.se ** 2 for p in image])) / len(image)
    se = float(np.sqrt(va + vb + img))
    df = (va + vb) ** 2 / ((va ** 2 / (len(a) - 1) if len(a) > 1 else 0) + (vb ** 2 / (len(b) - 1) if len(b) > 1 else 0)) if va + vb > 0 else np.inf
    diff = float(a.mean() - b.mean())
    t = float(special.stdtrit(df, 1 - alpha / 2))
    p = 1.0 if se == 0 else float(2 * special.stdtr(df, -abs(diff) / se))
    mde = float((t + special.stdtrit(df, paired.POWER)) * se)

    def band(x: np.ndarray, v: float) -> tuple[float, float, float]:  # a side's seed mean and its t interval
        return float(x.mean()), float(x.mean() - t * np.sqrt(v)), float(x.mean() + t * np.sqrt(v))

    return paired.Paired("seeds", f"seed means ({len(a)} vs {len(b)} seeds): Welch's variance plus the image-level paired variance, t interval (df {df:.1f})",
                         image[0].n, *band(a, va), *band(b, vb), diff, diff - t * se, diff + t * se, se, p, mde, image[0].resamples, 1 - alpha)


def check_task(task: Any, new: pairing.Side, ref: pairing.Side, results: Path, tolerances: Tolerances, alpha: float,
               resamples: int | None, seed: int, result: CheckResult) -> None:
    """Compare every metric of one task that has a declared statistic; append to `result`."""
    if not any(task.metric_spec(m).stat for m in new.records[0]["metrics"]):
        result.skipped.append(f"{task.name}: no metric with a per-sample statistic declared (point values only)")
        return
    several = task.seeded and len(new.records) > 1 and len(ref.records) > 1
    pairs = list(zip(range(len(new.records)), range(len(ref.records))))[:None if several else 1]  # seed i of NEW with seed i of REF
    new_rows = {i: pairing.read_rows(new.records[i], results) for i, _ in pairs}  # each samples file read once, only those compared
    ref_rows = {j: pairing.read_rows(ref.records[j], results) for _, j in pairs}
    groups = Groups.of(task, [m for m in new.records[0]["metrics"] if not task.metric_spec(m).detail])
    for metric in declared_order(new.records[0]):
        spec = task.metric_spec(metric)
        if spec.detail:
            continue
        if spec.stat is None:
            result.skipped.append(f"{task.name} {metric}: no per-sample statistic declared (point values only)")
            continue
        if metric not in ref.records[0]["metrics"]:
            result.skipped.append(f"{task.name} {metric}: {ref.name} has no value")
            continue
        image = []
        try:
            for i, j in pairs:
                who_new, who_ref = f"{new.name} x {task.name} (seed {new.records[i]['seed']})", f"{ref.name} x {task.name} (seed {ref.records[j]['seed']})"
                image.append(compare_metric(task, metric, spec, new_rows[i], ref_rows[j], who_new, who_ref, resamples, seed, alpha, groups))
        except pairing.NotComparable as why:
            result.skipped.append(f"{task.name} {metric}: {why}")
            continue
        if several:
            res = _seed_level([r["metrics"][metric] for r in new.records], [r["metrics"][metric] for r in ref.records], image, alpha)
            scope = f"seeds and images ({len(new.records)} vs {len(ref.records)} seeds)"
        else:
            res = image[0]
            scope = "image noise only: one seed per side; --seeds on both for a claim about the recipe" if task.seeded else "image noise (a deterministic task)"
        tol, where = tolerances.get(task, metric)
        result.metrics.append(MetricCheck(task.name, metric, spec.unit, spec.higher_is_better, spec.headline, res, tol, where,
                                          (new.seeds, ref.seeds), scope, image=image[0] if several else None))


def finish(result: CheckResult) -> CheckResult:
    """Holm's correction within two families, the deciding (headline) metrics of every task checked
    and the others, then each verdict."""
    for family in ([m for m in result.metrics if m.headline], [m for m in result.metrics if not m.headline]):
        for m, p in zip(family, holm([m.result.p for m in family]) if family else []):
            m.p_adjusted = p
    for m in result.metrics:
        p = m.p_adjusted
        _, lo, hi = degradation(m.result.diff, m.result.low, m.result.high, m.higher_is_better)
        m.verdict = verdict(lo, hi, m.tolerance, p, result.alpha)
    if not result.metrics:
        raise BenchError(f"nothing to compare between {result.new} and {result.ref}: no metric with a per-sample statistic", "see bench list tasks; re-run the cells with --force to write per-sample statistics")
    return result


def _side_name(spec: str, opts: Any) -> tuple[str, str | None]:
    """A backbone's display name, and the file's sha256 when it is a checkpoint file."""
    from bench.cards import looks_like_path, resolve_backbone, split_display_name
    from bench.runner import display_names

    path = split_display_name(spec)[1]
    file = looks_like_path(path) and not path.endswith((".yaml", ".yml"))
    card = resolve_backbone(spec, opts.arch if file else None, opts.num_classes if file else None, opts.preprocessing if file else {},
                            display_names([spec], opts)[spec] if file else None)
    if file and not path.endswith((".yaml", ".yml")) and Path(path).is_file():
        from bench.backbones.download import sha256_file

        return card.name, sha256_file(Path(path))
    return card.name, None


def run_check(new_spec: str, ref_spec: str, task_pattern: str, opts: Any, tolerances: Tolerances, alpha: float, seeds: list[int] | None,
              resamples: int | None, stat_seed: int, allow_config_diff: bool) -> CheckResult:
    """NEW against REF (a backbone, or 'paper': NEW's card's published numbers) over every task of the pattern."""
    from bench.registry import is_pattern, matches
    from bench.store import ResultsStore

    store = ResultsStore.open(opts.results, write=False)
    records = list(store.records(include_limited=False))
    store.close()
    new_name, new_sha = _side_name(new_spec, opts)
    paper = ref_spec == "paper"
    ref_name, ref_sha = (new_name, new_sha) if paper else _side_name(ref_spec, opts)
    explicit = not any(is_pattern(p) for p in task_pattern.split(","))
    result = CheckResult(new_name, "the paper" if paper else ref_name, alpha)
    stored = {r["task"]["name"] for r in records if r["backbone"]["name"] in (new_name, ref_name)}
    from tasks import TASKS

    asked = [e.name for e in TASKS.select(task_pattern)]  # unknown names and empty patterns are refused here, without loading a task
    names = asked if explicit else [n for n in TASKS.names() if n in stored and matches(n, task_pattern)]
    for name in names:  # the tasks as stored (pairing.StoredTask): no task module, no torch, is imported
        newest = max((r for r in records if r["task"]["name"] == name and r["backbone"]["name"] in (new_name, ref_name) and not r["limited"]),
                     key=lambda r: r["created_at"], default=None)
        if newest is None:
            if explicit:
                raise BenchError(f"{new_name} has no complete {name} results in {store.path}",
                                 f"run it first (bench run --backbone {new_name} --task {name}), or pass --run")
            continue
        task = pairing.StoredTask.of(newest)
        new = pairing.pick(records, new_name, task, seeds, new_sha)
        ref = None if paper else pairing.pick(records, ref_name, task, seeds, ref_sha)
        if new is None or (ref is None and not paper):
            if explicit:
                who = new_name if new is None else ref_name
                raise BenchError(f"{who} has no complete {task.name} results in {store.path}",
                                 f"run it first (bench run --backbone {who} --task {task.name}), or pass --run")
            if new is not None or ref is not None:
                result.skipped.append(f"{task.name}: only {new_name if new else ref_name} has complete results")
            continue
        if paper:
            paper_task(task, new, opts.results, tolerances, alpha, resamples, stat_seed, result)
            continue
        differ = pairing.config_difference(new.records[0], ref.records[0])
        if differ and not allow_config_diff:
            raise BenchError(f"{new_name} and {ref_name} were scored on {task.name} with different {differ}",
                             "score both the same way (bench check --run does), or pass --allow-config-diff to compare anyway")
        check_task(task, new, ref, opts.results, tolerances, alpha, resamples, stat_seed, result)
    if not result.metrics and not paper:
        names = f"{new_name} and {ref_name}"
        raise BenchError(f"{names} have no task with complete results in common in {store.path}" + (f" (matching '{task_pattern}')" if task_pattern != "*" else ""),
                         f"run both first: bench run --backbone {new_spec},{ref_spec} --task TASK, or pass --run")
    return finish(result) if not paper else finish_paper(result)


def paper_task(task: Any, new: pairing.Side, results: Path, tolerances: Tolerances, alpha: float, resamples: int | None, seed: int,
               result: CheckResult) -> None:
    """NEW against its card's published numbers: NEW's interval, whether the published value lies in it,
    and a verdict by the tolerance alone (a published number has no samples to pair with)."""
    record = new.records[-1]
    published = record.get("reported") or {}
    if not published:
        raise BenchError(f"{new.name}'s card has no published numbers for {task.name}", "name a reference backbone with --against CARD")
    rows = pairing.read_rows(record, results)
    groups = Groups.of(task, [m for m in published if m in record["metrics"]])
    for metric, value in published.items():
        if metric not in record["metrics"]:
            continue
        spec = task.metric_spec(metric)
        if spec.stat is None:
            result.skipped.append(f"{task.name} {metric}: no per-sample statistic declared")
            continue
        who = f"{new.name} x {task.name}"
        own = compare_metric(task, metric, spec, rows, rows, who, who, resamples, seed, alpha, groups)
        n = own.n
        diff = own.new - float(value)
        res = paired.Paired(own.kind, own.method + "; the published value has no interval", n, own.new, own.new_low, own.new_high, float(value), float(value), float(value),
                            diff, own.new_low - float(value), own.new_high - float(value), own.se, float("nan"), own.mde, own.resamples, own.level)
        tol, where = tolerances.get(task, metric)
        scope = "published value " + ("inside" if own.new_low <= float(value) <= own.new_high else "outside") + " NEW's 95% interval"
        result.metrics.append(MetricCheck(task.name, metric, spec.unit, spec.higher_is_better, spec.headline, res, tol, where, (new.seeds, []), scope))


def finish_paper(result: CheckResult) -> CheckResult:
    """Against published numbers: worse when NEW is worse than the published value by more than the
    tolerance, equivalent otherwise (no paired test is possible)."""
    if not result.metrics:
        raise BenchError(f"nothing to compare: {result.new} has no stored result with published numbers beside it", "see bench list results")
    for m in result.metrics:
        d, _, _ = degradation(m.result.diff, m.result.low, m.result.high, m.higher_is_better)
        m.p_adjusted = float("nan")
        m.verdict = "worse" if d > m.tolerance else "better" if d < -m.tolerance else "equivalent"
    return result
