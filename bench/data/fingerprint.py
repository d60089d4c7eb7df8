"""A cheap identity for the data a result was computed on.

Two runs are the same cell only on the same data: the fingerprint hashes the scored split's
files (sorted paths relative to the dataset folder, with their sizes), the training files'
paths, and the labels and boxes as read. It costs a listing and a stat per scored file
(`benchmarks/data_fingerprint.py` measures it), not a read of the images.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable


class Fingerprint:
    """sha256 over tagged parts, in the order they are added."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def _part(self, tag: str, payload: bytes) -> None:
        self._hash.update(f"{tag}:{len(payload)}:".encode())
        self._hash.update(payload)

    def files(self, tag: str, root: Path, paths: Iterable[Path], sizes: bool = True) -> "Fingerprint":
        """Relative paths (and sizes): a renamed, added, removed or rewritten-to-another-size file changes it."""
        prefix = len(str(root).rstrip(os.sep)) + 1
        lines = []
        for path in paths:
            text = str(path)
            rel = text[prefix:] if text.startswith(str(root)) else text
            lines.append(f"{rel}\t{os.stat(text).st_size}" if sizes else rel)
        lines.sort()
        self._part(tag, "\n".join(lines).encode())
        return self

    def values(self, tag: str, obj: Any) -> "Fingerprint":
        """Labels, boxes, class names: anything JSON can write (numpy arrays as lists)."""
        self._part(tag, json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_plain).encode())
        return self

    def hexdigest(self) -> str:
        return self._hash.hexdigest()[:16]


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
