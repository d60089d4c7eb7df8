"""The incoming folder (bench/store/incoming.py): many processes deliver records at once, any open
of the store ingests them once each, and a damaged file is named and never stored."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from bench.store import ResultsStore
from bench.store.incoming import JobStore, deliver, ingest, pending


def fake_record(i: int, key: str | None = None) -> dict:
    return {
        "schema_version": 3, "run_id": f"20261207T000000-{i:08d}", "cell_key": key or f"{i:064d}", "created_at": f"2026-12-07T00:00:{i % 60:02d}+00:00",
        "status": "complete", "backbone": {"name": f"b{i % 3}", "sha256": "ab" * 32}, "task": {"name": "imagenet_cls", "version": "1", "config_hash": "c" * 16},
        "seed": i % 2, "limited": False, "metrics": {"top1_err": i / 7}, "artifacts": {}, "details": {},
    }


def _writer(args):
    folder, start, n = args
    for i in range(start, start + n):
        deliver(Path(folder), fake_record(i), samples=[{"index": i, "correct": i % 2}])
    return n


def rows(folder: Path) -> list[tuple]:
    db = sqlite3.connect(folder / "bench.sqlite")
    return db.execute("SELECT run_id, cell_key, metrics FROM results ORDER BY run_id").fetchall()


def test_several_processes_deliver_and_every_record_is_stored_once(tmp_path, capsys):
    results = tmp_path / "results"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert sum(pool.map(_writer, [(str(results), k * 25, 25) for k in range(4)])) == 100
    # a second delivery of cell 7 (another job that ran it too), a truncated file and one in progress
    deliver(results, fake_record(7) | {"run_id": "20261207T000001-dup"})
    good = pending(results)[0].read_bytes()
    (results / "incoming" / "cut.record.json").write_bytes(good[: len(good) - 20])
    (results / "incoming" / ".half.record.json.part-1-abc").write_bytes(good[:10])
    assert len(pending(results)) == 102
    store = ResultsStore.open(results, write=False)  # a read-only command ingests first
    stored = rows(results)
    assert len(stored) == 100 and len({key for _, key, _ in stored}) == 100
    assert {json.loads(m)["top1_err"] for _, _, m in stored} == {i / 7 for i in range(100)}
    err = capsys.readouterr().err
    assert "incoming record" in err and "cut.record.json was not ingested (truncated or changed" in err and ".half" not in err
    assert [p.name for p in pending(results)] == ["cut.record.json"]  # left in place, named each time
    # per-sample files moved beside the store, one per stored record, named in it
    record = store.lookup(f"{3:064d}")
    assert Path(record["artifacts"]["samples"]).read_text() == '{"index":3,"correct":1}\n'
    assert len(list((results / "samples").iterdir())) == 100
    assert not list((results / "incoming").glob("*.samples.jsonl"))
    store.close()


def test_ingesting_the_same_files_twice_stores_them_once(tmp_path):
    """A crash after the commit and before the files were removed: the next ingest sees them again."""
    results = tmp_path / "r"
    for i in range(5):
        deliver(results, fake_record(i))
    copies = {p.name: p.read_bytes() for p in pending(results)}
    ResultsStore.open(results).close()
    for name, data in copies.items():
        (results / "incoming" / name).write_bytes(data)
    store = ResultsStore.open(results)
    assert len(rows(results)) == 5 and not pending(results)
    deliver(results, fake_record(2) | {"run_id": "20261207T000009-new", "metrics": {"top1_err": 99.0}}, replace=True)  # --force
    found = ingest(store.db, results)
    assert (found.stored, found.duplicates) == (1, 0)
    assert store.lookup(f"{2:064d}")["metrics"] == {"top1_err": 99.0} and len(rows(results)) == 5
    store.close()


def test_a_job_finds_records_still_waiting_and_never_writes_the_database(tmp_path):
    results = tmp_path / "r"
    deliver(results, fake_record(1))
    ResultsStore.open(results).close()  # stored
    deliver(results, fake_record(2))  # waiting
    job = JobStore(results)
    assert job.lookup(f"{1:064d}")["run_id"] == fake_record(1)["run_id"]
    assert job.lookup(f"{2:064d}")["run_id"] == fake_record(2)["run_id"]
    assert job.lookup(f"{3:064d}") is None
    job.put(fake_record(3), [{"index": 0}])
    job.close()
    assert len(rows(results)) == 1 and len(pending(results)) == 2


def test_incoming_records_in_a_read_only_folder_are_reported(tmp_path, capsys, monkeypatch):
    results = tmp_path / "r"
    ResultsStore.open(results).close()
    deliver(results, fake_record(1))
    from bench.errors import BenchError

    real = ResultsStore.open.__func__

    def refuse(cls, folder, write=True, ingest=True):
        if write:
            raise BenchError(f"results store {folder} is read-only", "fix")
        return real(cls, folder, write, ingest)

    monkeypatch.setattr(ResultsStore, "open", classmethod(refuse))
    ResultsStore.open(results, write=False).close()
    assert "1 records in" in capsys.readouterr().err
