"""`bench demo`: the embedded mini benchmark, offline."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from bench.errors import BenchError


def register(sub: Any, command: Any) -> None:
    """Add this command's parser to `sub` (`command(sub, name, ...)` adds the common flags)."""
    p = command(sub, "demo", help="the embedded mini benchmark, offline", description="Build small data sets of handwritten digits in the real layouts, train a small ResNet four ways on them, evaluate the four with every task "
                                   "that has a mini variant, and write reports/demo/README.md. One line per stage on stderr; at the end the comparison table, "
                                   "the results and data folders and the commands to try next.")
    p.add_argument("--workdir", help="where the mini data and results go (default: $BENCH_CACHE/mini)")
    p.add_argument("--output", default="reports/demo", help="where the table is written")
    p.add_argument("--seed", type=int, default=0, help="generator and training seed (a new seed builds new data and backbones)")
    p.add_argument("--train-scenes", type=int, default=2000, help="training scenes (default 2000)")
    p.add_argument("--val-scenes", type=int, default=1000, help="validation scenes (default 1000)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs per recipe (default 8)")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from bench.demo import run_demo

    progress = not args.quiet and sys.stderr.isatty() and not os.environ.get("TQDM_DISABLE")
    from bench.mini.build import MiniSpec

    for flag in ("train_scenes", "val_scenes", "epochs"):
        if getattr(args, flag) <= 0:
            raise BenchError(f"--{flag.replace('_', '-')} must be positive", "fix the value")
    spec = MiniSpec(seed=args.seed, train=args.train_scenes, val=args.val_scenes, epochs=args.epochs)
    return run_demo(Path(args.workdir) if args.workdir else None, Path(args.output), progress=progress, spec=spec, log=not args.quiet)

