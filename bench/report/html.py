"""The self-contained HTML report: every table (sortable, published numbers and intervals shown),
the figures the stored data allows as inline PNG, per-image drill-downs and a provenance section,
in one file with no network access (CSS, script, data and images inline). Rendered by jinja2 from
templates/report.html.j2, every value autoescaped."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.report.model import Cell, Column, Table

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


def cell_html(cell: Cell, column: Column, backbone: str, escaped: tuple[str, str] | None = None) -> Any:
    """One table cell: the value (linked to its run), ± std (n), the baseline difference (green
    when better), [published] and the 95% interval; data-* attributes carry the exact numbers.
    Built here rather than in the template: a report of thousands of rows renders in a fraction
    of the time, every text still escaped (`escaped`: the backbone and column label, escaped once
    per row and column)."""
    from markupsafe import Markup, escape

    who, col = escaped or (escape(backbone), escape(column.label))
    value = "" if cell.value is None else repr(cell.value)
    attrs = (f' class="{"best" if cell.best else ""}" data-sort="{value}" data-backbone="{who}" data-column="{col}"'
             f' data-value="{value}"' + (f' title="runs {escape(", ".join(cell.run_ids))}"' if cell.run_ids else ""))
    if cell.value is None:
        body = '<span class="v">-</span>'
    else:
        body = f'<a class="v" href="#run-{escape(cell.run_ids[0])}">{cell.value:.2f}</a>'
        if cell.std is not None:
            body += f" ± {cell.std:.2f} <small>(n={cell.n_seeds})</small>"
    if cell.diff is not None:
        tone = "" if cell.diff == 0 else "pos" if (cell.diff > 0) == column.higher_is_better else "neg"
        body += f' <span class="diff {tone}">({cell.diff:+.2f})</span>'
    if cell.published is not None:
        body += f' <span class="pub" data-published="{cell.published!r}">[{cell.published:.2f}]</span>'
    if cell.ci_low is not None:
        body += f'<span class="ci">95% CI [{cell.ci_low:.2f}, {cell.ci_high:.2f}]</span>'
    return Markup(f"<td{attrs}>{body}</td>")


def rows_html(table: Table) -> Any:
    """The body rows of one report table (escaped: row labels through markupsafe, cells by cell_html)."""
    from markupsafe import Markup, escape

    out = []
    columns = [(c, str(escape(c.label))) for c in table.columns]
    for row in table.rows:
        label = str(escape(row.label))
        out.append(f'<tr><td data-sort="{label}">{label}</td>' + "".join(cell_html(table.cell(row, c), c, row.label, (label, e)) for c, e in columns) + "</tr>")
    return Markup("\n".join(out))


def provenance_html(runs: list[dict[str, Any]]) -> Any:
    """The provenance table's rows, one per run (escaped; built here for the same reason as rows_html)."""
    from markupsafe import Markup, escape

    return Markup("\n".join(
        f'<tr id="run-{escape(p["run_id"])}"><td class="mono">{escape(p["run_id"])}</td><td>{escape(p["backbone"])}</td>'
        f'<td class="mono" title="{escape(p["sha256"])}">{escape(p["sha256"][:12])}</td><td>{escape(p["task"])}</td><td class="mono">{escape(p["settings"])}</td>'
        f'<td class="mono">{escape(p["data"])}</td><td>{escape(p["seed"])}</td><td>{escape(p["date"])}</td><td>{escape(p["libraries"])}</td></tr>'
        for p in runs))


def render(tables: list[Table], figures: list[dict[str, str]], drilldowns: list[dict[str, Any]], notes: list[str], title: str) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda x: "" if x is None else f"{x:.2f}"
    return env.get_template(TEMPLATE).render(title=title, tables=tables, figures=figures, drilldowns=drilldowns, notes=notes, rows_html=rows_html, provenance_html=provenance_html,
                                             provenance=provenance(tables),
                                             generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
