"""`bench run`: every backbone x task cell, stored; one result table at the end."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from bench.commands.options import EXAMPLES, add_data_args, add_launcher_args, add_selection_args, launch_options, parse_seeds, run_options
from bench.errors import BenchError


def register(sub: Any, command: Any) -> None:
    """Add this command's parser to `sub` (`command(sub, name, ...)` adds the common flags)."""
    p = command(sub, "run", help="run tasks on backbones and store the results", description="Run every backbone x task cell; cached cells are not re-run unless --force.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_selection_args(p, required=False)
    add_data_args(p)
    g = p.add_argument_group("run")
    g.add_argument("--results", help="results folder (default: $BENCH_RESULTS or ./results)")
    g.add_argument("--limit", type=int, help="score N evenly spaced samples of the split (marked limited; never in paper tables)")
    g.add_argument("--seed", type=int, help="seed of the tasks that train or sample (default 0); deterministic tasks ignore it")
    g.add_argument("--seeds", help="run each seeded cell once per seed: a count (3 = seeds 0, 1, 2) or a comma list (0,5,7); deterministic tasks run once")
    g.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: cuda when available)")
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="data loader processes")
    g.add_argument("--force", action="store_true", help="re-run cells that are already stored")
    add_launcher_args(p)
    p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from bench.runner import check_names

    launched = args.launcher != "process"
    launcher_flags = [f for f in ("launcher_profile", "dry_run", "wait", "resubmit_failed", "max_parallel", "partition", "nodes", "gpus_per_node", "tasks_per_node",
                                  "cpus_per_task", "mem", "time", "account", "qos", "constraint", "slurm_extra") if getattr(args, f) not in (None, False)]
    if not launched and launcher_flags:
        raise BenchError(f"--{launcher_flags[0].replace('_', '-')} applies to launched runs only", "add --launcher slurm (or --launcher local)")
    if args.resubmit_failed:
        if args.backbone or args.task:
            raise BenchError("--resubmit-failed takes the cells from earlier submissions", "drop --backbone and --task")
        from bench.launch.grid import resubmit_failed
        from bench.paths import results_dir

        return resubmit_failed(results_dir(args.results), launch_options(args))
    missing = [f"--{f}" for f in ("backbone", "task") if not getattr(args, f)]
    if missing:
        raise BenchError(f"the following arguments are required: {', '.join(missing)}", "see 'bench run --help'")
    seeds = parse_seeds(args.seeds)
    if seeds is not None and args.seed is not None:
        raise BenchError("--seed and --seeds both given", "pass one: --seed 3 runs seed 3, --seeds 3 runs seeds 0, 1, 2")
    args.seed = args.seed if args.seed is not None else (seeds or [0])[0]
    check_names(args.backbone, args.task)  # before torch is imported
    if launched:
        from bench.launch.grid import launch_grid

        return launch_grid(args.backbone, args.task, seeds or [args.seed], run_options(args), launch_options(args))
    from bench.evaluation import world
    from bench.runner import run_grid, select_tasks
    from bench.tables import run_table

    opts = run_options(args)
    outcomes = run_grid(args.backbone, args.task, opts, debug=args.debug)
    seeded = ",".join(t.name for t in select_tasks(args.task) if t.seeded)
    for s in (seeds or [])[1:]:  # deterministic tasks give the same cell for every seed: once is enough
        if seeded:
            opts.seed = s
            outcomes += run_grid(args.backbone, seeded, opts, debug=args.debug)
    if world()[0] == 0:
        print(run_table(outcomes))
        failed = [o for o in outcomes if o.error]
        for o in failed:
            print(f"bench: error: {o.backbone} x {o.task}: {o.error}", file=sys.stderr)
        return 1 if failed else 0
    return 0

