"""95% intervals over images for report cells, by the procedure each metric declares (the same
code as bench check: Wilson for per-image proportions, the percentile bootstrap or DeLong for the
others), from the record's samples file. Only one-seed cells get one: over several seeds the
cell shows the seeds' spread instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report.model import Table


def add_intervals(tables: list[Table], results: Path, seed: int = 0) -> list[str]:
    """Fill ci_low/ci_high of every one-seed cell whose metric declares a statistic and whose
    samples file is there; returns what could not be computed, one line per metric and reason."""
    from bench.checks import pairing
    from bench.checks.check import Groups, compare_metric
    from bench.errors import BenchError

    by_run = {r["run_id"]: r for t in tables for r in t.records}
    rows_of: dict[str, list[dict[str, Any]] | None] = {}
    missing: dict[str, list[str]] = {}
    groups: dict[str, Groups] = {}
    done: dict[tuple[str, str], tuple[float, float]] = {}
    for table in tables:
        for row in table.rows:
            for cell in row.cells.values():
                if cell.n_seeds != 1 or cell.value is None:
                    continue
                run_id = cell.run_ids[0]
                if (run_id, cell.metric) in done:
                    cell.ci_low, cell.ci_high = done[run_id, cell.metric]
                    continue
                record = by_run[run_id]
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
    return [f"{why}, for {', '.join(dict.fromkeys(who))}" for why, who in missing.items()]
