"""The table model: paper-style tables built from stored records and the tables their tasks
declare (bench.report.catalog), the same for every output format.

A table has one row per checkpoint and one column per declared label ("paper Table 9: CUB200
Top-1 Loc" fills column "CUB200 Top-1 Loc" of table_9). Tasks that declare the same label fill the
same column (voc_det's SSD mAP and voc_det_ssd's), newest record first. Each cell: the mean over
the stored seeds of one configuration (bench.tables.chosen_runs), the sample standard deviation
(ddof 1) and n when there are several, the card's published number, the difference to the
baseline row, whether it is the column's best, its 95% interval over images when asked for
(bench.report.intervals) and the run ids behind it. Limited runs never fill a table.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

from bench.report import catalog
from bench.tables import backbone_labels, chosen_runs, row_key, WSOL_RECIPE_NOTE


@dataclass
class Cell:
    value: float | None = None
    std: float | None = None  # over seeds, ddof 1; None with one seed
    n_seeds: int = 0
    published: float | None = None
    diff: float | None = None  # value - the baseline row's value in this column
    best: bool = False
    ci_low: float | None = None
    ci_high: float | None = None
    n_images: int | None = None
    task: str = ""
    metric: str = ""
    run_ids: list[str] = field(default_factory=list)


@dataclass
class Column:
    label: str
    higher_is_better: bool
    unit: str
    description: str
    tasks: list[str] = field(default_factory=list)
    position: tuple = ()


@dataclass
class Row:
    label: str
    backbone: str
    sha256: str
    arch: str
    baseline: str | None  # the row label its differences are to
    baseline_card: bool = False  # a card named *_baseline (the default baseline of its architecture)
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: list[Row]
    caption: str
    footnotes: list[str]
    tasks: list[str]
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def cell(self, row: Row, column: Column) -> Cell:
        return row.cells.get(column.label) or Cell()


def _order(title: str) -> tuple:
    """transfer first, then the paper's tables (appendix last) and figures by number, then bench's own tables."""
    found = re.match(r"paper (Tables?|Figure) (A?)(\d+)", title)
    if title == "transfer":
        return (0, "", 0, title)
    if found:
        return (1 if found.group(1).startswith("Table") else 2, found.group(2), int(found.group(3)), title)
    return (3, "", 0, title)


@lru_cache(maxsize=4096)
def _fill(label: str, spec_name: str, metric: str) -> str:
    """A family member's label: its placeholders filled from the metric's name, appended when the label has none."""
    from bench.task import name_fields

    values = name_fields(spec_name, metric) or {}
    if not values:
        return label
    if re.search(r"\{[a-z_]+\}", label):
        return label.format(**values)
    return f"{label} {' '.join(values.values())}"


HEADLINE = "headline"  # not a declared table: every task's headline metrics, labelled task/metric (the demo's table)


def placements(record: dict[str, Any], headline: bool = False) -> list[tuple[str, str, str]]:
    """(table title, column label, metric) for every metric of a record that fills a table (with
    `headline`: its task's headline metrics, for the HEADLINE table)."""
    if headline:
        meta = record["metric_meta"]
        return [("headline metrics", f"{record['task']['name']}/{m}", m) for m in record["metrics"]
                if (meta.get(m) or {}).get("headline") and not (meta.get(m) or {}).get("detail")]
    if record.get("specs_from") == "catalog":  # the same for every record of the task with these metrics
        return _placed(record["task"]["name"], tuple(record["metrics"]), record["metric_meta"])
    return _placements(record)


_CACHE: dict[tuple[str, tuple[str, ...]], list[tuple[str, str, str]]] = {}


def _placed(task: str, metrics: tuple[str, ...], meta: dict[str, Any]) -> list[tuple[str, str, str]]:
    key = (task, metrics)
    if key not in _CACHE:
        _CACHE[key] = _placements({"task": {"name": task}, "metrics": metrics, "metric_meta": meta})
    return _CACHE[key]


def _placements(record: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for metric in record["metrics"]:
        meta = record["metric_meta"].get(metric) or {}
        spec_name = meta.get("name", metric)
        if spec_name == metric:  # records older than schema 3 name no family: today's declaration does
            found = catalog.spec_of(record["task"]["name"], metric)
            spec_name = found[0] if found else metric
        for tag in catalog.tags(record["task"]["name"], spec_name, meta.get("tables") or []):
            title, label = catalog.split_tag(tag)
            out.append((title, _fill(label, spec_name, metric), metric))
    return out


def available(records: Sequence[dict[str, Any]], prepared: "Prepared | None" = None) -> dict[str, dict[str, Any]]:
    """name -> {title, tasks} of every table the records fill, in report order."""
    found: dict[str, dict[str, Any]] = {}
    if prepared is not None:
        for name, hits in prepared.placed.items():
            found[name] = {"title": hits[0][1], "tasks": list(dict.fromkeys(r["task"]["name"] for r, _, _, _ in reversed(hits)))}
    else:
        for r in records:
            for title, _, _ in placements(r):
                entry = found.setdefault(catalog.slug(title), {"title": title, "tasks": []})
                if r["task"]["name"] not in entry["tasks"]:
                    entry["tasks"].append(r["task"]["name"])
    return dict(sorted(found.items(), key=lambda kv: _order(kv[1]["title"])))


def declared() -> dict[str, dict[str, Any]]:
    """name -> {title, tasks} of every table a registered task declares (from the catalog)."""
    found: dict[str, dict[str, Any]] = {}
    for task, entry in catalog.load().items():
        for tags in entry["metrics"].values():
            for tag in tags:
                title, _ = catalog.split_tag(tag)
                t = found.setdefault(catalog.slug(title), {"title": title, "tasks": []})
                if task not in t["tasks"]:
                    t["tasks"].append(task)
    return dict(sorted(found.items(), key=lambda kv: _order(kv[1]["title"])))


def _is_baseline_card(r: dict[str, Any]) -> bool:
    card = r["backbone"].get("card") or {}
    return not card.get("bare_file") and r["backbone"]["name"].endswith("_baseline")


@dataclass
class Prepared:
    """What every table of one report shares, computed once: the runs kept per checkpoint and task
    (one configuration, bench.tables.chosen_runs, newest first), their notes, the row labels, and
    per table the (record, title, column label, metric) it takes."""
    kept: list[dict[str, Any]]
    notes: list[str]
    labels: dict[str, str]
    placed: dict[str, list[tuple[dict[str, Any], str, str, str]]]
    first_seen: dict[str, int]  # row key -> the position of its first kept record (the rows' order)


def prepare(records: Sequence[dict[str, Any]], headline: bool = False, names: Sequence[str] | None = None) -> Prepared:
    """`names`: only these tables (default: every table the records fill)."""
    records = [r for r in records if not r["limited"]]
    labels = backbone_labels(records)
    kept, notes = chosen_runs(records, labels)
    placed: dict[str, list[tuple[dict[str, Any], str, str, str]]] = defaultdict(list)
    wanted = set(names) if names is not None else None
    for r in sorted(kept, key=lambda r: r["created_at"], reverse=True):
        for t, label, metric in placements(r, headline):
            name = HEADLINE if headline else catalog.slug(t)
            if wanted is None or name in wanted:
                placed[name].append((r, t, label, metric))
    return Prepared(kept, notes, labels, placed, {row_key(r): k for k, r in reversed(list(enumerate(kept)))})


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    """The mean and the sample standard deviation (ddof 1; None for one value)."""
    n = len(values)
    mean = math.fsum(values) / n
    return mean, (math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None)


def build(records: Sequence[dict[str, Any]], name: str, baseline: str | None = None, prepared: Prepared | None = None) -> Table:
    """One table from complete records (limited ones are dropped here too). `baseline`: the row
    label every difference is to; by default, per architecture, the card named *_baseline.
    `prepared`: what several tables of the same records share (prepare)."""
    prep = prepared or prepare(records, name == HEADLINE)
    labels, notes = prep.labels, prep.notes
    title = None
    columns: dict[str, Column] = {}
    found: dict[tuple[str, str], list[tuple[dict[str, Any], str]]] = defaultdict(list)  # (row, column) -> (record, metric)
    rows: dict[str, Row] = {}
    tasks: list[str] = []
    first_seen = prep.first_seen  # rows in the order the store first holds them
    for r, t, label, metric in prep.placed.get(name, []):
        title = t
        meta = r["metric_meta"].get(metric) or {}
        col = columns.get(label)
        if col is None:
            col = columns[label] = Column(label, bool(meta.get("higher_is_better", True)), meta.get("unit", "%"), meta.get("description", ""),
                                          position=catalog.position(r["task"]["name"], meta.get("name", metric), metric))
        task = r["task"]["name"]
        if task not in col.tasks:
            col.tasks.append(task)
        if task not in tasks:
            tasks.append(task)
        key = row_key(r)
        if key not in rows:
            rows[key] = Row(labels[key], r["backbone"]["name"], r["backbone"]["sha256"], r["backbone"].get("arch", ""), None, _is_baseline_card(r))
        found[key, label].append((r, metric))
    if title is None:
        raise KeyError(name)
    for (key, label), hits in found.items():
        task = hits[0][0]["task"]["name"]  # the newest record's task, when several tasks fill the column
        same = [(r, m) for r, m in hits if r["task"]["name"] == task and r["task"]["config_hash"] == hits[0][0]["task"]["config_hash"]]
        values = [r["metrics"][m] for r, m in same]
        first, metric = same[0]
        mean, std = _mean_std(values)
        rows[key].cells[label] = Cell(
            value=mean, std=std, n_seeds=len(values),
            published=(first.get("reported") or {}).get(metric), task=task, metric=metric,
            n_images=(first.get("n_samples") or {}).get("evaluated"), run_ids=[r["run_id"] for r, _ in same])
    ordered = sorted(rows.values(), key=lambda row: first_seen[f"{row.backbone}\0{row.sha256}"])
    by_label = {row.label: row for row in ordered}
    per_arch: dict[str, str] = {}
    for o in ordered:
        if o.baseline_card:
            per_arch.setdefault(o.arch, o.label)
    for row in ordered:
        row.baseline = (baseline if baseline in by_label else None) if baseline is not None else per_arch.get(row.arch)
        base = by_label.get(row.baseline) if row.baseline else None
        if base is None or base is row:
            continue
        for label, cell in row.cells.items():
            other = base.cells.get(label)
            if cell.value is not None and other is not None and other.value is not None:
                cell.diff = cell.value - other.value
    for col in columns.values():
        values = [row.cells[col.label].value for row in ordered if col.label in row.cells]
        if len(values) > 1:
            best = max(values) if col.higher_is_better else min(values)
            for row in ordered:
                if col.label in row.cells and row.cells[col.label].value == best:
                    row.cells[col.label].best = True
    shown = {x for row in ordered for cell in row.cells.values() for x in cell.run_ids}
    table_records = list({r["run_id"]: r for hits in found.values() for r, _ in hits if r["run_id"] in shown}.values())
    tasks = [t for t in tasks if any(r["task"]["name"] == t for r in table_records)]
    tasks.sort(key=lambda t: catalog.position(t, "", ""))
    return Table(name, title, sorted(columns.values(), key=lambda c: c.position), ordered, _caption(title, tasks, table_records),
                 _footnotes(table_records, notes, tasks), tasks, table_records)


def _caption(title: str, tasks: list[str], records: list[dict[str, Any]]) -> str:
    about = []
    for task in tasks:
        desc = (catalog.load().get(task) or {}).get("description", task)
        rs = [r for r in records if r["task"]["name"] == task]
        summary = "; ".join(sorted({v for r in rs for v in ((r.get("data") or {}).get("summary") or {}).values()}))
        about.append(f"{task}: {desc}" + (f" ({summary})" if summary else ""))
    return " ".join(f"{a}." for a in about)


LEGEND = ("Each value is the mean over the stored seeds of one configuration; with several seeds, ± is the sample standard "
          "deviation (ddof 1) over n seeds. [x]: the number published for that checkpoint (its card's source). (+x): the difference "
          "to the row's baseline. Bold: the best value of the column by the metric's direction. '-': no result.")


def _footnotes(records: list[dict[str, Any]], notes: list[str], tasks: list[str]) -> list[str]:
    out = [LEGEND]
    paper_recipe = sorted({r["task"]["name"] for r in records if "maxboxacc_v2" in r["metrics"]
                           and r["task"].get("config", {}).get("finetune_recipe", "paper") == "paper"})
    if paper_recipe:
        out.append(WSOL_RECIPE_NOTE.format(tasks=" and ".join(paper_recipe)))
    return out + [n for n in notes if any(f" x {t}:" in n for t in tasks)]
