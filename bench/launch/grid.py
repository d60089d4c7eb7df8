"""`bench run --launcher slurm|local`: check everything that can be checked here, plan the cells,
then print (--dry-run), submit, or run them; wait when asked (local always waits)."""

from __future__ import annotations

import copy
import pickle
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.launch.plan import Cell, Grid, arrays, plan_grid
from bench.launch.resources import Profile, Resources, format_minutes, resources_for


@dataclass
class LaunchOptions:
    launcher: str  # slurm | local
    profile: Profile = field(default_factory=Profile)
    flags: dict[str, Any] = field(default_factory=dict)  # --partition, --time, ... (None: not given)
    extra: dict[str, str] = field(default_factory=dict)
    max_parallel: int | None = None
    dry_run: bool = False
    wait: bool = False
    resubmit_failed: bool = False
    command: str = ""


def _warn(line: str) -> None:
    print(f"bench: warning: {line}", file=sys.stderr, flush=True)


def _note(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


def check_cluster(groups: list[list[Cell]], launch: LaunchOptions) -> int:
    """Partitions and time limits (sinfo); returns MaxArraySize. Raises BenchError on what sbatch
    would reject or leave pending forever."""
    from bench.launch import cluster

    cluster.require_slurm()
    config = cluster.show_config()
    parts = cluster.partitions()
    for group in groups:
        r = group[0].resources
        name = r.partition or next((p.name for p in parts.values() if p.default), None)
        if r.partition and r.partition not in parts:
            import difflib

            close = difflib.get_close_matches(r.partition, list(parts), n=1)
            raise BenchError(f"partition '{r.partition}' does not exist on this cluster{f'. did you mean {close[0]}' if close else ''}",
                             f"partitions here: {', '.join(sorted(parts))} (sinfo)")
        limit = parts[name].max_minutes if name in parts else None
        if limit is not None and r.time > limit:
            raise BenchError(f"{group[0].task}: time {format_minutes(r.time)} is over partition {name}'s limit of {format_minutes(limit)}; "
                             "Slurm would keep the job pending forever", f"pass --time {format_minutes(limit)} or less, or another --partition")
    return cluster.max_array_size(config)


def resources_of(launch: LaunchOptions, opts: Any) -> Any:
    small = opts.mini or opts.limit is not None
    cache: dict[str, Resources] = {}

    def get(task: str) -> Resources:
        if task not in cache:
            cache[task] = resources_for(task, launch.profile, launch.flags, launch.extra, small)
        return cache[task]

    return get


def launch_grid(backbones: str, tasks: str, seeds: list[int], opts: Any, launch: LaunchOptions) -> int:
    from bench.launch import submit
    from bench.launch.status import active_keys

    if not launch.dry_run:
        submit.require_submitit()
    if launch.launcher == "slurm":
        from bench.launch.cluster import require_slurm

        require_slurm()
    opts = copy.copy(opts)
    opts.results = Path(opts.results).resolve()
    opts.progress = False  # jobs log lines, never bars
    grid = plan_grid(backbones, tasks, seeds, opts, resources_of(launch, opts), active_keys(opts.results))
    for line in grid.warnings:
        _warn(line)
    return _launch(grid, opts, launch, tasks=tasks)


def _launch(grid: Grid, opts: Any, launch: LaunchOptions, tasks: str = "") -> int:
    from bench.launch import submit
    from bench.launch.ledger import new_submission

    max_parallel = launch.max_parallel or launch.profile.max_parallel or (2 if launch.launcher == "local" else 256)
    for cell, job in grid.active:
        _note(f"{cell.label()}: already submitted (job {job}, not ended); not submitted again")
    if grid.stored:
        _note(f"{len(grid.stored)} cell{'s' * (len(grid.stored) != 1)} already in the store; not submitted (--force runs them again)")
    if not grid.cells:
        _note("nothing to submit")
        return 0
    max_size = 1001
    groups = arrays(grid.cells, max_size)
    if launch.launcher == "slurm":
        max_size = check_cluster(groups, launch)
        groups = arrays(grid.cells, max_size)
    if launch.dry_run:
        print(dry_run_text(groups, opts, launch, max_parallel, max_size, len(grid.stored), len(grid.active)))
        return 0
    submission = new_submission(opts.results)
    meta = {"command": launch.command, "results": str(opts.results), "max_parallel": max_parallel}
    if launch.launcher == "slurm":
        for group in groups:
            ex = submit.slurm_executor(submission, group[0].resources, len(group), max_parallel, submit.job_name(group))
            refused = submit.test_script(submit.sbatch_script(ex, len(group)))
            if refused:
                import shutil

                shutil.rmtree(submission, ignore_errors=True)
                raise BenchError(f"sbatch would refuse the jobs of {group[0].task} ({group[0].resources.describe()}): {refused}",
                                 "fix the options (sbatch --test-only says why), or the profile")
        info = submit.submit_slurm(submission, groups, opts, max_parallel, meta)
        for array in info["arrays"]:
            _note(f"submitted array {array['job_id']}: {array['cells']} cells, at most {array['max_parallel']} at once")
        _note(f"{len(grid.cells)} cells submitted ({submission.name}); follow them with: bench status --results {opts.results}")
        if not launch.wait:
            return 0
        return wait_and_report(opts.results, submission)
    start = time.perf_counter()

    def progress(k: int, n: int, cell: Cell, future: Any) -> None:
        _note(f"[{k}/{n}] {cell.label()}: {submit.log_line(future)} ({time.perf_counter() - start:.0f} s)")

    submit.run_local(submission, grid.cells, opts, max_parallel, meta, progress)
    return report(opts.results, submission)


def dry_run_text(groups: list[list[Cell]], opts: Any, launch: LaunchOptions, max_parallel: int, max_size: int, stored: int, active: int) -> str:
    from bench.launch import submit

    n = sum(len(g) for g in groups)
    lines = [f"dry run: {n} cell{'s' * (n != 1)} in {len(groups)} array{'s' * (len(groups) != 1)} (launcher {launch.launcher}, MaxArraySize {max_size}, "
             f"at most {max_parallel} at once per array); {stored} stored and {active} still submitted, not submitted; nothing was submitted"]
    folder = Path(opts.results) / "launch" / "<submission>"
    for k, group in enumerate(groups, 1):
        r = group[0].resources
        lines += ["", f"array {k} of {len(groups)}: {len(group)} cell{'s' * (len(group) != 1)}; {r.describe()}"]
        if launch.launcher == "slurm":
            try:
                ex = submit.slurm_executor(folder, r, len(group), max_parallel, submit.job_name(group))
                lines += [line for line in submit.sbatch_script(ex, len(group)).splitlines() if line.startswith("#SBATCH")]
            except BenchError as exc:
                lines.append(f"  (no sbatch header: {exc.message})")
        lines += [f"  {i:>4}  {c.backbone}  {c.task}  seed {c.seed}  cell {c.id}" for i, c in enumerate(group)]
    return "\n".join(lines)


def wait_and_report(results: Path, submission: Path, poll_s: float = 2.0) -> int:
    from bench.launch.status import cell_statuses

    keys = _keys(submission)
    while True:
        rows = [r for r in cell_statuses(results, _open(results)) if r.key in keys]
        if rows and all(r.state in ("done", "failed") for r in rows):
            break
        time.sleep(poll_s)
    return report(results, submission)


def _keys(submission: Path) -> set[str]:
    import json

    info = json.loads((submission / "submission.json").read_text())
    return {c["key"] for c in info["cells"]}


def _open(results: Path) -> Any:
    from bench.launch.status import _store

    return _store(results)


def report(results: Path, submission: Path) -> int:
    """The result table of the submission's cells (ingested now), and a line per failed one."""
    import json

    from bench.launch.status import cell_statuses
    from bench.runner import CellOutcome
    from bench.tables import run_table

    info = json.loads((submission / "submission.json").read_text())
    store = _open(results)
    statuses = {r.key: r for r in cell_statuses(results, store)}
    outcomes = []
    for entry in info["cells"]:
        record = store.lookup(entry["key"]) if store is not None else None
        status = statuses.get(entry["key"])
        error = None if record is not None else (status.error if status else "no record") or "no record"
        outcomes.append(CellOutcome(entry["spec"], entry["task"], record, error=error))
    print(run_table(outcomes))
    failed = [o for o in outcomes if o.error]
    for o in failed:
        print(f"bench: error: {o.backbone} x {o.task}: {o.error}", file=sys.stderr)
    if failed:
        print(f"bench: {len(failed)} failed; see bench status --results {results}, and retry with --resubmit-failed", file=sys.stderr)
    return 1 if failed else 0


def resubmit_failed(results: Path, launch: LaunchOptions) -> int:
    """The failed cells of earlier submissions, submitted again with their options and resources
    (flags given now override their resources)."""
    from bench.launch.plan import Cell as PlanCell
    from bench.launch.status import _store, cell_statuses

    results = Path(results).resolve()
    rows = [r for r in cell_statuses(results, _store(results)) if r.state == "failed" and r.launcher == launch.launcher]
    if not rows:
        _note(f"no failed {launch.launcher} cells in {results}")
        return 0
    cells = []
    for row in rows:
        jobs = pickle.loads((results / "launch" / row.submission / "jobs.pkl").read_bytes())
        job = jobs[row.entry["id"]]
        given = {k: v for k, v in launch.flags.items() if v is not None}
        r = Resources(**{**{k: v for k, v in row.entry["resources"].items() if k != "extra"}, **_checked_flags(given)},
                      extra=tuple(sorted({**row.entry["resources"].get("extra", {}), **launch.extra}.items())))
        cells.append((PlanCell(row.entry["id"], row.key, row.entry["spec"], row.entry.get("name"), row.backbone, row.task, row.seed, r), job.opts))
        _note(f"resubmitting {row.backbone} x {row.task} seed {row.seed} (job {row.job_id}: {row.error})")
    # cells whose jobs ran with other run options are submitted apart, each group with its own options
    groups: list[tuple[Any, list[PlanCell]]] = []
    for cell, o in cells:
        for g_opts, group in groups:
            if replace(g_opts, seed=0) == replace(o, seed=0):  # each cell carries its seed
                group.append(cell)
                break
        else:
            groups.append((o, [cell]))
    code = 0
    for o, group in groups:
        code = max(code, _launch(Grid(cells=group), o, launch))
    return code


def _checked_flags(given: dict[str, Any]) -> dict[str, Any]:
    from bench.launch.resources import _checked

    return _checked(given, "command line")
