"""A cell's text, shared by the Markdown and LaTeX tables (HTML, CSV and JSON keep the parts apart)."""

from __future__ import annotations

from bench.report.model import Cell


def number(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def parts(cell: Cell, ci: bool) -> list[str]:
    """The value, then '± std (n=k)', the baseline difference, [published] and the interval, each when there."""
    if cell.value is None:
        return ["-"] + ([f"[{cell.published:.2f}]"] if cell.published is not None else [])
    out = [number(cell.value)]
    if cell.std is not None:
        out.append(f"± {cell.std:.2f} (n={cell.n_seeds})")
    if cell.diff is not None:
        out.append(f"({cell.diff:+.2f})")
    if cell.published is not None:
        out.append(f"[{cell.published:.2f}]")
    if ci and cell.ci_low is not None:
        out.append(f"95% CI [{cell.ci_low:.2f}, {cell.ci_high:.2f}]")
    return out
