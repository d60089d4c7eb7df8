"""95% intervals over images for report cells, by the procedure each metric declares (the same
code as bench check: Wilson for per-image proportions, the percentile bootstrap or DeLong for the
others), from the record's samples file. Only one-seed cells get one: over several seeds the
cell shows the seeds' spread instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from bench.report.model import Table


def add_intervals(tables: list[Table], results: Path, full: Callable[[list[str]], list[dict[str, Any]]] | None = None, seed: int = 0) -> list[str]:
    """Fill ci_low/ci_high of every one-seed cell whose metric declares a statistic and whose
    record has a samples file (`full` reads those records whole); returns what could not be
    computed, one line per task, metric and reason."""
    cells = [(row, cell) for t in tables for row in t.rows for cell in row.cells.values() if cell.n_seeds == 1 and cell.value is not None]
    light = {r["run_id"]: r for t in tables for r in t.records}
    wanted = sorted({cell.run_ids[0] for _, cell in cells if (light[cell.run_ids[0]].get("artifacts") or {}).get("samples")})
    if not wanted:
        return ["no intervals: no record in these tables has a samples file"] if cells else []
    from bench.checks import pairing  # scipy: only when there is something to compute
    from bench.checks.check import Groups, compare_metric
    from bench.errors import BenchError

    by_run = {r["run_id"]: r for r in (full(wanted) if full else [light[w] for w in wanted])}
    rows_of: dict[str, list[dict[str, Any]] | None] = {}
    missing: dict[str, list[str]] = {}
    groups: dict[str, Groups] = {}
    done: dict[tuple[str, str], tuple[float, float]] = {}
    without = sorted({cell.task for _, cell in cells if cell.run_ids[0] not in by_run})
    for row, cell in cells:
        run_id = cell.run_ids[0]
        record = by_run.get(run_id)
        if record is None:
            continue
        if (run_id, cell.metric) in done:
            cell.ci_low, cell.ci_high = done[run_id, cell.metric]
            continue
        if not ((record["metric_meta"].get(cell.metric) or {}).get("stat")):
            continue
        if run_id not in rows_of:
            try:
                rows_of[run_id] = pairing.read_rows(record, results)
            except BenchError as e:
                rows_of[run_id] = None
                missing.setdefault(f"{cell.task}: no interval ({e.message})", []).append(row.label)
        rows = rows_of[run_id]
        if rows is None:
            continue
        task = pairing.StoredTask.of(record)
        who = f"{row.label} x {cell.task}"
        try:
            p = compare_metric(task, cell.metric, task.metric_spec(cell.metric), rows, rows, who, who, None, seed, 0.05,
                               groups.setdefault(run_id, Groups.of(task, record["metrics"])))
        except (pairing.NotComparable, BenchError) as e:
            missing.setdefault(f"{cell.task} {cell.metric}: no interval ({getattr(e, 'message', str(e))})", []).append(row.label)
            continue
        cell.ci_low, cell.ci_high = p.new_low, p.new_high
        done[run_id, cell.metric] = (p.new_low, p.new_high)
    out = [f"{why}, for {', '.join(dict.fromkeys(who))}" for why, who in missing.items()]
    if without:
        out.append(f"no intervals where the record has no samples file ({', '.join(without)})")
    return out
