"""`bench compare A B --task T`: the per-image drill-down of a paired comparison of one metric
with a per-image 0/1 statistic: the images A gets right and B wrong and the reverse, their counts,
and per class the discordant pairs with an exact McNemar test (Holm across classes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bench.checks import pairing
from bench.errors import BenchError
from bench.stats.multiple import holm
from bench.stats.proportion import exact_mcnemar

SHARED = ("id", "image", "image_id", "source", "target")  # columns worth a look, when a row has them
PER_SIDE = ("pred", "iou", "gt_known_iou")


@dataclass
class Drill:
    a: str
    b: str
    task: str
    metric: str
    n: int
    only_a: list[dict[str, Any]] = field(default_factory=list)  # A right, B wrong
    only_b: list[dict[str, Any]] = field(default_factory=list)
    per_class: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def drill(records: list[dict[str, Any]], results: Any, a: str, b: str, task_name: str, metric: str | None, seed: int | None) -> Drill:
    sides = []
    for name in (a, b):
        mine = [r for r in records if r["backbone"]["name"] == name and r["task"]["name"] == task_name and not r["limited"]]
        if not mine:
            raise BenchError(f"{name} has no complete {task_name} results", f"run it first: bench run --backbone {name} --task {task_name}")
        task = pairing.StoredTask.of(max(mine, key=lambda r: r["created_at"]))
        side = pairing.pick(records, name, task, [seed] if seed is not None and task.seeded else None)
        sides.append((task, side))
    (task, side_a), (_, side_b) = sides
    differ = pairing.config_difference(side_a.records[0], side_b.records[0])
    if differ:
        raise BenchError(f"{a} and {b} were scored on {task_name} with different {differ}", "score both the same way")
    candidates = [m for m in side_a.records[0]["metrics"] if task.metric_spec(m).stat and task.metric_spec(m).stat.kind == "proportion"]
    if not candidates:
        raise BenchError(f"{task_name} has no metric with a per-image 0/1 statistic to drill into", "see the metrics with bench check")
    if metric is None:
        metric = next((m for m in candidates if task.metric_spec(m).headline), candidates[0])
    elif metric not in candidates:
        raise BenchError(f"{task_name} has no per-image 0/1 metric '{metric}'", f"pick one of {', '.join(candidates)}")
    spec = task.metric_spec(metric)
    rows_a, rows_b = pairing.read_rows(side_a.records[0], results), pairing.read_rows(side_b.records[0], results)
    fields, filters = pairing.metric_fields(spec.stat, spec.name, metric, rows_a)
    pick_rows = lambda rows: {tuple(r.get(k) for k in task.sample_key): r for r in rows if all(str(r.get(k)) == v for k, v in filters)}  # noqa: E731
    by_a, by_b = pick_rows(rows_a), pick_rows(rows_b)
    if by_a.keys() != by_b.keys():
        raise BenchError(f"{a} and {b} scored other samples for {metric}", "score both on the same data and settings")
    good = (lambda v: bool(v)) if spec.higher_is_better else (lambda v: not v)  # the 0/1 field: correct, or wrong for errors
    out = Drill(a, b, task_name, metric, len(by_a))
    classes: dict[Any, list[int]] = {}
    for key in sorted(by_a, key=lambda t: tuple(str(x) for x in t)):
        ra, rb = by_a[key], by_b[key]
        right_a, right_b = good(ra[fields[0]]), good(rb[fields[0]])
        if right_a == right_b:
            continue
        shown = {k: ra[k] for k in SHARED if k in ra}
        for k in PER_SIDE:
            value = (lambda r: r.get(k, r["top5"][0] if k == "pred" and "top5" in r else None))  # noqa: E731  classification rows keep the top 5
            if value(ra) is not None:
                shown.update({f"{a} {k}": value(ra), f"{b} {k}": value(rb)})
        (out.only_a if right_a else out.only_b).append(shown)
        counts = classes.setdefault(ra.get("target"), [0, 0])
        counts[0 if right_a else 1] += 1
    if any(c is not None for c in classes):
        ordered = sorted(classes.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))
        ps = [exact_mcnemar(x, y) for _, (x, y) in ordered]
        out.per_class = [{"class": c, f"{a} only": x, f"{b} only": y, "p": p, "p_holm": q} for (c, (x, y)), p, q in zip(ordered, ps, holm(ps))]
    return out


def markdown(d: Drill, rows: int) -> str:
    lines = [f"bench compare: {d.a} vs {d.b} on {d.task} {d.metric}, {d.n} paired samples", "",
             f"- {d.a} right, {d.b} wrong: {len(d.only_a)}", f"- {d.b} right, {d.a} wrong: {len(d.only_b)}",
             f"- exact McNemar p = {exact_mcnemar(len(d.only_a), len(d.only_b)):.3g}", ""]
    for title, items in ((f"{d.a} right, {d.b} wrong", d.only_a), (f"{d.b} right, {d.a} wrong", d.only_b)):
        lines.append(f"## {title} ({len(items)}{f', first {rows}' if len(items) > rows else ''})")
        if items:
            cols = list(items[0])
            lines += ["", "| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
            lines += ["| " + " | ".join(str(i.get(c, "")) for c in cols) + " |" for i in items[:rows]]
        lines.append("")
    if d.per_class:
        lines += ["## Per class (discordant pairs; exact McNemar, Holm across classes)", "",
                  f"| class | {d.a} only | {d.b} only | p | p (Holm) |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {c['class']} | {c[f'{d.a} only']} | {c[f'{d.b} only']} | {c['p']:.3g} | {c['p_holm']:.3g} |" for c in d.per_class[:rows]]
    return "\n".join(lines)


def as_json(d: Drill) -> str:
    return json.dumps(d.to_dict(), indent=2)
