"""Ingesting the incoming folder: 10,000 records delivered by jobs (bench.store.incoming) stored
by one open of the store, against the same records inserted one transaction each through
ResultsStore.insert (how an in-process run stores a cell). Goal: ingest under 5 s.

    python benchmarks/ingest.py [--records 10000] [--samples 0.3]

The record is a real one (imagenet_cls of a small random checkpoint on generated images, made
here), copied with new run ids and cell keys; a share of them (--samples) has a per-sample file.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def real_record(work: Path) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import make_val, save_cutmix_format, tiny_model

    data = make_val(work / "data", per_class=2)
    ckpt = save_cutmix_format(tiny_model(), work / "m.pth.tar")
    env = {**os.environ, "BENCH_CACHE": str(work / "cache"), "TQDM_DISABLE": "1"}
    subprocess.run([sys.executable, "-m", "bench", "run", "--backbone", str(ckpt), "--arch", "resnet18", "--num-classes", "12", "--task", "imagenet_cls",
                    "--data-root", str(data), "--results", str(work / "seed"), "--workers", "0", "--quiet"], check=True, env=env, capture_output=True)
    (text,) = sqlite3.connect(work / "seed" / "bench.sqlite").execute("SELECT record FROM results").fetchone()
    return json.loads(text)


def copies(record: dict, n: int):
    for i in range(n):
        r = copy.deepcopy(record)
        r["run_id"] = f"{record['run_id'][:15]}-{i:08d}"
        r["cell_key"] = f"{i:064x}"
        yield r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--samples", type=float, default=0.3, help="share of records with a per-sample file")
    args = parser.parse_args()
    from bench.store import ResultsStore
    from bench.store.incoming import deliver, pending

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        record = real_record(work)
        rows = [{"index": k, "correct": k % 2, "label": 3} for k in range(24)]
        every = max(1, round(1 / args.samples)) if args.samples > 0 else 0
        t = time.perf_counter()
        for i, r in enumerate(copies(record, args.records)):
            deliver(work / "jobs", r, rows if every and i % every == 0 else None)
        delivered = time.perf_counter() - t
        assert len(pending(work / "jobs")) == args.records
        # jobs deliver over hours, not in the second before an ingest: let the file system settle
        # the journal of 10,000 just-fsynced files first (without this, ext4 here spends ~1.5 s more
        # on the unlinks)
        os.sync()
        t = time.perf_counter()
        ResultsStore.open(work / "jobs").close()
        ingest = time.perf_counter() - t
        (n,) = sqlite3.connect(work / "jobs" / "bench.sqlite").execute("SELECT count(*) FROM results").fetchone()
        assert n == args.records and not pending(work / "jobs")
        store = ResultsStore.open(work / "one")
        t = time.perf_counter()
        for r in copies(record, args.records):
            store.insert(r)
        insert = time.perf_counter() - t
        store.close()
    size = len(json.dumps(record))
    print(f"records: {args.records:,} of {size:,} bytes (a real imagenet_cls record), {args.samples:.0%} with a per-sample file")
    print(f"delivered by jobs into incoming/:        {delivered:6.2f} s ({args.records / delivered:,.0f} records/s, one process)")
    print(f"ingested by one open of the store:       {ingest:6.2f} s (goal < 5 s: {'met' if ingest < 5 else 'MISSED'})")
    print(f"inserted one transaction each (baseline): {insert:6.2f} s")
    print(f"ratio ingest / insert: {ingest / insert:.2f}")


if __name__ == "__main__":
    main()
