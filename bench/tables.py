"""Markdown tables: the one printed after every run, and `bench report`'s cross-backbone table."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any, Iterable, Sequence


def markdown(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()) -> str:
    rows = [[str(c).replace("|", "\\|") for c in r] for r in rows]  # a | in a name would split its cell
    headers = [str(h).replace("|", "\\|") for h in headers]
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
    """One row per metric of every cell that ran, was cached, or failed; notes below the table."""
    rows, notes, failures = [], [], []
    several_seeds = len({o.record["seed"] for o in outcomes if o.record}) > 1
    for o in outcomes:
        if o.error:  # its message goes below the table: a long one would widen every row
            rows.append([o.backbone, o.task, "", "", "-", "", "", "failed (below)"])
            failures.append(f"failed: {o.backbone} x {o.task}: {o.error}")
            continue
        r = o.record
        cell_notes = ["cached" if o.cached else "new"] + ([f"seed {r['seed']}"] if several_seeds else [])
        if r["limited"]:
            cell_notes.append("limited")
        card = r["backbone"].get("card") or {}
        if card.get("bare_file"):  # no card: say which preprocessing the number was computed with
            p = card["preprocessing"]
            cell_notes.append(f"preprocessing {p['resize']}/{p['crop']}")
            note = (f"{r['backbone']['name']} is a checkpoint file with no card: evaluated with resize {p['resize']}, crop {p['crop']}, "
                    f"{p['interpolation']}, mean {', '.join(f'{v:g}' for v in p['mean'])}, std {', '.join(f'{v:g}' for v in p['std'])}; "
                    "change it with --preprocessing-from CARD or --resize/--crop/--mean/--std")
            if note not in notes:
                notes.append(note)
        n = r["n_samples"]
        samples = f"{n['evaluated']}" + (f"/{n['total']}" if n["evaluated"] != n["total"] else "")
        hidden = 0
        for name in declared_order(r):  # a cached record's metrics come back sorted from the store's JSON
            value, meta = r["metrics"][name], r["metric_meta"].get(name, {})
            if meta.get("detail"):
                hidden += 1
                continue
            rows.append([
                r["backbone"]["name"], f"{r['task']['name']} v{r['task']['version']}", name, arrow(meta),
                fmt(value), fmt(r.get("reported", {}).get(name)), samples, ", ".join(cell_notes),
            ])
        if hidden:
            note = f"{r['task']['name']}: {hidden} finer-grained metrics (per set, corruption, severity or sweep point) are in the record: bench export, or bench report --figure"
            if note not in notes:
                notes.append(note)
    table = markdown(["Backbone", "Task", "Metric", "Better", "Value", "Paper", "Samples", "Note"], rows, right=(4, 5, 6))
    return table + "".join(f"\n\n{f}" for f in failures) + "".join(f"\n\nnote: {n}" for n in notes)


def backbone_labels(records: Sequence[dict[str, Any]]) -> dict[str, str]:
    """checkpoint sha256 -> the row label: the backbone's name, plus a short sha when one name
    stands for several checkpoints (two files called model_best.pth are two rows)."""
    shas: dict[str, list[str]] = defaultdict(list)
    for r in records:
        b = r["backbone"]
        if b["sha256"] not in shas[b["name"]]:
            shas[b["name"]].append(b["sha256"])
    return {f"{name}\0{sha}": (name if len(group) == 1 else f"{name}@{sha[:8]}") for name, group in shas.items() for sha in group}


def row_key(r: dict[str, Any]) -> str:
    return f"{r['backbone']['name']}\0{r['backbone']['sha256']}"


def _data_fp(r: dict[str, Any]) -> str:
    return (r.get("data") or {}).get("fingerprint", "")


def chosen_runs(records: Sequence[dict[str, Any]], labels: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Per (checkpoint, task): the records of one task version and config on one data, so that
    runs under another version, other settings or data are never averaged as if they were seeds.
    A complete run wins over a limited one, then the one that scored more samples, then the newest.
    Returns (kept, notes)."""
    groups: dict[tuple[str, str], dict[tuple[str, str], list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        groups[row_key(r), r["task"]["name"]][r["task"]["config_hash"], _data_fp(r), r["task"].get("version", "")].append(r)
    kept, notes = [], []
    for (row, task), runs in groups.items():
        def rank(item: tuple[tuple[str, str], list[dict[str, Any]]]) -> tuple:
            rs = item[1]
            return (not any(x["limited"] for x in rs), max(x["n_samples"]["evaluated"] for x in rs), max(x["created_at"] for x in rs))
        (cfg, data, version), best = max(runs.items(), key=rank)
        kept += best
        if len(runs) > 1:
            why = "a complete run" if not best[0]["limited"] else "the largest run"
            notes.append(f"{labels[row]} x {task}: results under {len(runs)} configs or data; showing {why} ({cfg}, v{version}), the newest among equals")
    return kept, notes


def samples_cell(rs: Sequence[dict[str, Any]]) -> str:
    """Samples scored: '1000', or '5/1000' for a limited run."""
    n = rs[0]["n_samples"]
    return f"{n['evaluated']}" if n["evaluated"] == n["total"] else f"{n['evaluated']}/{n['total']}"


WSOL_RECIPE_NOTE = ("MaxBoxAcc / MaxBoxAccV2 of {tasks} come from the CutMix paper's fine-tuning (the head at 10x the learning rate), "
                    "not wsolevaluation's (layer4 and the head at 10x, Nesterov, tuned hyperparameters): they are not comparable to "
                    "wsolevaluation's published ResNet-50 CAM MaxBoxAccV2 (CUB 63.0, ImageNet 63.7); --set finetune_recipe=wsolevaluation trains its way")


def declared_order(r: dict[str, Any]) -> list[str]:
    """A record's metric names in the order its task declared them (sorted for records without it)."""
    meta = r["metric_meta"]
    return sorted(r["metrics"], key=lambda m: ((meta.get(m) or {}).get("order", len(meta)), m))


def _shown(r: dict[str, Any], headline_only: bool) -> list[str]:
    """A record's metrics to show: all, in the task's declared order, or its headline ones (all,
    sorted, for records that predate the flag)."""
    meta = r["metric_meta"]
    names = declared_order(r)
    if not headline_only:
        return [m for m in names if not (meta.get(m) or {}).get("detail")] or names  # per-cell metrics: bench export and the figures
    return [m for m in names if (meta.get(m) or {}).get("headline")] or names


def build_table(records: Sequence[dict[str, Any]], headline_only: bool = False, baseline: str | None = None,
                paper: bool = True, counts: bool = True, notes: bool = True) -> str:
    """The one table builder (`bench report`, the demo), from records alone: one row per
    checkpoint, one column per task metric; each cell the mean over seeds (± std when several),
    then the difference to the `baseline` row, the published value in [brackets] and
    '(limited n/N)' for a limited run; a `<task>/n` column per task with the samples scored."""
    labels = backbone_labels(records)
    records, table_notes = chosen_runs(records, labels)
    paper_recipe = sorted({r["task"]["name"] for r in records if "maxboxacc_v2" in r["metrics"]
                           and r["task"].get("config", {}).get("finetune_recipe", "paper") == "paper"})
    if paper_recipe:
        table_notes = [*table_notes, WSOL_RECIPE_NOTE.format(tasks=" and ".join(paper_recipe))]
    per_task: dict[str, dict[str, dict[str, Any]]] = {}  # task -> its metric columns, in the order first seen
    runs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    rows_in_order: list[str] = []
    for r in records:
        row = row_key(r)
        if row not in rows_in_order:
            rows_in_order.append(row)
        task = r["task"]["name"]
        runs[row, task].append(r)
        mine = per_task.setdefault(task, {})
        for metric in _shown(r, headline_only):
            mine.setdefault(metric, r["metric_meta"].get(metric, {}))
    columns: dict[str, dict[str, Any] | None] = {}  # None: a task's samples column, right after its metrics whatever the rows
    for task, metrics in per_task.items():
        ordered = sorted(metrics, key=lambda m: (metrics[m].get("order", len(metrics)), m))  # the task's declared order
        columns.update({f"{task}/{m}": metrics[m] for m in ordered})
        if counts:
            columns[f"{task}/n"] = None
    means: dict[tuple[str, str], float] = {}
    for (row, task), rs in runs.items():
        for metric in {m for x in rs for m in x["metrics"]}:
            vals = [x["metrics"][metric] for x in rs if metric in x["metrics"]]
            means[row, f"{task}/{metric}"] = statistics.fmean(vals)
    base_row = next((row for row in rows_in_order if labels[row] == baseline), None)
    table_rows = []
    for row in rows_in_order:
        cells = [labels[row]]
        for col, meta in columns.items():
            task, metric = col.rsplit("/", 1)
            rs = runs.get((row, task), [])
            if meta is None:
                cells.append(samples_cell(rs) if rs else "-")
                continue
            vals = [x["metrics"][metric] for x in rs if metric in x["metrics"]]
            if not vals:
                cells.append("-")
                continue
            cell = fmt(means[row, col])
            if len(vals) > 1:
                cell += f" ± {statistics.stdev(vals):.2f} (n={len(vals)} seeds)"
            if base_row is not None and row != base_row and (base_row, col) in means:
                cell += f" ({means[row, col] - means[base_row, col]:+.2f})"
            if paper and metric in rs[0].get("reported", {}):
                cell += f" [{rs[0]['reported'][metric]:.2f}]"
            if rs[0]["limited"]:
                cell += f" (limited {samples_cell(rs)})"
            cells.append(cell)
        table_rows.append(cells)
    headers = ["Backbone"] + [f"{c} {arrow(m)}" if m is not None else c for c, m in columns.items()]
    table = markdown(headers, table_rows, right=tuple(range(1, len(headers))))
    return table + ("".join(f"\n\nnote: {n}" for n in table_notes) if notes else "")


def report_table(records: Sequence[dict[str, Any]]) -> str:
    """`bench report`: every metric, published numbers, sample counts and notes."""
    return build_table(records)
