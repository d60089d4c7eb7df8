"""`bench validate`: resolve every cell as `bench run` would, without loading weights or running."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.commands.options import add_data_args, add_selection_args, run_options
from bench.errors import BenchError, one_line


def register(sub: Any, command: Any) -> None:
    """Add this command's parser to `sub` (`command(sub, name, ...)` adds the common flags)."""
    p = command(sub, "validate", help="check backbone, task and data without running", description="Resolve backbones, tasks and dataset paths, and say what is missing, without running anything.")
    add_selection_args(p)
    add_data_args(p)
    p.add_argument("--results", help="results folder (default: $BENCH_RESULTS or ./results)")
    p.add_argument("--limit", type=int, help="as for run; shows whether the cell is cached")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    """Resolve every cell as run would, without loading weights or running; list problems."""
    from bench.backbones.download import verify_sha256, weights_path
    from bench.cards import expand_backbones, resolve_backbone
    from bench.runner import check_names, display_names, resolve_config, select_tasks
    from bench.store import DB_NAME, ResultsStore, cell_key, config_hash
    from bench.store.incoming import pending

    check_names(args.backbone, args.task)  # before torch is imported
    opts = run_options(args)
    tasks = select_tasks(args.task)
    problems = 0
    # records that launched jobs left in incoming/ count as stored, even before bench.sqlite exists
    store = ResultsStore.open(opts.results, write=False) if (opts.results / DB_NAME).is_file() or pending(opts.results) else None
    specs = expand_backbones(args.backbone)
    names = display_names(specs, opts)
    for spec in specs:
        try:
            card = resolve_backbone(spec, opts.arch, opts.num_classes, opts.preprocessing, names[spec])
        except BenchError as exc:
            print(f"✗ {spec}: {one_line(exc)}")
            problems += 1
            continue
        sha = None
        if card.weights.format == "timm":
            print(f"✓ {card.name}: timm weights (fetched by timm at run time)")
        else:
            try:
                path = weights_path(card, progress=False, fetch=False)
                sha = verify_sha256(path, card.weights.sha256)
                print(f"✓ {card.name}: weights {path} (sha256 {sha[:12]})")
            except BenchError as exc:
                print(f"✗ {card.name}: {one_line(exc)}")
                problems += 1
        for task in tasks:
            try:
                config = resolve_config(task, card, opts)
                data = task.check(opts.data, card, config)
                state = ""
                if sha and store is not None:  # the same identity as bench run's (bench.store.cell_key)
                    key = cell_key(card.name, sha, task.name, task.version, config_hash(config), opts.seed if task.seeded else None, data.fingerprint)
                    state = " [cached]" if store.lookup(key) else " [to run]"
                print(f"  ✓ {task.name} v{task.version}: " + "; ".join(f"{k}: {v}" for k, v in data.summary.items()) + state)
            except BenchError as exc:
                print(f"  ✗ {task.name}: {one_line(exc)}")
                problems += 1
    if problems:
        print(f"bench: error: {problems} problem(s) found", file=sys.stderr)
    return 1 if problems else 0

