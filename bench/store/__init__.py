"""The results store: one SQLite database (WAL) in the results folder.

One row per cell (backbone name, checkpoint sha256, task, task version, config hash, seed, data
fingerprint: `cell_key`). Rows are written
once, in one transaction, after the cell finished: a failed or interrupted run leaves no row.
Several `bench run` processes may write at once; SQLite's locking serialises them. Launched jobs
(bench.launch) never write the file: they deliver records into results/incoming/, which every open
ingests first (bench.store.incoming).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

from bench.errors import BenchError
from bench.record import SCHEMA_VERSION, Record, read_record

DB_NAME = "bench.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT PRIMARY KEY,
    cell_key TEXT NOT NULL UNIQUE,
    backbone TEXT NOT NULL,
    checkpoint_sha256 TEXT NOT NULL,
    task TEXT NOT NULL,
    task_version TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    seed INTEGER NOT NULL,
    limited INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_task ON results (task, backbone);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


def cell_key(backbone: str, checkpoint_sha256: str, task: str, task_version: str, cfg_hash: str, seed: int | None, data_fingerprint: str) -> str:
    """What makes two results the same: the backbone's name and weights (two cards with one file
    are two cells), the task and its version, every setting, the seed (None for tasks it does not
    change) and the data scored (bench.data.fingerprint)."""
    return hashlib.sha256(canonical_json([backbone, checkpoint_sha256, task, task_version, cfg_hash, seed, data_fingerprint]).encode()).hexdigest()


def _timeout() -> float:
    return float(os.environ.get("BENCH_DB_TIMEOUT", "30"))


class ResultsStore:
    """Thin lifecycle wrapper around the SQLite file."""

    def __init__(self, folder: Path, connection: sqlite3.Connection):
        self.folder = folder
        self.path = folder / DB_NAME
        self.db = connection

    @classmethod
    def open(cls, folder: Path, write: bool = True, ingest: bool = True) -> "ResultsStore":
        """Open (and for writing, create) the store; fail now, not after an hour of evaluation.
        Either way the records waiting in incoming/ are stored first (`ingest=False`: a launched
        job's read-only look, which never writes the database)."""
        path = folder / DB_NAME
        if not write:
            from bench.store.incoming import pending

            if ingest and pending(folder):  # jobs' records wait in incoming/: store them first, when the folder allows it
                try:
                    cls.open(folder, write=True).close()
                except BenchError as exc:
                    print(f"bench: warning: {len(pending(folder))} records in {folder / 'incoming'} not ingested ({exc.message}); "
                          "they are missing from what this command shows", file=sys.stderr)
            if not path.is_file():
                from bench.paths import demo_folder, shown

                demo = demo_folder("results")
                where = f"; the demo's results are --results {shown(demo)}" if demo and demo.resolve() != folder.resolve() else ""
                raise BenchError(f"no results store at {path}", f"run 'bench run' first, or pass --results DIR{where}")
            try:
                return cls(folder, sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=_timeout()))
            except sqlite3.Error as exc:
                raise _store_error(path, exc) from None
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BenchError(f"cannot create results folder {folder} ({exc.strerror})", "pass --results DIR pointing at a writable folder") from None
        try:
            db = sqlite3.connect(str(path), timeout=_timeout(), isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=%d" % int(_timeout() * 1000))
            with db:
                db.execute("BEGIN IMMEDIATE")  # proves we can write, and waits out other writers
                for statement in filter(str.strip, SCHEMA.split(";")):
                    db.execute(statement)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            from bench.store.incoming import ingest, warn_broken

            warn_broken(ingest(db, folder).broken)
        except sqlite3.Error as exc:
            raise _store_error(path, exc) from None
        return cls(folder, db)

    def close(self) -> None:
        self.db.close()

    def lookup(self, key: str) -> Record | None:
        try:
            row = self.db.execute("SELECT record FROM results WHERE cell_key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None
        return read_record(json.loads(row[0])) if row else None

    def put(self, record: Record, samples: list[dict[str, Any]] | None, replace: bool = False) -> None:
        """A finished cell: its per-sample rows (samples/<run_id>.jsonl), then its row."""
        samples_path = write_samples(self.folder / "samples", record["run_id"], samples) if samples else None
        record["artifacts"]["samples"] = str(samples_path) if samples_path else None
        try:
            self.insert(record, replace=replace)
        except BenchError:
            if samples_path:
                samples_path.unlink(missing_ok=True)
            raise

    def insert(self, record: Record, replace: bool = False) -> None:
        """Write one finished record atomically (replacing the cell's old row with --force, and
        then removing the old row's per-sample file)."""
        old = None
        try:
            with self.db:  # one transaction
                self.db.execute("BEGIN IMMEDIATE")
                if replace:
                    old = self.db.execute("SELECT record FROM results WHERE cell_key = ?", (record["cell_key"],)).fetchone()
                    self.db.execute("DELETE FROM results WHERE cell_key = ?", (record["cell_key"],))
                self.db.execute(
                    # without --force a concurrent run of the same cell may have won: keep its row
                    ("INSERT" if replace else "INSERT OR IGNORE") + " INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        record["run_id"], record["cell_key"], record["backbone"]["name"], record["backbone"]["sha256"],
                        record["task"]["name"], record["task"]["version"], record["task"]["config_hash"], record["seed"],
                        int(record["limited"]), canonical_json(record["metrics"]), canonical_json(record), record["created_at"],
                    ),
                )
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None
        old_samples = old and (json.loads(old[0]).get("artifacts") or {}).get("samples")
        if old_samples and old_samples != (record.get("artifacts") or {}).get("samples"):
            Path(old_samples).unlink(missing_ok=True)

    def newest(self, backbone: str, checkpoint_sha256: str, task: str) -> Record | None:
        """The newest complete (not limited) record of one checkpoint for one task, or None."""
        try:
            row = self.db.execute(
                "SELECT record FROM results WHERE task = ? AND backbone = ? AND checkpoint_sha256 = ? AND limited = 0 ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (task, backbone, checkpoint_sha256),
            ).fetchone()
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None
        return read_record(json.loads(row[0])) if row else None

    def records(self, include_limited: bool = True) -> Iterator[Record]:
        """Every stored record, oldest first, in this schema version (bench.record.read_record)."""
        sql = "SELECT record FROM results" + ("" if include_limited else " WHERE limited = 0") + " ORDER BY created_at, rowid"  # rowid: insertion order within a second
        try:
            rows = self.db.execute(sql).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None
        for (text,) in rows:
            yield read_record(json.loads(text))


    def extract(self, paths: Sequence[str], include_limited: bool = True, tasks: Sequence[str] | None = None) -> list[tuple]:
        """Per record, oldest first: run_id, backbone, checkpoint_sha256, task, task_version,
        config_hash, seed, limited, metrics (JSON text), created_at, and a JSON array of the values
        at `paths` of the record ('$.reported'), read by SQLite in one pass over each record without
        decoding whole records in Python (bench report reads thousands). `tasks`: only these."""
        where = ([] if include_limited else ["limited = 0"]) + ([f"task IN ({','.join('?' * len(tasks))})"] if tasks is not None else [])
        sql = ("SELECT run_id, backbone, checkpoint_sha256, task, task_version, config_hash, seed, limited, metrics, created_at, "
               f"json_extract(record, {', '.join('?' * len(paths))}) FROM results" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY created_at, rowid")
        try:
            return self.db.execute(sql, list(paths) + list(tasks or [])).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None

    def task_names(self) -> set[str]:
        try:
            return {t for (t,) in self.db.execute("SELECT DISTINCT task FROM results").fetchall()}
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None

    def by_run_ids(self, run_ids: Sequence[str]) -> list[Record]:
        """The whole records of these runs, in this schema version."""
        out: list[Record] = []
        ids = list(dict.fromkeys(run_ids))
        try:
            for start in range(0, len(ids), 500):
                part = ids[start:start + 500]
                rows = self.db.execute(f"SELECT record FROM results WHERE run_id IN ({','.join('?' * len(part))}) ORDER BY created_at, rowid", part).fetchall()
                out += [read_record(json.loads(text)) for (text,) in rows]
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None
        return out


def write_samples(folder: Path, run_id: str, samples: list[dict[str, Any]]) -> Path:
    """Per-sample outputs as JSONL, written to a temporary name and renamed into place."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.jsonl"
    tmp = path.with_suffix(".jsonl.part")
    with open(tmp, "w") as fh:
        for row in samples:
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")
    os.replace(tmp, path)
    return path


def _store_error(path: Path, exc: sqlite3.Error) -> BenchError:
    text = str(exc)
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return BenchError(f"results store {path} is read-only or cannot be opened ({text})", "pass --results DIR pointing at a writable folder")
    if "locked" in text or "busy" in text:
        return BenchError(
            f"results store {path} is locked by another process ({text})",
            "wait for the other bench run to finish, or raise BENCH_DB_TIMEOUT (seconds)",
        )
    return BenchError(f"results store {path} is not usable ({text})", "move it aside and run again")
