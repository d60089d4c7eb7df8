"""Markdown tables: the one printed after every run, and `bench report`'s cross-backbone table."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any, Iterable, Sequence


def markdown(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), rule] + [line(r) for r in rows])


def arrow(meta: dict[str, Any]) -> str:
    return "↑" if meta.get("higher_is_better") else "↓"


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def run_table(outcomes: Sequence[Any]) -> str:
    """One row per metric of every cell that ran, was cached, or failed."""
    rows = []
    for o in outcomes:
        if o.error:
            rows.append([o.backbone, o.task, "", "", "-", "", "", "failed: " + o.error])
            continue
        r = o.record
        notes = ["cached" if o.cached else "new"]
        if r["limited"]:
            notes.append("limited")
        n = r["n_samples"]
        samples = f"{n['evaluated']}" + (f"/{n['total']}" if n["evaluated"] != n["total"] else "")
        for name, value in r["metrics"].items():
            meta = r["metric_meta"].get(name, {})
            rows.append([
                r["backbone"]["name"], f"{r['task']['name']} v{r['task']['version']}", name, arrow(meta),
                fmt(value), fmt(r.get("reported", {}).get(name)), samples, ", ".join(notes),
            ])
    return markdown(["Backbone", "Task", "Metric", "", "Value", "Paper", "Samples", "Note"], rows, right=(4, 5, 6))


def report_table(records: Sequence[dict[str, Any]]) -> str:
    """Backbones x (task/metric): mean over seeds (± std when several), paper value in brackets."""
    columns: dict[str, dict[str, Any]] = {}
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    reported: dict[tuple[str, str], float] = {}
    backbones: list[str] = []
    for r in records:
        name = r["backbone"]["name"]
        if name not in backbones:
            backbones.append(name)
        for metric, value in r["metrics"].items():
            col = f"{r['task']['name']}/{metric}"
            columns.setdefault(col, r["metric_meta"].get(metric, {}))
            values[name, col].append(value)
            if metric in r.get("reported", {}):
                reported[name, col] = r["reported"][metric]
    rows = []
    for b in backbones:
        row = [b]
        for col in columns:
            vals = values.get((b, col))
            if not vals:
                row.append("-")
                continue
            cell = fmt(statistics.fmean(vals))
            if len(vals) > 1:
                cell += f" ± {statistics.stdev(vals):.2f} (n={len(vals)})"
            if (b, col) in reported:
                cell += f" [{reported[b, col]:.2f}]"
            row.append(cell)
        rows.append(row)
    headers = ["Backbone"] + [f"{c} {arrow(m)}" for c, m in columns.items()]
    return markdown(headers, rows, right=tuple(range(1, len(headers))))
