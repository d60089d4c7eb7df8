"""The self-contained HTML report: every table (sortable, published numbers and intervals shown),
the figures the stored data allows as inline PNG, per-image drill-downs and a provenance section,
in one file with no network access (CSS, script, data and images inline). Rendered by jinja2 from
templates/report.html.j2, every value autoescaped."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.report.model import Table

TEMPLATE = "report.html.j2"


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def provenance(tables: list[Table]) -> list[dict[str, Any]]:
    """One row per stored run behind any number on the page."""
    seen: dict[str, dict[str, Any]] = {}
    for t in tables:
        for r in t.records:
            if r["run_id"] in seen:
                continue
            versions = (r.get("env") or {}).get("versions") or {}
            seen[r["run_id"]] = {"run_id": r["run_id"], "backbone": r["backbone"]["name"], "sha256": r["backbone"]["sha256"],
                                 "task": f"{r['task']['name']} v{r['task']['version']}", "settings": r["task"]["config_hash"],
                                 "data": (r.get("data") or {}).get("fingerprint", ""), "seed": r["seed"], "date": r["created_at"],
                                 "libraries": ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))}
    return sorted(seen.values(), key=lambda p: (p["backbone"], p["task"], p["seed"]))


def render(tables: list[Table], figures: list[dict[str, str]], drilldowns: list[dict[str, Any]], notes: list[str], title: str) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda x: "" if x is None else f"{x:.2f}"
    return env.get_template(TEMPLATE).render(title=title, tables=tables, figures=figures, drilldowns=drilldowns, notes=notes,
                                             provenance=provenance(tables),
                                             generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
