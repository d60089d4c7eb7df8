"""The task interface every task module implements, and what the runner hands a task.

A task declares its name, version (bump it on any protocol change), the datasets it reads, its
metrics, and whether it replaces the backbone's classifier. `check` resolves the data without a
model (for `bench validate`); `run` evaluates a loaded backbone. Tasks that train on top of the
backbone (WSOL fine-tuning, detection, captioning) keep their trained weights in
`ctx.artifact_dir`, keyed like the result, so that a crash or a re-run resumes instead of
retraining. No torch import here: `bench list` reads task classes' attributes lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bench.paths import dataset_dir


def limited_indices(n_total: int, limit: int | None) -> list[int]:
    """The samples `--limit N` scores: N evenly spaced indices over the split's order (index
    i * n_total // N), so that a class-sorted split is covered across its classes; all of them
    when N is missing or at least the split's size."""
    if not limit or limit >= n_total:
        return list(range(n_total))
    return [i * n_total // limit for i in range(limit)]


@dataclass(frozen=True)
class Stat:
    """How a metric's uncertainty is computed (bench.stats.paired): `kind` names the estimator
    (proportion: a 0/1 value per sample, Wilson and exact McNemar; auroc: scores of in- and
    out-of-distribution samples, DeLong; every other kind, e.g. mean, ece, maxboxacc, voc_map,
    bleu_4, mce, ood_mean:tnr_at_tpr95: a bootstrap of the metric recomputed from per-sample
    sufficient statistics, bench.stats.paired.STATISTICS), `field` the key(s) of the samples rows
    it reads (a comma list, in the order the estimator takes them), `rows` which rows (key, value)
    belong to it. {placeholders} in either are filled
    from the metric's name (maxboxacc@50 fills {iou} with 50); a field placeholder the name does
    not fill stands for every key that matches (MaxBoxAccV2 averages hits@30, hits@50, hits@70).
    The metric is `scale` times the statistic (100: percent). The unit resampled is the sample,
    or the rows sharing the `cluster` key (bench.checks.pairing.as_data aggregates them)."""

    kind: str
    field: str
    rows: tuple[tuple[str, str], ...] = ()
    scale: float = 100.0
    cluster: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "field": self.field, "rows": [list(r) for r in self.rows], "scale": self.scale, "cluster": self.cluster}


@dataclass(frozen=True)
class MetricSpec:
    """One metric a task emits, declared once. `name` may be a family with one {field}
    ('maxboxacc@{iou}': maxboxacc@30, maxboxacc@50, ...). `description` is its convention, kept
    in every record; `tables` names the report columns it fills (e.g. 'paper Table 9: CUB Top-1
    Loc'); `headline` marks what summary tables (the demo's) show; `aggregate` derives it from
    other emitted metrics, e.g. ('mean', 'maxboxacc@{iou}')."""

    name: str
    higher_is_better: bool
    unit: str = "%"
    description: str = ""
    tables: tuple[str, ...] = ()
    headline: bool = False
    aggregate: tuple[str, str] | None = None
    detail: bool = False  # fine-grained (one per corruption x severity...): kept in the record, left out of the printed run table
    stat: Stat | None = None  # how its intervals and paired tests are computed (bench check); None: point values only

    def matches(self, name: str) -> bool:
        return name_matches(self.name, name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "higher_is_better": self.higher_is_better, "unit": self.unit, "description": self.description,
                "tables": list(self.tables), "headline": self.headline, "aggregate": list(self.aggregate) if self.aggregate else None, "detail": self.detail,
                "stat": self.stat.to_dict() if self.stat else None}


def name_fields(pattern: str, name: str) -> dict[str, str] | None:
    """The {field} values of a family member ('maxboxacc@{iou}', 'maxboxacc@50' -> {'iou': '50'}), None if it is not one."""
    import re

    keys = re.findall(r"\{([a-z_]+)\}", pattern)
    parts = re.split(r"\{[a-z_]+\}", pattern)
    found = re.fullmatch("([^/]+?)".join(re.escape(p) for p in parts), name)
    return dict(zip(keys, found.groups())) if found else None


def name_matches(pattern: str, name: str) -> bool:
    """Whether a metric name is `pattern` or a member of it ('maxboxacc@{iou}' matches maxboxacc@30)."""
    import re

    parts = re.split(r"\{[a-z_]+\}", pattern)
    return bool(re.fullmatch("[^/]+?".join(re.escape(p) for p in parts), name))


@dataclass
class DataLocator:
    """Finds dataset folders from --data-root / BENCH_DATA and --data-path overrides."""

    root: str | None = None
    overrides: dict[str, Path] = field(default_factory=dict)

    def dir(self, name: str) -> Path:
        return dataset_dir(name, self.root, self.overrides)


@dataclass
class DataCheck:
    """What `Task.check` found: a short summary per dataset, and the data's identity."""

    summary: dict[str, str]
    fingerprint: str  # bench.data.fingerprint: scored files with sizes, training files, labels and boxes
    n_samples: int  # samples in the scored split


@dataclass
class TaskResult:
    metrics: dict[str, float]
    n_total: int  # samples in the split
    n_evaluated: int  # samples scored (fewer under --limit)
    samples: list[dict[str, Any]] | None = None  # per-sample outputs, written next to the store
    details: dict[str, Any] = field(default_factory=dict)  # anything else worth keeping in the record


@dataclass
class Plan:
    """What a task hands the runner: the splits to score (bench.evaluation.Split: a dataset, the
    call into the model, an evaluator) and the details worth keeping (e.g. a training stage's)."""

    splits: list[Any]
    details: dict[str, Any] = field(default_factory=dict)
    cleanup: list[Any] = field(default_factory=list)  # callables run after the last split, even on error (e.g. removing hooks)
    # the record's sample counts: "first" counted split (splits scoring the same data two ways) or
    # the "sum" over counted splits (several test sets, e.g. imagenet_shift)
    counts: str = "first"


@dataclass
class RunContext:
    backbone: Any  # bench.backbones.build.LoadedBackbone
    config: dict[str, Any]
    data: DataLocator
    device: str
    batch_size: int
    workers: int
    limit: int | None
    seed: int
    progress: bool
    artifact_dir: Path  # cached training stages for this (checkpoint, task, version, config, seed)
    rank: int = 0
    world_size: int = 1
    task: str = ""
    weights_sha256: str = ""
    log: bool = False  # training stages announce their size and estimate, and log steady lines without a terminal
    # stored(task name) -> (record or None, why not): the complete record of another task that
    # this checkpoint's cell of it would be now (same preprocessing, default settings, the data on
    # disk: bench.runner.matching_record), e.g. imagenet_c's clean error from imagenet_cls. Every
    # rank gets rank 0's answer, so call it on every rank.
    stored: Any = None

    def stage_dir(self, stage: str, settings: dict[str, Any], family: str | None = None) -> Path:
        """A cached training stage's folder, keyed by the weights, the seed and the settings that
        change what it trains (not the evaluation settings, so changing those reuses the stage).
        Tasks of one family (voc_det and voc_det_frcnn) share their stages."""
        import hashlib
        import json

        from bench.paths import cache_dir

        blob = json.dumps({"sha256": self.weights_sha256, "seed": self.seed, **settings}, sort_keys=True, default=str)
        return cache_dir() / "artifacts" / (family or self.task) / stage / hashlib.sha256(blob.encode()).hexdigest()[:16]


class Task:
    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str]
    datasets: ClassVar[tuple[str, ...]] = ()
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    replaces_head: ClassVar[bool] = False  # True for tasks that put their own head on the backbone
    reported_key: ClassVar[str | None] = None  # key of the published numbers in a card's provenance
    seeded: ClassVar[bool] = True  # False for deterministic evaluations: --seed does not change them (nor their identity)
    sample_key: ClassVar[tuple[str, ...]] = ("index",)  # what identifies a samples row within its split: paired comparisons join on it

    def default_config(self) -> dict[str, Any]:
        """The protocol's parameters, with the paper's values as defaults."""
        return {}

    def settings(self) -> dict[str, Any]:
        """A bench.settings.Setting (type, range, allowed values, meaning) for every key of
        default_config() (dotted inside a group): what --set accepts."""
        return {}

    def validate(self, config: dict[str, Any]) -> None:
        """Refuse combinations of settings that make no sense (each value is already typed and in
        range); raise BenchError. Runs before any data is read."""

    def preset(self, group: str, name: str) -> dict[str, Any]:
        """The settings that `--set [group.]preset=name` stands for (a paper codebase's values at once)."""
        from bench.errors import BenchError

        raise BenchError(f"task {self.name} has no presets", "drop --set preset=...")

    def check(self, data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
        """Resolve and check the data the config names, without a model: a summary and the data's
        fingerprint, which is part of the cell's identity. Runs before every cache lookup, so keep
        it to listings, stats and label files. Raise BenchError."""
        raise NotImplementedError

    def plan(self, ctx: RunContext) -> Plan:
        """Prepare what is scored (train a cached stage if the task needs one, read the data) and
        return the splits; the runner does the loop (bench.evaluation.run_plan)."""
        raise NotImplementedError

    def metric_spec(self, name: str) -> MetricSpec:
        """The declared spec of an emitted metric (a family's pattern matches its members)."""
        for spec in self.metrics:
            if spec.name == name or spec.matches(name):
                return spec
        raise KeyError(f"task {self.name} emits metric '{name}', which none of its MetricSpecs declares")

    @classmethod
    def headline_metrics(cls) -> tuple[str, ...]:
        return tuple(m.name for m in cls.metrics if m.headline)
