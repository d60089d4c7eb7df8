"""A results store of synthetic records for the real cards: every card x every registered task,
each metric a task declares (families with two or three members), seeded tasks with several
seeds, written through the real ResultsStore. Shared by tests/test_report.py and
benchmarks/report_speed.py. The values are pseudo-random but fixed by the seed, so the report's
numbers can be checked against the store's."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

START = datetime(2026, 12, 7, tzinfo=timezone.utc)
MEMBERS = {"set": ["svhn", "lsun_crop", "imagenet_r"], "corruption": ["fog", "snow"], "iou": ["30", "50", "70"], "severity": ["1", "5"],
           "eps": ["1", "8"], "lam": ["0.5"], "size": ["56", "112"]}


def _names(spec_name: str) -> list[str]:
    import itertools
    import re

    keys = re.findall(r"\{([a-z_]+)\}", spec_name)
    if not keys:
        return [spec_name]
    return [spec_name.format(**dict(zip(keys, combo))) for combo in itertools.product(*(MEMBERS[k] for k in keys))]


def synthetic_records(seeds: int = 2, copies: int = 1, seed: int = 0) -> list[dict[str, Any]]:
    from bench.cards import load_cards
    from bench.record import build_record
    from tasks import TASKS

    rng = np.random.default_rng(seed)
    tasks = [(e.name, e.load()) for e in TASKS.entries()]
    out = []
    clock = 0
    for copy in range(copies):
        for card in load_cards().values():
            name = card.name if copy == 0 else f"{card.name}_copy{copy}"
            sha = hashlib.sha256(name.encode()).hexdigest()
            for task_name, task in tasks:
                meta = {}
                for k, spec in enumerate(task.metrics):
                    for metric in _names(spec.name):
                        meta[metric] = {**spec.to_dict(), "order": k}
                for s in range(seeds if task.seeded else 1):
                    clock += 1
                    metrics = {m: float(np.round(rng.uniform(5, 95), 4)) for m in meta}
                    run_id = f"20261207T{clock:06d}-{hashlib.sha256(f'{name}{task_name}{s}'.encode()).hexdigest()[:8]}"
                    out.append(build_record(
                        run_id=run_id, cell_key=hashlib.sha256(run_id.encode()).hexdigest(), created_at=(START + timedelta(seconds=clock)).isoformat(timespec="seconds"),
                        status="complete",
                        backbone={"name": name, "spec": name, "arch": card.arch, "sha256": sha, "path": None,
                                  "card": {"name": name, "arch": card.arch, "bare_file": False}, "load_report": {}},
                        task={"name": task_name, "version": task.version, "config": {}, "config_hash": "c0ffee", "seeded": task.seeded,
                              "sample_key": list(task.sample_key)},
                        metrics=metrics, metric_meta=meta, reported=card.reported(task.reported_key or task_name), seed=s,
                        determinism={}, n_samples={"total": 1000, "evaluated": 1000},
                        data={"fingerprint": "f00d", "n_samples": 1000, "summary": {task_name: "synthetic: 1000 images"}},
                        limited=False, device={}, batch_size=1, workers=0, env={"versions": {"bench": "test"}}, timing={}, artifacts={}, details={}))
    return out


def write_store(folder: Path, records: list[dict[str, Any]]) -> Path:
    from bench.store import ResultsStore

    store = ResultsStore.open(folder, write=True)
    for r in records:
        store.insert(r)
    store.close()
    return folder
