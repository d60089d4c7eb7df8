"""Tolerances (the shipped defaults and a user's file) and the verdict rule of `bench check`.

With d the degradation (NEW worse by d in the metric's "better" direction), its 95% interval
[lo, hi], tolerance t and the Holm-adjusted p-value (two families per check: the deciding
headline metrics of every task checked, and the other metrics):
worse: p < alpha and lo > t (confidently worse by more than the tolerance); better: p < alpha
and hi < -t; equivalent: -t <= lo and hi <= t (the interval inside the tolerance: two one-sided
tests); otherwise inconclusive (too few samples to tell a t-sized change from noise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.errors import BenchError

DEFAULTS = Path(__file__).with_name("tolerances.yaml")


def _read(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BenchError(f"cannot read the tolerance file {path} ({exc.strerror})", "pass --tolerance FILE naming a readable YAML file") from None
    except yaml.YAMLError as exc:
        raise BenchError(f"the tolerance file {path} is not valid YAML ({str(exc).splitlines()[0]})", "fix its syntax (see bench/checks/tolerances.yaml)") from None
    if not isinstance(data, dict) or set(data) - {"defaults", "tasks"}:
        raise BenchError(f"the tolerance file {path} must be a mapping with 'defaults' and/or 'tasks'", "see bench/checks/tolerances.yaml for the layout")
    return data


def _number(value: Any, where: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise BenchError(f"the tolerance of {where} in {path} must be a number >= 0, got {value!r}", "write it in the metric's unit, e.g. 0.5")
    return float(value)


class Tolerances:
    """task -> metric (or family pattern) -> tolerance, and per-unit defaults; where each came from."""

    def __init__(self, user: Path | None = None):
        from tasks import TASKS

        self.by_task: dict[str, dict[str, tuple[float, str]]] = {}
        self.by_unit: dict[str, tuple[float, str]] = {}
        for path in [DEFAULTS] + ([user] if user else []):
            data = _read(path)
            where = "default" if path == DEFAULTS else str(path)
            for unit, value in (data.get("defaults") or {}).items():
                self.by_unit[str(unit)] = (_number(value, f"unit {unit}", path), where)
            for task_name, metrics in (data.get("tasks") or {}).items():
                if path == DEFAULTS:  # ours, checked by tests/test_check.py; loading every task module here costs seconds
                    self.by_task[task_name] = {str(m): (float(v), where) for m, v in metrics.items()}
                    continue
                if task_name not in TASKS.names():
                    raise BenchError(f"the tolerance file {path} names an unknown task '{task_name}'", "see 'bench list tasks'")
                if not isinstance(metrics, dict):
                    raise BenchError(f"the tolerance file {path}: tasks.{task_name} must map metric names to numbers", "e.g. top1_err: 0.3")
                task = TASKS.get(task_name).load()()
                declared = {m.name for m in task.metrics}
                for metric, value in metrics.items():
                    if metric not in declared and not any(m.matches(str(metric)) for m in task.metrics):
                        raise BenchError(f"the tolerance file {path} names metric '{metric}', which task {task_name} does not emit",
                                         f"its metrics: {', '.join(sorted(declared))}")
                    self.by_task.setdefault(task_name, {})[str(metric)] = (_number(value, f"{task_name} {metric}", path), where)

    def get(self, task: Any, metric: str) -> tuple[float, str]:
        """(tolerance, where it came from) for one emitted metric."""
        lines = self.by_task.get(task.name, {})
        if metric in lines:
            return lines[metric]
        spec = task.metric_spec(metric)
        if spec.name in lines:
            return lines[spec.name]
        if spec.unit in self.by_unit:
            value, where = self.by_unit[spec.unit]
            return value, f"{where}, unit {spec.unit}"
        return 0.0, "none given for unit " + spec.unit


def degradation(diff: float, low: float, high: float, higher_is_better: bool) -> tuple[float, float, float]:
    """NEW - REF (and its interval) as how much worse NEW is."""
    return (-diff, -high, -low) if higher_is_better else (diff, low, high)


def verdict(d_low: float, d_high: float, tolerance: float, p_adjusted: float, alpha: float) -> str:
    if p_adjusted < alpha and d_low > tolerance:
        return "worse"
    if p_adjusted < alpha and d_high < -tolerance:
        return "better"
    if -tolerance <= d_low and d_high <= tolerance:
        return "equivalent"
    return "inconclusive"
