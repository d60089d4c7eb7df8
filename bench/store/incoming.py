"""The incoming folder: how jobs on many nodes feed one results store without writing SQLite.

SQLite's WAL needs every process on one host (it does not work over NFS, GPFS or Lustre), so a
launched job never opens the database for writing. A finished cell writes its record (and its
per-sample file) into `results/incoming/`: each as a temporary dot-file renamed into place in
the same folder (rename is atomic within a directory), the samples first, the record last. A
record file is two lines: a header (`format`, the store's columns of the record, one `sha256`
over those columns and the body, the body's `bytes`, the samples file's name, whether it replaces
the cell's row) and the record's canonical JSON, stored as it is (ingesting never decodes it).

Any bench command that opens the store ingests what is there, in one transaction, idempotently:
a record whose cell is already stored is dropped (or replaces it, for --force), a file whose body
does not match its header (truncated, half-copied, edited) is left in place, never ingested, and
named in a warning. Files are removed only after the transaction committed, so a crash between
the two ingests them again next time: stored once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "bench-incoming-1"
SUFFIX = ".record.json"
SAMPLES_SUFFIX = ".samples.jsonl"


def incoming_dir(results: Path) -> Path:
    return Path(results) / "incoming"


def _write_atomic(folder: Path, name: str, chunks: Any) -> Path:
    """Write to a dot-file in `folder`, fsync, and rename into place (never seen half-written)."""
    tmp = folder / f".{name}.part-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    with open(tmp, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    final = folder / name
    os.replace(tmp, final)
    return final


def deliver(results: Path, record: dict[str, Any], samples: list[dict[str, Any]] | None = None, replace: bool = False) -> Path:
    """Put one finished record (and its per-sample rows) into results/incoming/. The record's
    samples path is set to where ingesting puts the file: results/samples/<run_id>.jsonl."""
    from bench.store import canonical_json

    folder = incoming_dir(results)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{record['run_id']}-{uuid.uuid4().hex[:8]}"
    samples_name = None
    if samples:
        samples_name = stem + SAMPLES_SUFFIX
        _write_atomic(folder, samples_name, (json.dumps(row, separators=(",", ":")).encode() + b"\n" for row in samples))
        record.setdefault("artifacts", {})["samples"] = str(Path(results).resolve() / "samples" / f"{record['run_id']}.jsonl")
    body = canonical_json(record).encode()
    row = store_row(record)
    header = {"format": FORMAT, "cell_key": record["cell_key"], "row": row, "sha256": _digest(row, body), "bytes": len(body),
              "samples": samples_name, "replace": bool(replace)}
    return _write_atomic(folder, stem + SUFFIX, [json.dumps(header).encode(), b"\n", body])


def store_row(record: dict[str, Any]) -> list[Any]:
    """The `results` table's columns of a record (bench.store.SCHEMA), in order."""
    from bench.store import canonical_json

    r = record
    return [r["run_id"], r["cell_key"], r["backbone"]["name"], r["backbone"]["sha256"], r["task"]["name"], r["task"]["version"],
            r["task"]["config_hash"], r["seed"], int(r["limited"]), canonical_json(r["metrics"]), None, r["created_at"]]


def _digest(row: list[Any], body: bytes) -> str:
    """One sha256 over the header's columns and the body: neither can change alone unseen."""
    return hashlib.sha256(json.dumps(row, separators=(",", ":")).encode() + b"\n" + body).hexdigest()


def pending(results: Path) -> list[Path]:
    """The record files waiting in results/incoming/ (temporary dot-files are not among them)."""
    folder = incoming_dir(results)
    try:
        return sorted(Path(e.path) for e in os.scandir(folder) if e.name.endswith(SUFFIX) and not e.name.startswith("."))
    except FileNotFoundError:
        return []


@dataclass
class Incoming:
    path: Path
    header: dict[str, Any]
    body: str  # the record's canonical JSON, stored as it is
    record: dict[str, Any]  # the decoded body, when asked for (read_incoming(parse=True))

    @property
    def run_id(self) -> str:
        return self.header["row"][0]

    @property
    def cell_key(self) -> str:
        return self.header["row"][1]


@dataclass
class Ingested:
    stored: int = 0  # new rows
    duplicates: int = 0  # records of cells already stored (dropped)
    broken: list[tuple[Path, str]] = field(default_factory=list)  # files never ingested, and why


def read_incoming(path: Path, parse: bool = False) -> Incoming:
    """One record file, checked against its header; ValueError says what is wrong with it.
    The record's columns come from the header (ingesting never decodes the body); `parse`: the
    record too."""
    raw = path.read_bytes()
    head, sep, body = raw.partition(b"\n")
    try:
        header = json.loads(head)
    except ValueError:
        raise ValueError("its header line is not JSON") from None
    if not sep or not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} file")
    row = header.get("row")
    if not isinstance(row, list) or len(row) != 12:
        raise ValueError("its header lacks the record's columns")
    if len(body) != header.get("bytes") or _digest(row, body) != header.get("sha256"):
        raise ValueError(f"truncated or changed: {len(body)} bytes of {header.get('bytes')}, or its sha256 differs from the header's")
    return Incoming(path, header, body.decode(), json.loads(body) if parse else {})


def ingest(db: sqlite3.Connection, results: Path) -> Ingested:
    """Every valid record file of results/incoming/ into the store's `results` table, in one
    transaction; then the files are moved (samples) or removed. Safe to run from several
    processes at once: BEGIN IMMEDIATE serialises them, INSERT OR IGNORE keeps one row a cell."""
    out = Ingested()
    files = pending(results)
    if not files:
        return out
    good: list[Incoming] = []
    for path in files:
        try:
            good.append(read_incoming(path))
        except FileNotFoundError:
            continue  # another process ingested it meanwhile
        except ValueError as exc:
            out.broken.append((path, str(exc)))
        except OSError as exc:
            out.broken.append((path, f"unreadable: {exc.strerror}"))
    replaced_samples: list[str] = []
    with db:
        db.execute("BEGIN IMMEDIATE")
        for item in good:
            if item.header.get("replace"):
                old = db.execute("SELECT run_id, record FROM results WHERE cell_key = ?", (item.cell_key,)).fetchone()
                if old and old[0] != item.run_id:
                    db.execute("DELETE FROM results WHERE cell_key = ?", (item.cell_key,))
                    samples = (json.loads(old[1]).get("artifacts") or {}).get("samples")
                    if samples and samples != str(Path(results).resolve() / "samples" / f"{item.run_id}.jsonl"):
                        replaced_samples.append(samples)
            row = list(item.header["row"])
            row[10] = item.body
            cur = db.execute("INSERT OR IGNORE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", row)
            if cur.rowcount:
                out.stored += 1
            else:
                out.duplicates += 1
    for old in replaced_samples:
        Path(old).unlink(missing_ok=True)
    samples_dir = Path(results) / "samples"
    for item in good:
        name = item.header.get("samples")
        if name:
            src = item.path.parent / name
            (kept,) = db.execute("SELECT count(*) FROM results WHERE run_id = ?", (item.run_id,)).fetchone()
            try:
                if kept:
                    samples_dir.mkdir(parents=True, exist_ok=True)
                    os.replace(src, samples_dir / f"{item.run_id}.jsonl")
                else:
                    src.unlink()
            except FileNotFoundError:
                pass  # moved by another ingest, or by this one before a crash
        item.path.unlink(missing_ok=True)
    return out


def warn_broken(broken: list[tuple[Path, str]]) -> None:
    for path, why in broken:
        print(f"bench: warning: incoming record {path} was not ingested ({why}); "
              "delete it and run its cell again (bench run ... --launcher ... submits what the store lacks)", file=sys.stderr)


def read_header(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            header = json.loads(fh.readline())
        return header if isinstance(header, dict) and header.get("format") == FORMAT else None
    except (OSError, ValueError):
        return None


class JobStore:
    """The store as a launched job sees it: reads from the database (read-only, never ingesting)
    and from the records still waiting in incoming/; `put` delivers into incoming/."""

    def __init__(self, folder: Path):
        from bench.store import DB_NAME, ResultsStore

        self.folder = Path(folder)
        self.db = ResultsStore.open(self.folder, write=False, ingest=False) if (self.folder / DB_NAME).is_file() else None

    def _waiting(self, key: str | None = None) -> list[dict[str, Any]]:
        out = []
        for path in pending(self.folder):
            header = read_header(path)
            if header is None or (key is not None and header.get("cell_key") != key):
                continue
            try:
                out.append(read_incoming(path, parse=True).record)
            except (OSError, ValueError):
                continue
        return out

    def lookup(self, key: str) -> Any:
        from bench.record import read_record

        found = self.db.lookup(key) if self.db is not None else None
        if found is None:
            waiting = self._waiting(key)
            found = read_record(waiting[0]) if waiting else None
        return found

    def newest(self, backbone: str, checkpoint_sha256: str, task: str) -> Any:
        from bench.record import read_record

        candidates = [r for r in self._waiting() if r["backbone"]["name"] == backbone and r["backbone"]["sha256"] == checkpoint_sha256
                      and r["task"]["name"] == task and not r["limited"]]
        stored = self.db.newest(backbone, checkpoint_sha256, task) if self.db is not None else None
        candidates += [stored] if stored is not None else []
        return read_record(max(candidates, key=lambda r: r["created_at"])) if candidates else None

    def put(self, record: dict[str, Any], samples: list[dict[str, Any]] | None, replace: bool = False) -> None:
        deliver(self.folder, record, samples, replace=replace)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
