"""Report tables as tidy rows: one per backbone x task x metric (CSV and JSON carry the same fields)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from bench.report.model import Table

FIELDS = ("table", "column", "backbone", "task", "metric", "value", "std", "n_seeds", "ci_low", "ci_high", "n_images",
          "published", "baseline", "baseline_diff", "best", "higher_is_better", "unit", "run_ids")


def rows(tables: list[Table]) -> list[dict[str, Any]]:
    out = []
    for t in tables:
        for row in t.rows:
            for c in t.columns:
                cell = row.cells.get(c.label)
                if cell is None:
                    continue
                out.append({"table": t.name, "column": c.label, "backbone": row.label, "task": cell.task, "metric": cell.metric,
                            "value": cell.value, "std": cell.std, "n_seeds": cell.n_seeds, "ci_low": cell.ci_low, "ci_high": cell.ci_high,
                            "n_images": cell.n_images, "published": cell.published, "baseline": row.baseline if cell.diff is not None else None,
                            "baseline_diff": cell.diff, "best": cell.best, "higher_is_better": c.higher_is_better, "unit": c.unit,
                            "run_ids": " ".join(cell.run_ids)})
    return out


def to_csv(tables: list[Table]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows(tables):
        w.writerow({k: "" if v is None else v for k, v in r.items()})
    return buf.getvalue()


def to_json(tables: list[Table]) -> str:
    return json.dumps({"tables": [{"name": t.name, "title": t.title, "caption": t.caption, "footnotes": t.footnotes,
                                   "columns": [c.label for c in t.columns], "rows": [r.label for r in t.rows]} for t in tables],
                       "cells": rows(tables)}, indent=1) + "\n"
