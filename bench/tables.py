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


def newest_config(records: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Keep, per (backbone, task), the records of the newest config only, so that runs under other
    settings are never averaged together as if they were seeds. Returns (kept, notes)."""
    newest: dict[tuple[str, str], tuple[str, str]] = {}
    configs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in records:
        cell = (r["backbone"]["name"], r["task"]["name"])
        configs[cell].add(r["task"]["config_hash"])
        if cell not in newest or r["created_at"] >= newest[cell][0]:
            newest[cell] = (r["created_at"], r["task"]["config_hash"])
    kept = [r for r in records if r["task"]["config_hash"] == newest[r["backbone"]["name"], r["task"]["name"]][1]]
    notes = [
        f"{b} x {t}: results under {len(h)} configs; showing the newest ({newest[b, t][1]})"
        for (b, t), h in configs.items() if len(h) > 1
    ]
    return kept, notes


WSOL_RECIPE_NOTE = ("MaxBoxAcc / MaxBoxAccV2 of {tasks} come from the CutMix paper's fine-tuning (the head at 10x the learning rate), "
                    "not wsolevaluation's (layer4 and the head at 10x, Nesterov, tuned hyperparameters): they are not comparable to "
                    "wsolevaluation's published ResNet-50 CAM MaxBoxAccV2 (CUB 63.0, ImageNet 63.7); --set finetune_recipe=wsolevaluation trains its way")


def report_table(records: Sequence[dict[str, Any]]) -> str:
    """Backbones x (task/metric): mean over seeds (± std when several), paper value in brackets."""
    records, notes = newest_config(records)
    paper_recipe = sorted({r["task"]["name"] for r in records if "maxboxacc_v2" in r["metrics"]
                           and r["task"].get("config", {}).get("finetune_recipe", "paper") == "paper"})
    if paper_recipe:
        notes = [*notes, WSOL_RECIPE_NOTE.format(tasks=" and ".join(paper_recipe))]
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
    table = markdown(headers, rows, right=tuple(range(1, len(headers))))
    return table + "".join(f"\n\nnote: {n}" for n in notes)
