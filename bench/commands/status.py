"""`bench status`: where the cells of `bench run --launcher ...` submissions stand."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any, command: Any) -> None:
    p = command(sub, "status", help="submitted cells: pending, running, done, failed, requeued",
                description="Every cell submitted with 'bench run --launcher slurm|local' (its newest submission): pending, running, done or failed, "
                            "requeues, job id, node, log path and a failed job's last error line. From the store (records are ingested first), "
                            "squeue/scontrol (sacct where an accounting daemon answers) and the jobs' folders.",
                epilog="examples:\n  bench status\n  bench status --results /shared/bench/results --state failed\n"
                       "  bench run --launcher slurm --resubmit-failed --results /shared/bench/results", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", help="the results folder (default: $BENCH_RESULTS or ./results)")
    p.add_argument("--state", choices=["pending", "running", "waiting", "done", "failed"], action="append", help="only cells in this state (repeatable)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(handler=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from bench.errors import BenchError
    from bench.launch.status import _store, cell_statuses
    from bench.paths import results_dir
    from bench.tables import markdown

    results = results_dir(args.results)
    if not (results / "launch").is_dir():
        raise BenchError(f"nothing was submitted from {results}", "submit with 'bench run --launcher slurm ...' (or --launcher local), or pass --results DIR")
    store = _store(results)
    rows = cell_statuses(results, store)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    shown = [r for r in rows if not args.state or r.state in args.state]
    if args.format == "json":
        print(json.dumps([{k: v for k, v in vars(r).items() if k != "entry"} for r in shown], indent=1))
        return 0
    print(markdown(["backbone", "task", "seed", "state", "requeued", "job", "node", "log", "error"],
                   [[r.backbone, r.task, r.seed, r.state, r.requeues, r.job_id, r.node, r.log if r.state != "done" else "", r.error] for r in shown], right=[2, 4]))
    print("\n" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f" ({len(rows)} cells)")
    return 0
