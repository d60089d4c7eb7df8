"""`bench export`: every stored record, as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any, command: Any) -> None:
    """Add this command's parser to `sub` (`command(sub, name, ...)` adds the common flags)."""
    p = command(sub, "export", help="write stored records out", description="Write every stored result record out.")
    p.add_argument("--results", help="results folder (default: $BENCH_RESULTS or ./results)")
    p.add_argument("--format", choices=["json"], default="json")
    p.add_argument("--output", help="file to write (default: standard output)")
    p.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from bench.paths import results_dir
    from bench.store import ResultsStore

    store = ResultsStore.open(results_dir(args.results), write=False)
    text = json.dumps(list(store.records()), indent=2, sort_keys=True)
    store.close()
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    else:
        print(text)
    return 0

