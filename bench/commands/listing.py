"""`bench list`: backbones, tasks, one task's settings, and the results stored."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bench.errors import BenchError
from bench.registry import matches as _matches


def register(sub: Any, command: Any) -> None:
    p = command(sub, "list", help="list backbones, tasks, a task's settings or stored results",
             description="List backbone cards or tasks, optionally filtered by a wildcard, every setting of one task (its type, default, mini value and meaning), "
                         "or the results stored (backbone, task, settings that differ from the defaults, seed, date, limited, samples file).",
             epilog="examples:\n  bench list backbones 'r50_*'\n  bench list tasks\n  bench list settings cub_loc\n"
                    "  bench list results 'mini_*' --tasks imagenet_c --results ~/.cache/bench/mini/results", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["backbones", "tasks", "settings", "results"])
    p.add_argument("pattern", nargs="?", default="*", help="wildcard, e.g. 'r50_*' (settings: the task's name; results: backbones)")
    p.add_argument("--tasks", default="*", help="results: wildcard or comma list of task names")
    p.add_argument("--results", help="results: the results folder (default: $BENCH_RESULTS or ./results)")
    p.set_defaults(handler=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "results":
        return list_results(args)
    if args.what == "settings":
        return list_settings(args.pattern)
    if args.what == "tasks":
        from tasks import TASKS

        if not any(ch in args.pattern for ch in "*?[,"):
            TASKS.get(args.pattern)  # an unknown name answers with "did you mean"
        names = [n for n in TASKS.names() if _matches(n, args.pattern)]
        width = max((len(n) for n in names), default=0)
        for n in names:
            print(f"{n.ljust(width)}  {TASKS.get(n).description}")
        if not names:
            raise BenchError(f"no task matches '{args.pattern}'", "run 'bench list tasks'")
        return 0
    from bench.cards import find_card, load_cards
    from bench.registry import is_pattern

    if not is_pattern(args.pattern) and "," not in args.pattern:
        find_card(args.pattern)  # an unknown name answers with "did you mean"
    cards = [c for c in load_cards().values() if _matches(c.name, args.pattern) or any(_matches(a, args.pattern) for a in c.aliases)]
    width = max((len(c.name) for c in cards), default=0)
    for c in cards:
        print(f"{c.name.ljust(width)}  {c.description}")
    if args.pattern == "*":
        print("\nalso: torchvision:ARCH[.WEIGHTS], timm:NAME (with timm installed), or a checkpoint file with --arch")
    if not cards and args.pattern != "*":
        raise BenchError(f"no backbone matches '{args.pattern}'", "run 'bench list backbones'")
    return 0


def list_settings(name: str) -> int:
    """Every setting of one task: name, type and range, default, --mini value, meaning."""
    from bench.settings import flat
    from tasks import TASKS

    if name == "*" or any(ch in name for ch in "*?[,"):
        raise BenchError("bench list settings needs one task's name", "e.g. bench list settings cub_loc (see 'bench list tasks')")
    entry = TASKS.get(name)
    task = entry.load()()
    defaults = flat(task.default_config())
    mini = entry.mini or {}
    specs = task.settings()

    def show(value: Any) -> str:
        return "null" if value is None else json.dumps(value) if isinstance(value, (list, bool)) else str(value)

    rows = [[key, spec.accepts(), show(defaults.get(key)), show(mini[key]) if key in mini else "", spec.help] for key, spec in specs.items()]
    from bench.tables import markdown

    print(f"{name} v{task.version}: {entry.description}\n")
    if not rows:
        print(f"{name} has no settings: its protocol is fixed (the card's preprocessing and --limit are what change a run)")
        return 0
    print(markdown(["Setting", "Takes", "Default", "--mini", "Meaning"], rows))
    print(f"\nset with --set KEY=VALUE (a YAML value); any change is a new cell. e.g. bench run --backbone B --task {name} --set {next(iter(specs), 'KEY')}=...")
    return 0


def changed_settings(record: dict[str, Any], defaults: dict[str, Any] | None) -> str:
    """The settings of a record that differ from its task's defaults now ('defaults' when none;
    the config hash when the task is not known here)."""
    from bench.settings import flat

    config = {k: v for k, v in record["task"]["config"].items() if k not in ("preprocessing", "num_classes", "limit")}
    if defaults is None:
        return f"config {record['task']['config_hash']}"
    now, then = flat(defaults), flat(config)
    diff = [f"{k}={json.dumps(v) if isinstance(v, (list, dict, bool)) or v is None else v}" for k, v in then.items() if now.get(k, object()) != v]
    return ", ".join(diff) or "defaults"


def list_results(args: argparse.Namespace) -> int:
    """One line per stored record: what ran, on which settings and seed, when, and where its samples are."""
    from bench.paths import results_dir
    from bench.store import ResultsStore
    from bench.tables import markdown
    from tasks import TASKS

    store = ResultsStore.open(results_dir(args.results), write=False)
    records = [r for r in store.records() if _matches(r["backbone"]["name"], args.pattern) and _matches(r["task"]["name"], args.tasks)]
    store.close()
    if not records:
        raise BenchError(f"no stored results match backbones '{args.pattern}' and tasks '{args.tasks}' in {store.path}", "run 'bench list results' for all of them")
    defaults: dict[str, dict[str, Any] | None] = {}
    for name in {r["task"]["name"] for r in records}:
        try:
            defaults[name] = TASKS.get(name).load()().default_config()
        except BenchError:
            defaults[name] = None  # a task this version of bench no longer has
    rows = []
    for r in records:
        n = r["n_samples"]
        rows.append([
            r["backbone"]["name"], r["backbone"]["sha256"][:12], f"{r['task']['name']} v{r['task']['version']}", changed_settings(r, defaults[r["task"]["name"]]),
            str(r["seed"]), r["created_at"][:16].replace("T", " "), f"{n['evaluated']}/{n['total']}" if r["limited"] else "no",
            (r.get("artifacts") or {}).get("samples") or "-",
        ])
    print(markdown(["Backbone", "sha256", "Task", "Settings (not default)", "Seed", "Created (UTC)", "Limited", "Samples file"], rows))
    print(f"\n{len(records)} record(s) in {store.path}; the whole records: bench export --results {store.folder}")
    return 0
