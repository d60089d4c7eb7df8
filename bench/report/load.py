"""The records a report reads, without decoding thousands of whole records: SQLite pulls the few
fields a table needs out of each stored record (ResultsStore.extract), and the metrics' specs come
from the catalog of today's task declarations. A record whose task is outside the catalog, or of
another task version or schema version, is read whole, through bench.record.read_record. The
whole records behind the numbers are read later, only where a page needs them (intervals, figures,
drill-downs)."""

from __future__ import annotations

import json
from typing import Any

from bench.record import SCHEMA_VERSION
from bench.registry import matches
from bench.report import catalog

PATHS = ("$.metrics", "$.schema_version", "$.backbone.arch", "$.backbone.card.bare_file", "$.reported", "$.n_samples", "$.data.summary", "$.data.fingerprint",
         "$.task.config.finetune_recipe", "$.task.config.split", "$.task.config.cam_threshold", "$.artifacts.samples", "$.env.versions")


_META: dict[tuple[str, tuple[str, ...]], dict[str, Any] | None] = {}


def _meta(task: str, metrics: dict[str, float]) -> dict[str, Any] | None:
    """The metric specs of a record's metrics from the catalog; one dict, shared read-only, for
    every record of a task with the same metric names."""
    key = (task, tuple(metrics))
    if key in _META:
        return _META[key]
    out: dict[str, Any] | None = {}
    order = list(catalog.load()[task]["specs"])
    for m in metrics:
        found = catalog.spec_of(task, m)
        if found is None:
            out = None  # a metric today's task does not declare: read the record whole
            break
        name, spec = found
        out[m] = {"name": name, **spec, "tables": [], "order": order.index(name)}
    _META[key] = out
    return out


def tasks_of(tables: str) -> list[str] | None:
    """The tasks whose records can fill these tables ('all' or a table outside the catalog: None,
    every task)."""
    from bench.report.model import declared

    known = declared()
    names = [n.strip() for n in tables.split(",") if n.strip()]
    if tables == "all" or any(n not in known for n in names):
        return None
    return sorted({t for n in names for t in known[n]["tasks"]})


def report_records(store: Any, backbones: str = "*", tasks: str = "*", include_limited: bool = False,
                   only: list[str] | None = None) -> list[dict[str, Any]]:
    """The selected records in the shape bench.report.model reads (oldest first); `only`: the tasks
    the tables asked for can hold (tasks_of), and every task outside the catalog."""
    light: list[Any] = []
    whole = []
    known = catalog.load()
    if only is not None:
        only = sorted(set(only) | (store.task_names() - set(known)))
    for row in store.extract(PATHS, include_limited, only):
        run_id, backbone, sha, task, version, cfg, seed, limited, _, created = row[:10]
        if not ((backbones == "*" or matches(backbone, backbones)) and (tasks == "*" or matches(task, tasks))):
            continue
        (values, schema, arch, bare, reported, n_samples, summary, fingerprint, recipe, split, cam_threshold, samples, versions) = json.loads(row[10])
        meta = _meta(task, values) if task in known and known[task].get("version") == version and schema == SCHEMA_VERSION else None
        if meta is None:
            whole.append(run_id)
            light.append(run_id)
            continue
        config = {k: v for k, v in (("finetune_recipe", recipe), ("split", split), ("cam_threshold", cam_threshold)) if v is not None}
        light.append({
            "run_id": run_id, "created_at": created, "seed": seed, "limited": bool(limited), "metrics": values, "metric_meta": meta,
            "backbone": {"name": backbone, "sha256": sha, "arch": arch or "", "card": {"bare_file": bool(bare)}},
            "task": {"name": task, "version": version, "config_hash": cfg, "config": config},
            "reported": reported or {}, "n_samples": n_samples or {"total": 0, "evaluated": 0},
            "data": {"fingerprint": fingerprint or "", "summary": summary or {}},
            "artifacts": {"samples": samples}, "env": {"versions": versions or {}},
            "specs_from": "catalog",  # metric_meta is today's declaration: bench.report.model caches its placements
        })
    if whole:
        full = {r["run_id"]: r for r in store.by_run_ids(whole)}
        light = [full[x] if isinstance(x, str) else x for x in light]
    return light
