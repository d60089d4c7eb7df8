"""`bench check`: is NEW worse than REF, on the same samples, by more than noise?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.commands.options import add_data_args, add_selection_args, parse_seeds, run_options
from bench.errors import BenchError

EXAMPLES = """\
examples:
  bench check --backbone ./new.pth --arch resnet50 --against r50_cutmix --task imagenet_cls --data-root /data --run
  bench check --backbone mini_cutmix --against mini_baseline --results ~/.cache/bench/mini/results
  bench check --backbone mini_cutmix --against mini_baseline --task cub_loc --seeds 3 --run --mini --data-root ~/.cache/bench/mini/data/current
  bench check --backbone r50_cutmix --against paper --task imagenet_cls --data-root /data

exit status: 0 no deciding (headline) metric is worse; 1 one is; 2 usage or data errors;
3 with --strict, a deciding metric is inconclusive."""


def register(sub: Any, command: Any) -> None:
    p = command(sub, "check", help="is a checkpoint worse than a reference on the same samples, beyond noise?",
                description="Pair the stored per-sample results of NEW and REF on the same samples and compare every metric with the procedure it "
                            "declares (Wilson and exact McNemar for per-image correctness, a paired bootstrap for MaxBoxAcc and other non-linear "
                            "metrics, DeLong for AUROC), Holm's correction across the metrics, and a verdict per metric against its tolerance: "
                            "better, equivalent (the 95%% interval inside +-tolerance), worse (significant and beyond the tolerance) or inconclusive.",
                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_selection_args(p, check=True)
    add_data_args(p)
    g = p.add_argument_group("check")
    g.add_argument("--against", required=True, help="REF: a card name, another checkpoint (NAME=PATH, of --arch), or 'paper' (the card's published numbers)")
    g.add_argument("--results", help="results folder (default: $BENCH_RESULTS or ./results)")
    g.add_argument("--seeds", help="the seeds to compare (3 = 0,1,2; default: every stored seed of the newest settings); two or more per side add the seed-to-seed spread")
    g.add_argument("--tolerance", metavar="FILE", help="YAML of tolerances per task and metric, absolute in the metric's unit (default: bench/checks/tolerances.yaml)")
    g.add_argument("--alpha", type=float, default=0.05, help="significance level, family-wise over the check's metrics (Holm) (default 0.05)")
    g.add_argument("--resamples", type=int, help="bootstrap resamples (default 10,000; 2,000 for MaxBoxAcc)")
    g.add_argument("--stat-seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    g.add_argument("--run", action="store_true", help="run the missing cells of both first, with bench run's options")
    g.add_argument("--strict", action="store_true", help="exit 3 when a deciding metric is inconclusive (a CI job that wants proof of equivalence)")
    g.add_argument("--allow-config-diff", action="store_true", help="compare even when NEW and REF were scored with other settings, data or task version")
    g.add_argument("--format", choices=["md", "json"], default="md")
    g.add_argument("--output", help="also write the table (or JSON) to this file")
    g.add_argument("--device", default="auto", help="with --run: cpu, cuda or cuda:N")
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--workers", type=int, default=0, help="with --run: data loader processes")
    p.set_defaults(handler=cmd_check, seed=0, limit=None)  # bench run's options that a check does not take: complete results, seed 0 with --run


def cmd_check(args: argparse.Namespace) -> int:
    from bench.runner import check_names

    seeds = parse_seeds(args.seeds)
    if not 0 < args.alpha < 1:
        raise BenchError(f"--alpha must lie in (0, 1), got {args.alpha}", "e.g. --alpha 0.05")
    if args.resamples is not None and args.resamples < 100:
        raise BenchError(f"--resamples must be at least 100, got {args.resamples}", "e.g. --resamples 2000")
    paper = args.against == "paper"
    check_names(args.backbone, args.task)  # before torch is imported
    if not paper:
        check_names(args.against, args.task)
    from bench.checks.verdicts import Tolerances

    tolerances = Tolerances(Path(args.tolerance) if args.tolerance else None)
    opts = run_options(args)
    if args.run:
        import copy

        from bench.cards import looks_like_path, split_display_name
        from bench.runner import run_grid
        from bench.tables import run_table

        for s in seeds or [0]:
            opts.seed = s
            outcomes = run_grid(args.backbone, args.task, opts, debug=args.debug)
            if not paper:  # REF on its own: --arch and --name are NEW's when NEW is a file
                ref_opts = copy.copy(opts)
                if not looks_like_path(split_display_name(args.against)[1]):
                    ref_opts.arch, ref_opts.name, ref_opts.num_classes, ref_opts.preprocessing = None, None, None, {}
                outcomes += run_grid(args.against, args.task, ref_opts, debug=args.debug)
            print(run_table(outcomes), file=sys.stderr)
            failed = [o for o in outcomes if o.error]
            if failed:
                raise BenchError(f"{failed[0].backbone} x {failed[0].task} failed: {failed[0].error}", "fix it, then run bench check again")
    from bench.checks.check import run_check

    result = run_check(args.backbone, args.against, args.task, opts, tolerances, args.alpha, seeds, args.resamples, args.stat_seed, args.allow_config_diff)
    from bench.checks.report import as_json, markdown

    text = as_json(result) if args.format == "json" else markdown(result)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    return result.exit_code(args.strict)
