"""The `bench` command line: the top-level parser and the dispatch. Each command's parser and
handler live side by side in bench/commands/<command>.py; heavy modules (torch) are imported
inside the handlers that need them, so that `bench --help` stays fast."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Sequence

from bench import __version__
from bench.commands import check, compare, demo, export, listing, report, run, score, status, validate
from bench.commands.options import EXAMPLES, Parser
from bench.errors import BenchError, one_line

MODULES = (listing, validate, run, status, check, compare, report, export, score, demo)  # the order of `bench --help`


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="bench",
        description="Evaluation and transfer benchmarks for pretrained vision backbones.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    # the same two flags after the subcommand (bench run ... --debug); SUPPRESS keeps the value set before it
    common = Parser(add_help=False)
    flags = common.add_argument_group("output")
    flags.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    flags.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")

    def _sub(group: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return group.add_parser(name, parents=[common], **kwargs)

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in MODULES:
        module.register(sub, _sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = args.handler(args)
        sys.stdout.flush()  # a reader that stopped early (bench export | head) shows here, not at exit
        return code
    except BrokenPipeError:  # the reader has all it wanted: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return 0
    except BenchError as exc:
        if args.debug:
            raise
        print(f"bench: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; nothing was stored for the unfinished cell", file=sys.stderr)
        return 130
    except Exception as exc:  # a user should still get one line; --debug shows where
        if args.debug or os.environ.get("BENCH_DEBUG"):
            raise
        if "Original Traceback" in str(exc) and "BenchError" in str(exc):
            print(f"bench: error: {one_line(exc)}", file=sys.stderr)
            return 2
        print(f"bench: error: {type(exc).__name__}: {one_line(exc)} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1
