"""Report tables as GitHub-flavoured Markdown."""

from __future__ import annotations

from bench.report.cells import parts
from bench.report.model import Table
from bench.tables import markdown


def grid(t: Table, ci: bool = False) -> str:
    """The table alone: a row per backbone, the column's best in bold."""
    headers = ["Backbone"] + [f"{c.label} {'↑' if c.higher_is_better else '↓'}" for c in t.columns]
    rows = []
    for row in t.rows:
        cells = [row.label]
        for c in t.columns:
            cell = t.cell(row, c)
            p = parts(cell, ci)
            if cell.best:
                p[0] = f"**{p[0]}**"
            cells.append(" ".join(p))
        rows.append(cells)
    return markdown(headers, rows, right=tuple(range(1, len(headers))))


def render(tables: list[Table], ci: bool = False) -> str:
    """Each table under a heading, with its caption and footnotes."""
    out = []
    for t in tables:
        notes = "\n".join(f"- {n}" for n in t.footnotes)
        out.append(f"### {t.title} (`--table {t.name}`)\n\n{t.caption}\n\n{grid(t, ci)}\n\n{notes}")
    return "\n\n".join(out) + "\n"
