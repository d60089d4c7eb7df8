"""`bench report`: tables and figures of stored results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.commands.options import add_data_args
from bench.errors import BenchError


def register(sub: Any, command: Any) -> None:
    """Add this command's parser to `sub` (`command(sub, name, ...)` adds the common flags)."""
    p = command(
        sub, "report", help="tables (and figures) of stored results",
        description="Tables of stored results. Without --table: one table, a column per stored metric. With --table: the paper's tables "
                    "(and bench's own) that the tasks declare, one row per backbone: the mean over seeds (± std, n), the published number "
                    "in [brackets], the difference to the baseline in (parentheses), the column's best in bold, 95% intervals over images "
                    "(--ci; always in html, csv and json); with --format html and --data-root, the CAM grids too. Limited runs are left out unless --include-limited, and never fill a --table table. "
                    "--figure cam draws the CAMs of each backbone's fine-tuned WSOL classifier on the same images instead.",
        epilog="examples:\n  bench report --backbones 'r50_*'\n"
               "  bench report --list-tables\n"
               "  bench report --table transfer --backbones 'r50_*' --format latex --output reports/transfer.tex\n"
               "  bench report --table table_9 --baseline r50_baseline --ci\n"
               "  bench report --format html --output reports/index.html   (every table with data, figures, provenance)\n"
               "  bench report --figure cam --backbones 'r50_*' --tasks cub_loc --data-root /data --output reports/cam_cub.png\n"
               "  bench report --figure robustness --backbones 'r50_*' --output reports/robustness.png\n"
               "  bench report --figure ood --backbones 'pyramidnet200_*' --tasks cifar100_ood --output reports/ood.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--results", help="results folder (default: $BENCH_RESULTS or ./results)")
    p.add_argument("--backbones", default="*", help="wildcard or comma list of backbone names")
    p.add_argument("--tasks", default="*", help="wildcard or comma list of task names")
    p.add_argument("--include-limited", action="store_true")
    p.add_argument("--table", help="a table name, a comma list, or 'all' (every table with data; the default for --format html); see --list-tables")
    p.add_argument("--list-tables", action="store_true", help="which tables exist, which tasks fill them, which have data in this store")
    p.add_argument("--baseline", help="the row every difference is to (default: per architecture, the card named *_baseline, when present)")
    p.add_argument("--format", default="md", help="md, latex, csv, json or html (one self-contained page; default --table all)")
    p.add_argument("--ci", action="store_true", help="95%% intervals over images in md and latex too")
    p.add_argument("--output", help="write the table to this file (atomically) instead of printing it; with --figure, the PNG (default reports/figures/cam_<task>.png, robustness.png or ood.png)")
    g = p.add_argument_group("figures")
    g.add_argument("--figure", choices=["cam", "robustness", "ood"], help="cam: a PNG grid, one row per backbone, CAM with predicted (green) and GT (red) boxes; "
                   "robustness: occlusion and in-between curves, error per corruption, reliability diagrams, from the stored records; "
                   "ood: histograms of in- vs out-of-distribution scores per backbone and set, and ROC curves")
    g.add_argument("--score", default="msp", help="the OOD figure's score (msp, max_logit, energy, odin; default msp)")
    g.add_argument("--images", type=int, default=6, help="images per row of the figure (evenly spaced over the split)")
    g.add_argument("--device", default="cpu", help="device for the figure's forward passes")
    add_data_args(p)
    p.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from bench.paths import results_dir
    from bench.report import build
    from bench.store import ResultsStore

    fmt = build.check_format(args.format)
    results = results_dir(args.results)
    store = ResultsStore.open(results, write=False)
    try:
        return _report(args, fmt, results, store)
    finally:
        store.close()


def _report(args: argparse.Namespace, fmt: str, results: Path, store: Any) -> int:
    from bench.registry import matches
    from bench.report import build
    from bench.report.load import report_records

    if args.table is not None and not args.table.strip():
        raise BenchError("--table needs a name, a comma list or all", "see bench report --list-tables")
    table = args.table or ("all" if fmt == "html" and not args.figure else None)
    if (args.list_tables or table is not None) and not args.figure:  # the paper-style tables read only the fields they show
        from bench.report.load import tasks_of

        records = report_records(store, args.backbones, args.tasks, args.include_limited, None if args.list_tables else tasks_of(table))
    else:
        records = [r for r in store.records(include_limited=args.include_limited)
                   if matches(r["backbone"]["name"], args.backbones) and matches(r["task"]["name"], args.tasks)]
    if args.list_tables:
        print(build.list_tables(records))
        return 0
    if not records and (table is None or table == "all" or not store.task_names()):  # a named table says which tasks would fill it
        raise BenchError(f"no stored results match backbones '{args.backbones}' and tasks '{args.tasks}' in {store.path}", "run 'bench run' first (limited runs need --include-limited)")
    if args.figure:
        return _figure(args, records)
    problems: list[str] = []
    if table is None:
        if fmt != "md":
            raise BenchError(f"--format {fmt} needs --table (a name, a comma list or all)", "see bench report --list-tables")
        from bench.tables import report_table

        text = report_table(records) + "\n"
    else:
        tables = build.select(records, table, args.baseline)
        data = None
        if fmt == "html" and args.data_root:  # the CAM grids need the images
            from bench.paths import parse_overrides
            from bench.task import DataLocator

            data = DataLocator(args.data_root, parse_overrides(args.data_path))
        text, problems = build.render(tables, fmt, args.ci, results, store.by_run_ids, data)
    if args.output:
        path = build.write(text, Path(args.output))
        print(f"wrote {path}" + (f" ({len(tables)} tables)" if table else ""))
    else:
        print(text, end="")
    for line in problems:
        print(f"note: {line}", file=sys.stderr)
    return 0


def _figure(args: argparse.Namespace, records: list[Any]) -> int:
    if args.figure == "cam":
        from bench.figures import cam_figure
        from bench.paths import parse_overrides
        from bench.task import DataLocator

        task = records[-1]["task"]["name"]
        output = Path(args.output or f"reports/figures/cam_{task}.png")
        path = cam_figure(records, DataLocator(args.data_root, parse_overrides(args.data_path)), output, args.images, args.device)
        print(f"wrote {path} ({len({r['backbone']['name'] for r in records})} backbones x {args.images} images)")
        return 0
    if args.figure == "robustness":
        from bench.figures import robustness_figure

        path = robustness_figure(records, Path(args.output or "reports/figures/robustness.png"))
        print(f"wrote {path} ({len({r['backbone']['name'] for r in records})} backbone(s))")
        return 0
    from bench.figures import ood_figure

    path = ood_figure(records, Path(args.output or "reports/figures/ood.png"), args.score)
    print(f"wrote {path} ({len({r['backbone']['name'] for r in records})} backbone(s))")
    return 0
