"""Report tables as LaTeX: booktabs, one `table` environment per table, every text escaped."""

from __future__ import annotations

import re

from bench.report.cells import parts
from bench.report.model import Table

_SPECIAL = {"\\": r"\textbackslash{}", "%": r"\%", "_": r"\_", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}",
            "[": "{[}", "]": "{]}", "<": r"\textless{}", ">": r"\textgreater{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "×": r"$\times$"}
_PATTERN = re.compile("|".join(re.escape(k) for k in _SPECIAL))


def escape(text: str) -> str:
    """Text as LaTeX source that prints it: % _ & # $ { } [ ] < > \\ ~ ^ escaped, ± and arrows as math."""
    return _PATTERN.sub(lambda m: _SPECIAL[m.group(0)], text)


def render(tables: list[Table], ci: bool = False) -> str:
    """Needs \\usepackage{booktabs} (and graphicx for wide tables) in the preamble."""
    out = []
    for t in tables:
        spec = "l" + "r" * len(t.columns)
        head = " & ".join(["Backbone"] + [escape(f"{c.label} {'↑' if c.higher_is_better else '↓'}") for c in t.columns]) + r" \\"
        body = []
        for row in t.rows:
            cells = [escape(row.label)]
            for c in t.columns:
                cell = t.cell(row, c)
                p = [escape(x) for x in parts(cell, ci)]
                if cell.best:
                    p[0] = rf"\textbf{{{p[0]}}}"
                cells.append(" ".join(p))
            body.append(" & ".join(cells) + r" \\")
        notes = " ".join(escape(n) for n in t.footnotes)
        out.append("\n".join([
            r"\begin{table}[ht]", r"\centering", r"\resizebox{\linewidth}{!}{%", rf"\begin{{tabular}}{{{spec}}}", r"\toprule", head, r"\midrule",
            *body, r"\bottomrule", r"\end{tabular}}", rf"\caption{{{escape(t.caption)} {notes}}}", rf"\label{{tab:bench-{t.name.replace('_', '-')}}}",
            r"\end{table}"]))
    return "\n\n".join(out) + "\n"
