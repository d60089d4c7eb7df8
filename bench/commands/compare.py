"""`bench compare A B --task T`: which images one backbone gets right and the other wrong."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any, command: Any) -> None:
    p = command(sub, "compare", help="per-image drill-down of two backbones on one task: the images one gets right and the other wrong",
                description="From stored per-sample files: the images A gets right and B wrong and the reverse (ids, classes, predictions; for WSOL the "
                            "IoUs), their counts, and per class the discordant pairs with an exact McNemar test (Holm across classes).",
                epilog="examples:\n  bench compare mini_cutmix mini_baseline --task imagenet_cls --results ~/.cache/bench/mini/results\n"
                       "  bench compare mini_cutmix mini_baseline --task cub_loc --metric top1_loc --format json",
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", metavar="A", help="a backbone name as stored (bench list results)")
    p.add_argument("b", metavar="B", help="the other backbone")
    p.add_argument("--task", required=True, help="one task name")
    p.add_argument("--metric", help="a metric with a per-image 0/1 statistic (default: the task's first headline one)")
    p.add_argument("--seed", type=int, help="the seed of a task that trains (default: the lowest stored)")
    p.add_argument("--results", help="results folder (default: $BENCH_RESULTS or ./results)")
    p.add_argument("--rows", type=int, default=20, help="rows shown per list in Markdown (default 20; JSON has all)")
    p.add_argument("--format", choices=["md", "json"], default="md")
    p.add_argument("--output", help="also write it to this file")
    p.set_defaults(handler=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.checks.compare import as_json, drill, markdown
    from bench.paths import results_dir
    from bench.store import ResultsStore
    from tasks import TASKS

    TASKS.get(args.task)  # an unknown name answers with "did you mean", without loading the task
    store = ResultsStore.open(results_dir(args.results), write=False)
    records = list(store.records(include_limited=False))
    store.close()
    d = drill(records, store.folder, args.a, args.b, args.task, args.metric, args.seed)
    text = as_json(d) if args.format == "json" else markdown(d, args.rows)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    return 0
