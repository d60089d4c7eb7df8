"""Typed task settings: what each `--set KEY=VALUE` accepts, checked before any work starts.

A task declares one `Setting` per key of its config (dotted `group.key` inside a group). Values
come from YAML (`--set lr=1e-3` arrives as text, `epochs=1.5` as a float), so checking also
normalises: numbers for floats, strings for VOC years. A wrong value is one line naming the
setting and what it accepts. No torch import here: `bench list settings` reads these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError

KINDS = ("int", "float", "bool", "str", "ints", "floats", "strs", "voc_set", "voc_sets")


@dataclass(frozen=True)
class Setting:
    kind: str  # one of KINDS; "ints"/"floats"/"strs" are lists of those
    help: str
    lo: float | None = None  # bounds of a number, or of each number of a list
    hi: float | None = None
    lo_open: bool = False  # True: lo itself is not allowed
    hi_open: bool = False
    choices: tuple[Any, ...] = ()  # allowed values (of each item, for lists)
    optional: bool = False  # None (YAML null) allowed
    length: int | None = None  # lists: exactly this many items
    nonempty: bool = False  # lists: at least one item

    def accepts(self) -> str:
        """What the setting takes, in words (error messages and `bench list settings`)."""
        noun = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text",
                "ints": "a list of integers", "floats": "a list of numbers", "strs": "a list",
                "voc_set": "a [YEAR, SPLIT] pair, e.g. [2007, test]", "voc_sets": "a list of [YEAR, SPLIT] pairs"}[self.kind]
        if self.choices:
            listed = ", ".join(str(c) for c in self.choices)
            noun = f"one of {listed}" if self.kind in ("str", "int", "float") else f"{noun} of {listed}"
        if self.length:
            noun += f" ({self.length} items)"
        elif self.nonempty:
            noun += " (at least one)"
        bounds = self.bounds()
        if bounds:
            noun += (" each" if self.kind in ("ints", "floats") else "") + f" in {bounds}"
        return ("null or " if self.optional else "") + noun

    def bounds(self) -> str:
        if self.lo is None and self.hi is None:
            return ""
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return ("(" if self.lo_open or self.lo is None else "[") + f"{lo}, {hi}" + (")" if self.hi_open or self.hi is None else "]")


def _number(value: Any, integer: bool) -> Any:
    """The value as an int / float, or None when it is not one (bools are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):  # YAML reads 1e-3 (no dot) as text
        try:
            value = float(value)
        except ValueError:
            return None
    if integer:
        return value if isinstance(value, int) else None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _in_bounds(spec: Setting, x: float) -> bool:
    if spec.lo is not None and (x < spec.lo or (spec.lo_open and x == spec.lo)):
        return False
    if spec.hi is not None and (x > spec.hi or (spec.hi_open and x == spec.hi)):
        return False
    return True


def _scalar(spec: Setting, kind: str, value: Any) -> Any:
    """One item checked and normalised, or raise ValueError."""
    if kind in ("int", "float"):
        x = _number(value, kind == "int")
        if x is None or not _in_bounds(spec, x):
            raise ValueError
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ValueError
        x = value
    elif kind == "str":
        if not isinstance(value, str):
            raise ValueError
        x = value
    elif kind == "voc_set":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError
        year, split = str(value[0]), str(value[1])
        if year not in ("2007", "2012") or split not in ("train", "val", "trainval", "test"):
            raise ValueError
        return [year, split]
    else:
        raise ValueError
    if spec.choices and x not in spec.choices:
        raise ValueError
    return x


def check_value(task: str, key: str, spec: Setting, value: Any) -> Any:
    """The value normalised, or a BenchError naming the setting and what it accepts."""
    def refuse() -> BenchError:
        return BenchError(f"task {task}: setting {key}={value!r} is not valid; {key} takes {spec.accepts()}",
                          f"fix --set {key}=..., or see 'bench list settings {task}'")

    if value is None:
        if spec.optional:
            return None
        raise refuse()
    try:
        if spec.kind in ("ints", "floats", "strs", "voc_sets"):
            if isinstance(value, str) and spec.kind != "voc_sets":  # "30,50,70"
                value = [v.strip() for v in value.split(",") if v.strip()]
                if spec.kind == "ints":
                    value = [int(v) for v in value]
            if not isinstance(value, (list, tuple)):
                raise ValueError
            item = {"ints": "int", "floats": "float", "strs": "str", "voc_sets": "voc_set"}[spec.kind]
            out = [_scalar(spec, item, v) for v in value]
            if (spec.length and len(out) != spec.length) or (spec.nonempty and not out):
                raise ValueError
            return out
        return _scalar(spec, spec.kind, value)
    except ValueError:
        raise refuse() from None


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'frcnn': {'lr': 0.01}} -> {'frcnn.lr': 0.01}."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def check_config(task: str, config: dict[str, Any], specs: dict[str, Setting]) -> dict[str, Any]:
    """Every setting of the config checked and normalised, in place; the config is returned."""
    for key, value in flat(config).items():
        spec = specs.get(key)
        if spec is None:
            raise BenchError(f"task {task} declares no type for its setting {key}", "report this as a bench bug")
        *groups, leaf = key.split(".")
        target = config
        for group in groups:
            target = target[group]
        target[leaf] = check_value(task, key, spec, value)
    return config
