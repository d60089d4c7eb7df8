"""The records of one side of a check (a backbone's complete results of a task, one per seed) and
the per-sample rows each metric reads, joined on sample id with the other side's."""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.settings import flat
from bench.task import MetricSpec, Stat, name_fields


class NotComparable(Exception):
    """A metric this pair of samples files cannot compare (said under "not compared", not an error)."""


@dataclass
class StoredTask:
    """What a check needs of a task, read from its stored record (the metric specs, statistics
    included, as they were when the samples file was written), so that no task module (and no
    torch) is imported to compare stored results."""

    name: str
    seeded: bool
    sample_key: tuple[str, ...]
    specs: dict[str, MetricSpec]  # emitted metric -> its spec

    @classmethod
    def of(cls, record: dict[str, Any]) -> "StoredTask":
        info = record["task"]
        if "sample_key" not in info:
            raise BenchError(f"{record['backbone']['name']} x {info['name']} was stored before bench kept per-sample statistics",
                             f"re-run the cell: bench run --backbone {record['backbone']['name']} --task {info['name']} --force")
        specs = {}
        for metric, meta in record["metric_meta"].items():
            stat = meta.get("stat")
            specs[metric] = MetricSpec(meta["name"], bool(meta["higher_is_better"]), meta.get("unit", "%"), headline=bool(meta.get("headline")),
                                       detail=bool(meta.get("detail")), aggregate=tuple(meta["aggregate"]) if meta.get("aggregate") else None,
                                       stat=Stat(stat["kind"], stat["field"], tuple(tuple(r) for r in stat["rows"]), float(stat["scale"]), stat.get("cluster", "")) if stat else None)
        return cls(info["name"], bool(info.get("seeded", True)), tuple(info["sample_key"]), specs)

    def metric_spec(self, metric: str) -> MetricSpec:
        return self.specs[metric]


@dataclass
class Side:
    name: str  # the backbone's display name
    task: str
    records: list[dict[str, Any]]  # one per seed, seeds ascending

    @property
    def seeds(self) -> list[int]:
        return [r["seed"] for r in self.records]


def identity(record: dict[str, Any]) -> tuple[str, str, str]:
    """What must be equal on both sides: task version, settings, data scored."""
    return record["task"]["version"], record["task"]["config_hash"], record["data"]["fingerprint"]


def pick(records: list[dict[str, Any]], name: str, task: Any, seeds: list[int] | None, sha256: str | None = None) -> Side | None:
    """The newest complete results of `name` on `task` (and of the file with this sha256, when
    given): the records sharing the newest one's identity, the newest per seed. None if there are none."""
    mine = [r for r in records if r["backbone"]["name"] == name and r["task"]["name"] == task.name and not r["limited"]
            and (sha256 is None or r["backbone"]["sha256"] == sha256)]
    if not mine:
        return None
    newest = max(mine, key=lambda r: r["created_at"])
    same = [r for r in mine if identity(r) == identity(newest)]
    by_seed: dict[int, dict[str, Any]] = {}
    for r in sorted(same, key=lambda r: r["created_at"]):
        by_seed[0 if not task.seeded else int(r["seed"])] = r
    if seeds is not None and task.seeded:
        missing = [s for s in seeds if s not in by_seed]
        if missing:
            raise BenchError(f"{name} has no stored {task.name} result for seed(s) {', '.join(map(str, missing))}",
                             f"run them: bench run --backbone {name} --task {task.name} --seeds {','.join(map(str, seeds))} (or bench check --run)")
        by_seed = {s: by_seed[s] for s in seeds}
    return Side(name, task.name, [by_seed[s] for s in sorted(by_seed)])


def config_difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first part of the cell's identity other than the checkpoint in which two records differ, in words."""
    if a["task"]["version"] != b["task"]["version"]:
        return f"the task version (v{a['task']['version']} vs v{b['task']['version']})"
    if a["data"]["fingerprint"] != b["data"]["fingerprint"]:
        return f"the data scored (fingerprint {a['data']['fingerprint'][:12]} vs {b['data']['fingerprint'][:12]}, {a['data']['n_samples']} vs {b['data']['n_samples']} samples)"
    fa, fb = flat(a["task"]["config"]), flat(b["task"]["config"])
    differ = [k for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
    if differ:
        k = differ[0]
        return f"the setting {k} ({fa.get(k)!r} vs {fb.get(k)!r})" + (f" and {len(differ) - 1} more" if len(differ) > 1 else "")
    return None


def samples_path(record: dict[str, Any], results: Path) -> Path:
    """The record's samples file, in the samples/ folder of the store that holds the record (so that a
    results folder moved or copied whole still finds its own files, never another copy's)."""
    return results / "samples" / f"{record['run_id']}.jsonl"


def read_rows(record: dict[str, Any], results: Path) -> list[dict[str, Any]]:
    """Every per-sample row of a record; a missing, truncated or undecodable file is one clear error."""
    who = f"{record['backbone']['name']} x {record['task']['name']} (seed {record['seed']})"
    fix = f"re-run the cell: bench run --backbone {record['backbone']['name']} --task {record['task']['name']} --force"
    path = samples_path(record, results)
    if not (record.get("artifacts") or {}).get("samples"):
        raise BenchError(f"{who} was stored without a samples file", fix)
    if not path.is_file():
        raise BenchError(f"the samples file of {who} is missing: {path}", fix)
    rows = []
    with open(path) as fh:
        for k, line in enumerate(fh, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise BenchError(f"the samples file of {who} is truncated or corrupt at line {k}: {path}", fix) from None
    if not rows:
        raise BenchError(f"the samples file of {who} is empty: {path}", fix)
    return rows


def metric_fields(stat: Stat, pattern: str, metric: str, rows: list[dict[str, Any]]) -> tuple[list[str], list[tuple[str, str]]]:
    """The row keys a metric reads (several: a comma list, or a placeholder the name does not fill)
    and the (key, value) filters of its rows."""
    values = name_fields(pattern, metric) or {}
    filters = [(k, v.format(**values)) for k, v in stat.rows]
    fields: list[str] = []
    for field in stat.field.split(","):
        names = {n for _, n, _, _ in string.Formatter().parse(field) if n}
        if names <= set(values):
            fields.append(field.format(**values))
        else:  # every key of the rows matching the template
            regex = re.compile("".join(re.escape(lit) + ("(.+)" if n else "") for lit, n, _, _ in string.Formatter().parse(field)))
            first = next((r for r in rows if all(str(r.get(k)) == v for k, v in filters)), {})
            fields += sorted((key for key in first if regex.fullmatch(key)), key=lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)])
    return fields, filters


def joined(task: Any, metric: str, pattern: str, stat: Stat, new_rows: list[dict[str, Any]], ref_rows: list[dict[str, Any]],
           new_who: str, ref_who: str) -> tuple[list[str], list[list[Any]], list[list[Any]], list[tuple]]:
    """The metric's fields and, per side, their values for every sample id both hold, in one order."""
    fields, filters = metric_fields(stat, pattern, metric, new_rows)
    if not fields:
        raise BenchError(f"the samples of {new_who} hold no per-sample statistic for {task.name} {metric} ({stat.field})",
                         "re-run the cell with --force: bench writes per-sample statistics since this version")
    sides = []
    for rows, who in ((new_rows, new_who), (ref_rows, ref_who)):
        chosen = [r for r in rows if all(str(r.get(k)) == v for k, v in filters)]
        lacking = next((f for f in fields if any(f not in r for r in chosen)), None)
        if not chosen or lacking:
            raise BenchError(f"the samples file of {who} has no '{lacking or fields[0]}' per sample for {task.name} {metric} (written before bench kept it)",
                             f"re-run the cell with --force: bench run --backbone {who.split(' x ')[0]} --task {task.name} --force")
        keyed = {tuple(r.get(k) for k in task.sample_key): r for r in chosen}
        if len(keyed) != len(chosen):
            raise BenchError(f"the samples file of {who} holds a sample id twice for {task.name} {metric} ({len(chosen)} rows, {len(keyed)} ids)",
                             f"re-run the cell with --force: bench run --backbone {who.split(' x ')[0]} --task {task.name} --force")
        sides.append(keyed)
    a, b = sides
    if a.keys() != b.keys():
        common = len(a.keys() & b.keys())
        raise BenchError(f"{new_who} and {ref_who} scored other samples for {metric} ({len(a)} and {len(b)}, {common} in common)",
                         "score both on the same data and settings (their samples files hold other sample ids)")
    ids = sorted(a, key=lambda t: tuple(str(x) for x in t))
    return fields, [[a[i][f] for f in fields] for i in ids], [[b[i][f] for f in fields] for i in ids], ids


def as_data(kind: str, values: list[list[Any]]) -> tuple[Any, int]:
    """A side's joined values as what bench.stats.paired's estimator of `kind` takes, and the units."""
    from bench.stats.replicates import hit_matrix

    n = len(values)
    if kind in ("proportion", "mean"):
        return np.array([v[0] for v in values], dtype=float), n
    if kind == "ece":
        return (np.array([v[0] for v in values], float), 1 - np.array([v[1] for v in values], float)), n
    if kind.startswith("bleu_"):
        return np.array([v[0] for v in values], np.int64), n
    if kind in ("mce", "mean_err_15", "relative_mce"):  # per row [wrong, source, corruption, severity]: a (sources, cells) matrix, sources resampled
        sources = sorted({v[1] for v in values})
        cells = sorted({(v[2], int(v[3])) for v in values})
        at, col = {s: k for k, s in enumerate(sources)}, {c: k for k, c in enumerate(cells)}
        wrong, present = np.zeros((len(sources), len(cells))), np.zeros((len(sources), len(cells)))
        for v in values:
            wrong[at[v[1]], col[(v[2], int(v[3]))]] = v[0]
            present[at[v[1]], col[(v[2], int(v[3]))]] = 1
        return (wrong, present, cells), len(sources)
    if kind in ("voc_map", "voc_map_area"):  # per image: [[class, score, tp, fp] per detection], [objects per class]
        gt_counts = np.array([v[1] for v in values], np.int64)
        dets = [(k, c, s, tp, fp) for k, v in enumerate(values) for c, s, tp, fp in v[0]]
        classes = []
        for c in range(gt_counts.shape[1]):
            mine = [d for d in dets if d[1] == c]
            mine.sort(key=lambda d: -d[2])  # by score, stable: the scorer's order
            classes.append((np.array([d[0] for d in mine], np.int64), np.array([d[3] for d in mine], bool), np.array([d[4] for d in mine], bool)))
        return (classes, gt_counts), n
    if kind == "maxboxacc":
        width = max((run[1] for v in values for runs in v for run in runs), default=1)
        return [hit_matrix([v[k] for v in values], width) for k in range(len(values[0]))], n
    raise BenchError(f"no estimator for statistics of kind '{kind}'", "report this as a bench bug")
