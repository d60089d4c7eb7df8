"""A cached summary of every folder of a very large, rarely changing tree.

ImageNet-C holds 95,000 class folders and 4.75 million files: listing and stat-ing them all for
the data fingerprint costs minutes on a network disk, on every run, even when the cell is in the
store. The index keeps, per folder (relative to the tree's root): its mtime, its sub-folder
names, how many files of interest it holds, a digest of their names and sizes (what the data
fingerprint is made of) and a digest of their names, sizes and mtimes. It lives in SQLite under
$BENCH_CACHE/tree-index/.

What a warm lookup detects, and what it cannot:
- a file added, removed or renamed anywhere, and a folder added or removed: these change the
  mtime of the folder holding them, which is stat-ed on every lookup (one stat per folder);
- a file rewritten in place (another size or mtime, same name) in one of the `sample` folders
  re-read on every lookup (chosen at random, so repeated runs cover the tree);
- not: such a rewrite in a folder outside this lookup's sample, whose own mtime did not change,
  until a later lookup samples it; and never, cached or not: new contents of the same size (the
  fingerprint hashes names and sizes, not contents).
A folder whose mtime is under two seconds old when it is read is not trusted on the next lookup
(a write within the same tick of a coarse clock would keep its mtime).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.paths import cache_dir

SAMPLE = 100  # folders re-read in full on every warm lookup
RACY_S = 2.0  # a folder modified this recently is read again next time


@dataclass(frozen=True)
class Folder:
    dirs: tuple[str, ...]  # sub-folder names, sorted
    files: int  # files of interest (wanted(name) is true)
    digest: str  # names and sizes of those files: the fingerprint's part
    stat_digest: str  # names, sizes and mtimes: what a sampled re-read compares


def read_folder(path: Path, wanted: Callable[[str], bool]) -> tuple[Folder, int]:
    """List and stat one folder; returns its summary and its mtime in ns."""
    mtime = os.stat(path).st_mtime_ns
    dirs, files = [], []
    with os.scandir(path) as it:
        for e in it:
            if e.is_dir():
                dirs.append(e.name)
            elif e.is_file() and wanted(e.name):
                st = e.stat()
                files.append((e.name, st.st_size, st.st_mtime_ns))
    files.sort()
    digest = hashlib.sha256("\n".join(f"{n}\t{s}" for n, s, _ in files).encode()).hexdigest()[:16]
    stat_digest = hashlib.sha256("\n".join(f"{n}\t{s}\t{m}" for n, s, m in files).encode()).hexdigest()[:16]
    return Folder(tuple(sorted(dirs)), len(files), digest, stat_digest), mtime


class TreeIndex:
    """Thin lifecycle wrapper: open for one root, ask for folders, close (which saves)."""

    def __init__(self, root: Path, wanted: Callable[[str], bool], tag: str, sample: int = SAMPLE):
        self.root, self.wanted, self.sample = root, wanted, sample
        self.stats = {"folders": 0, "read": 0, "sampled": 0, "changed": 0}
        self._cached: dict[str, tuple[int, Folder]] = {}
        self._fresh: dict[str, tuple[int, Folder]] = {}
        self._hits: list[str] = []
        self.db: sqlite3.Connection | None = None
        key = hashlib.sha256(f"{tag}\0{root.resolve()}".encode()).hexdigest()[:16]
        self.path = cache_dir() / "tree-index" / f"{tag}-{key}.sqlite"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            self.db.execute("CREATE TABLE IF NOT EXISTS folders (rel TEXT PRIMARY KEY, mtime INTEGER, dirs TEXT, files INTEGER, digest TEXT, stat_digest TEXT)")
            for rel, mtime, dirs, files, digest, stat_digest in self.db.execute("SELECT * FROM folders"):
                self._cached[rel] = (mtime, Folder(tuple(json.loads(dirs)), files, digest, stat_digest))
        except (OSError, sqlite3.Error):  # a read-only or broken cache: every folder is read, nothing is kept
            self.db, self._cached = None, {}

    def folder(self, rel: str) -> Folder:
        """The summary of root/rel: from the index when the folder's mtime is the one indexed."""
        self.stats["folders"] += 1
        path = self.root / rel if rel else self.root
        if rel in self._fresh:  # read in this lookup already (or re-read by verify_sample)
            return self._fresh[rel][1]
        found = self._cached.get(rel)
        if found is not None and os.stat(path).st_mtime_ns == found[0]:
            self._hits.append(rel)
            return found[1]
        self.stats["read"] += 1
        summary, mtime = read_folder(path, self.wanted)
        self._remember(rel, mtime, summary)
        return summary

    def _remember(self, rel: str, mtime: int, summary: Folder) -> None:
        racy = time.time_ns() - mtime < RACY_S * 1e9
        self._fresh[rel] = (-1 if racy else mtime, summary)

    def verify_sample(self) -> list[str]:
        """Re-read `sample` of the folders answered from the index; the ones whose files changed
        (size or mtime) are returned and re-indexed. Call after the lookups, before using them."""
        chosen = random.Random().sample(self._hits, min(self.sample, len(self._hits)))
        changed = []
        for rel in chosen:
            summary, mtime = read_folder(self.root / rel if rel else self.root, self.wanted)
            self.stats["sampled"] += 1
            if summary.stat_digest != self._cached[rel][1].stat_digest:
                changed.append(rel)
                self._remember(rel, mtime, summary)
        self.stats["changed"] += len(changed)
        return changed

    def close(self) -> None:
        if self.db is None:
            return
        if self._fresh:
            try:
                with self.db:
                    self.db.execute("BEGIN IMMEDIATE")
                    self.db.executemany("INSERT OR REPLACE INTO folders VALUES (?,?,?,?,?,?)",
                                        [(rel, m, json.dumps(list(f.dirs)), f.files, f.digest, f.stat_digest) for rel, (m, f) in self._fresh.items()])
            except sqlite3.Error:
                pass  # the index is a cache: a failed save costs the next run a re-read, nothing else
        self.db.close()
        self.db = None
