"""Name registries with lazy entries, wildcard selection and did-you-mean errors.

Entries point at `"module:attribute"` strings and are imported only when resolved, so listing
names never imports torch.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from dataclasses import dataclass
from typing import Any, Iterable

from bench.errors import BenchError


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "module:attribute"
    description: str
    mini: dict[str, Any] | None = None  # settings on the mini benchmark's data (bench run --mini); None: no mini variant
    demo: bool = True  # whether bench demo runs the mini variant (some are too slow for its time budget)

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


def matches(name: str, pattern: str) -> bool:
    """Whether a name matches a wildcard or any item of a comma list of them."""
    return any(fnmatch.fnmatchcase(name, p.strip()) for p in pattern.split(","))


def is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def split_names(value: str | Iterable[str]) -> list[str]:
    """'a,b' or ['a', 'b,c'] -> ['a', 'b', 'c'] (order kept, duplicates dropped)."""
    parts = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for part in parts:
        for name in part.split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    return names


def unknown_name(kind: str, name: str, known: Iterable[str], hint: str) -> BenchError:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if close:
        return BenchError(f"unknown {kind} '{name}'", f"did you mean {' or '.join(close)}? ({hint})")
    return BenchError(f"unknown {kind} '{name}'", hint)


class Registry:
    """An ordered name -> Entry mapping."""

    def __init__(self, kind: str, list_command: str):
        self.kind = kind
        self.list_command = list_command
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, target: str, description: str, mini: dict[str, Any] | None = None, demo: bool = True) -> None:
        if name in self._entries:
            raise ValueError(f"duplicate {self.kind} name {name!r}")
        self._entries[name] = Entry(name, target, description, mini, demo)

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise unknown_name(self.kind, name, self._entries, f"see '{self.list_command}'") from None

    def select(self, value: str | Iterable[str]) -> list[Entry]:
        """Resolve comma lists and wildcards ('wsol_*') to entries, in the order asked."""
        chosen: list[Entry] = []
        for name in split_names(value):
            if is_pattern(name):
                matches = [e for n, e in self._entries.items() if fnmatch.fnmatchcase(n, name)]
                if not matches:
                    raise BenchError(f"no {self.kind} matches '{name}'", f"see '{self.list_command}'")
            else:
                matches = [self.get(name)]
            chosen.extend(e for e in matches if e not in chosen)
        return chosen
