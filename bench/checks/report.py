"""The check's output: a Markdown table (one row per metric) with the procedures, tolerances and
the overall answer under it, or the same as JSON."""

from __future__ import annotations

import json
from typing import Any

from bench.checks.check import CheckResult


def _num(x: float) -> str:
    return f"{x:.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:.2g}"


def _p(p: float) -> str:
    return "1" if p >= 0.9995 else f"{p:.3f}" if p >= 0.001 else f"{p:.0e}"


def summary(result: CheckResult) -> str:
    deciding = result.deciding()
    worse = [f"{m.task} {m.metric}" for m in deciding if m.verdict == "worse"]
    if worse:
        return f"{result.new} is worse than {result.ref} on {', '.join(worse)}"
    unsure = [f"{m.task} {m.metric}" for m in deciding if m.verdict == "inconclusive"]
    if unsure:
        return f"{result.new} is not worse than {result.ref} beyond noise, but inconclusive on {', '.join(unsure)} (too few samples to rule out a tolerance-sized drop)"
    better = [f"{m.task} {m.metric}" for m in deciding if m.verdict == "better"]
    return f"{result.new} is not worse than {result.ref}" + (f"; better on {', '.join(better)}" if better else "; equivalent on every deciding metric")


def markdown(result: CheckResult) -> str:
    lines = [f"bench check: {result.new} (NEW) against {result.ref} (REF), paired on the same samples, alpha {result.alpha:g}", "",
             "| task | metric | NEW [95% CI] | REF [95% CI] | NEW - REF [95% CI] | p (Holm) | MDE | n | tolerance | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in result.metrics:
        r = m.result
        unit = "" if m.unit == "%" else f" {m.unit}"
        name = f"**{m.metric}**" if m.headline else m.metric
        lines.append(f"| {m.task} | {name} | {_num(r.new)} [{_num(r.new_low)}, {_num(r.new_high)}] | {_num(r.ref)} [{_num(r.ref_low)}, {_num(r.ref_high)}] | "
                     f"{r.diff:+.2f}{unit} [{r.low:+.2f}, {r.high:+.2f}] | {_p(r.p)} ({_p(m.p_adjusted)}) | {_num(r.mde)} | {r.n} | ±{m.tolerance:g} | {m.verdict} |")
    lines += ["", "bold: the headline metrics, which decide. " + ("lower is better for errors; " if any(not m.higher_is_better for m in result.metrics) else "")
              + "MDE: the smallest difference this sample size detects at alpha with 80% power.", "", "procedures:"]
    seen: dict[str, list[str]] = {}
    for m in result.metrics:
        key = f"{m.result.method}" + (f", {m.result.resamples} resamples" if m.result.resamples else "") + f"; {m.scope}"
        seen.setdefault(key, []).append(m.metric)
    lines += [f"- {', '.join(dict.fromkeys(names))}: {how}" for how, names in seen.items()]
    sources = sorted({m.tolerance_from for m in result.metrics})
    lines.append(f"- tolerances from: {'; '.join(sources)} (absolute, in the metric's unit; --tolerance FILE to change)")
    lines += [f"- not compared: {s}" for s in result.skipped]
    lines += ["", f"verdict: {summary(result)}"]
    return "\n".join(lines)


def as_json(result: CheckResult) -> str:
    data: dict[str, Any] = result.to_dict()
    data["summary"] = summary(result)
    return json.dumps(data, indent=2, default=float)
