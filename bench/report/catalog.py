"""Which report tables each task's metrics fill, without importing a task module (and torch).

The tasks declare the tables on their metric specs (`MetricSpec.tables`, "Table title: Column
label", placeholders such as {set} filled from the metric's name). `tasks/report_tables.json` holds
those declarations, written from the specs by `python -m bench.report.catalog` and compared with
them by the tests, so a report reads today's declarations in milliseconds; a task missing from the
file (a plugin) falls back to the tables its stored records carry."""

from __future__ import annotations

import json
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

CATALOG = Path(__file__).resolve().parents[2] / "tasks" / "report_tables.json"


@lru_cache(maxsize=1024)
def slug(title: str) -> str:
    """A table's name on the command line: 'paper Table 9' -> table_9, 'ImageNet-C' -> imagenet_c."""
    s = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")
    return s[len("paper_"):] if s.startswith("paper_") else s


def split_tag(tag: str) -> tuple[str, str]:
    """'paper Table 9: CUB200 Top-1 Loc' -> ('paper Table 9', 'CUB200 Top-1 Loc')."""
    title, _, label = tag.partition(": ")
    return title.strip(), (label or title).strip()


def from_specs() -> dict[str, Any]:
    """The declarations of every registered task, read from its module (imports torch)."""
    from tasks import TASKS

    out: dict[str, Any] = {}
    for entry in TASKS.entries():  # in the registry's order, each task's metrics in their declared order: the tables' column order
        task = entry.load()
        out[entry.name] = {"description": entry.description, "version": task.version,
                           "metrics": {m.name: list(m.tables) for m in task.metrics if m.tables},
                           "specs": {m.name: {k: v for k, v in m.to_dict().items() if k not in ("name", "tables")} for m in task.metrics}}
    return out


def spec_of(task: str, metric: str) -> tuple[str, dict[str, Any]] | None:
    """The spec (its name and declaration) a metric of a catalogued task belongs to, the first that
    matches, as bench.task.Task.metric_spec picks it; None outside the catalog."""
    found = _specs().get(task)
    if found is None:
        return None
    hit = found.get(metric)
    if hit is None:
        from bench.task import name_matches

        entry = load()[task]["specs"]
        name = next((n for n in entry if n == metric or name_matches(n, metric)), None)
        hit = found[metric] = (name, entry[name]) if name else ("", {})
    return hit if hit[0] else None


@lru_cache(maxsize=1)
def _specs() -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
    return {task: {} for task in load()}  # filled as metrics are looked up


def position(task: str, spec_name: str, metric: str) -> tuple:
    """Where a metric's column goes: its task's place in the registry, its spec's among the task's, then the member's name."""
    names = list(load())
    entry = load().get(task) or {"metrics": {}}
    specs = list(entry["metrics"])
    return (names.index(task) if task in names else len(names), specs.index(spec_name) if spec_name in specs else len(specs),
            [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", metric)])


@lru_cache(maxsize=1)
def load() -> dict[str, Any]:
    return json.loads(CATALOG.read_text()) if CATALOG.is_file() else {}


def tags(task: str, spec_name: str, stored: list[str]) -> list[str]:
    """The tables a metric fills: today's declaration of its task, else what its record carries."""
    entry = load().get(task)
    if entry is None:
        return list(stored)
    return list(entry["metrics"].get(spec_name, []))


def write(path: Path = CATALOG) -> Path:
    path.write_text(json.dumps(from_specs(), indent=1) + "\n")
    return path


if __name__ == "__main__":
    print(f"wrote {write()}", file=sys.stderr)
