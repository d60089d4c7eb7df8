"""The result record: its typed shape, built in one place (`build_record`) and read through one
place (`read_record`, which brings records of older schema versions up to this one). The store,
`bench report`, the demo and `bench export` all see records through these. Records stay plain
dicts at run time (TypedDicts), so that `bench export` writes them as they are.

Schema versions: 1 (cells keyed by sha256, task, version, config, seed), 2 (+ the backbone's
name and the data's fingerprint in the key, `data`), 3 (+ each metric's full spec in
`metric_meta`: convention, report tables, headline, aggregation, declared order).
"""

from typing import Any, NotRequired, TypedDict

SCHEMA_VERSION = 3


class BackboneInfo(TypedDict):
    name: str  # the card's name (or the file's): part of the cell's identity
    spec: str  # what the user typed
    arch: str
    sha256: str
    path: str | None
    card: dict[str, Any]  # the resolved card, preprocessing included
    load_report: dict[str, Any]  # what was missing, unexpected, replaced, filled


class TaskInfo(TypedDict):
    name: str
    version: str
    config: dict[str, Any]  # every setting, typed and resolved
    config_hash: str
    seeded: NotRequired[bool]  # whether --seed changes it (bench check: seeds add the seed-to-seed spread)
    sample_key: NotRequired[list[str]]  # what identifies a samples row within its split (bench check joins on it)


class DataInfo(TypedDict):
    fingerprint: str  # bench.data.fingerprint ("" for records older than schema 2)
    n_samples: int  # samples in the scored split
    summary: dict[str, str]


class MetricMeta(TypedDict):
    name: str  # the spec's name (a family's pattern, e.g. maxboxacc@{iou})
    higher_is_better: bool
    unit: str
    description: str  # the metric's convention
    tables: list[str]  # report columns it fills (e.g. "paper Table 9: Top-1 Loc")
    headline: bool
    aggregate: list[str] | None
    order: int  # position among the task's metrics
    stat: NotRequired[dict[str, Any] | None]  # how its intervals are computed (bench.task.Stat), from schema 3 on when declared


class Record(TypedDict):
    schema_version: int
    run_id: str
    cell_key: str
    created_at: str
    status: str
    backbone: BackboneInfo
    task: TaskInfo
    metrics: dict[str, float]
    metric_meta: dict[str, MetricMeta]
    reported: dict[str, float]  # the card's published numbers for this task
    seed: int
    determinism: dict[str, Any]
    n_samples: dict[str, int]  # {"total", "evaluated"}
    data: DataInfo
    limited: bool
    device: dict[str, Any]
    batch_size: int
    workers: int
    env: dict[str, Any]
    timing: dict[str, float]
    artifacts: dict[str, Any]
    details: dict[str, Any]
    migrated_from: NotRequired[int]  # the schema version it was stored under, when older
    launch: NotRequired[dict[str, Any]]  # a cell run as a launched job: launcher, job id, node, requeues (bench.launch.job)


def build_record(**fields: Any) -> Record:
    """A record of this schema version from its fields; every field of `Record` must be given."""
    missing = sorted(Record.__required_keys__ - {"schema_version"} - set(fields))
    extra = sorted(set(fields) - set(Record.__annotations__))
    if missing or extra:
        raise TypeError(f"record fields: missing {missing}, unknown {extra}")
    return Record(schema_version=SCHEMA_VERSION, **fields)  # type: ignore[typeddict-item]


def read_record(raw: dict[str, Any]) -> Record:
    """A stored record, brought up to this schema version (older records lack the data's
    fingerprint and the metrics' full specs; what they lack is filled in as unknown, never guessed)."""
    record = dict(raw)
    version = int(record.get("schema_version", 1))
    if version > SCHEMA_VERSION:
        from bench.errors import BenchError

        raise BenchError(f"a stored record has schema version {version}, newer than this bench's {SCHEMA_VERSION}", "upgrade bench to read this results store")
    if version < 2:
        record["data"] = {"fingerprint": "", "n_samples": int((record.get("n_samples") or {}).get("total", 0)), "summary": {}}
    if version < 3:
        meta = record.get("metric_meta") or {}
        order = {name: k for k, name in enumerate(sorted(record.get("metrics") or {}))}
        record["metric_meta"] = {
            name: {"name": name, "higher_is_better": bool((meta.get(name) or {}).get("higher_is_better", True)), "unit": (meta.get(name) or {}).get("unit", "%"),
                   "description": "", "tables": [], "headline": False, "aggregate": None, "order": order[name]}
            for name in record.get("metrics") or {}
        }
    if version < SCHEMA_VERSION:
        record["migrated_from"] = version
        record["schema_version"] = SCHEMA_VERSION
    return record  # type: ignore[return-value]
