"""Submitting cells through submitit: to Slurm as job arrays, or to this machine as processes.

Slurm: one sbatch per array (`executor.batch()`), `--array=0-{n-1}%{max_parallel}`, the
resources of its cells, `--signal=USR2@120` (submitit's requeue hook), the job folder under the
submission's folder in the results folder (it must be on a file system every node sees). Each
script is first given to `sbatch --test-only`: an option the cluster rejects fails before
anything is submitted.

Local: submitit's local executor starts every job it is given at once (submitit issue 1685), so
bench hands it at most `max_parallel` jobs at a time and waits for one to end before the next.
"""

from __future__ import annotations

import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.launch.job import CellJob
from bench.launch.ledger import write_json, now
from bench.launch.plan import Cell
from bench.launch.resources import Resources, as_dict

SIGNAL_DELAY_S = 120  # USR2 this long before the time limit: time to write the stage's checkpoint and requeue
MAX_TIMEOUTS = 3  # requeues on reaching the time limit (preemptions are not counted)


def require_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise BenchError("--launcher needs submitit, which is not installed", "pip install 'bench[cluster]' (or: pip install submitit)") from None
    return submitit


def signal_delay(minutes: int) -> int:
    """USR2 SIGNAL_DELAY_S before the limit, or a tenth of a short job's time (at least 30 s)."""
    return int(min(SIGNAL_DELAY_S, max(30, minutes * 6)))


def slurm_parameters(r: Resources, n: int, max_parallel: int, name: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "job_name": name, "nodes": r.nodes, "ntasks_per_node": r.processes, "cpus_per_task": r.cpus_per_task, "time": r.time,
        "signal_delay_s": signal_delay(r.time), "array_parallelism": max(1, min(max_parallel, n)),
    }
    if r.gpus_per_node:
        params["gpus_per_node"] = r.gpus_per_node
    for key in ("partition", "mem", "account", "qos", "constraint"):
        if getattr(r, key):
            params[key] = getattr(r, key)
    if r.extra:
        params["additional_parameters"] = dict(r.extra)
    return params


def slurm_executor(submission: Path, r: Resources, n: int, max_parallel: int, name: str) -> Any:
    submitit = require_submitit()
    ex = submitit.SlurmExecutor(folder=str(submission / "jobs" / "%j"), max_num_timeout=MAX_TIMEOUTS)
    try:
        ex.update_parameters(**slurm_parameters(r, n, max_parallel, name))
    except ValueError as exc:
        raise BenchError(f"submitit refused the job's options ({str(exc).splitlines()[0]})", "check --slurm-extra and the profile") from None
    return ex


def sbatch_script(ex: Any, n: int) -> str:
    """The exact script submitit gives sbatch for an array of n tasks."""
    from submitit.slurm.slurm import _make_sbatch_string

    params = {k: v for k, v in ex.parameters.items() if k != "map_count"}
    if n > 1:
        params["map_count"] = n
    return _make_sbatch_string(command=ex._submitit_command_str, folder=ex.folder, **params)


def test_script(script: str) -> str | None:
    """sbatch --test-only on the script: None when Slurm would take it, else what sbatch said."""
    from bench.launch.cluster import _run

    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as fh:
        fh.write(script)
    try:
        out = _run(["sbatch", "--test-only", fh.name])
    finally:
        Path(fh.name).unlink(missing_ok=True)
    if out.returncode == 0:
        return None
    return "; ".join(line.strip() for line in out.stderr.splitlines() if line.strip()) or f"exit {out.returncode}"


def job_name(cells: list[Cell]) -> str:
    tasks = sorted({c.task for c in cells})
    return "bench-" + (tasks[0] if len(tasks) == 1 else "grid")


def submit_slurm(submission: Path, groups: list[list[Cell]], opts: Any, max_parallel: int, meta: dict[str, Any]) -> dict[str, Any]:
    """Submit every array; the ledger (submission.json, jobs.pkl) is written before the first
    sbatch and updated after each, so a failure part-way leaves what was submitted on record."""
    info = {**meta, "launcher": "slurm", "created_at": now(), "arrays": [], "cells": []}
    jobs_by_cell: dict[str, CellJob] = {}
    for k, group in enumerate(groups):
        ex = slurm_executor(submission, group[0].resources, len(group), max_parallel, job_name(group))
        work = [CellJob(c.as_job_cell(), opts, str(submission), "slurm", threads=c.resources.cpus_per_task) for c in group]
        submitted = time.time()
        with ex.batch():
            futures = [ex.submit(job) for job in work]
        array_id = futures[0].job_id.split("_")[0]
        info["arrays"].append({"job_id": array_id, "submitted_unix": submitted, "cells": len(group), "resources": as_dict(group[0].resources), "max_parallel": max(1, min(max_parallel, len(group)))})
        for cell, job, future in zip(group, work, futures):
            jobs_by_cell[cell.id] = job
            info["cells"].append(_cell_entry(cell, future.job_id, str(future.paths.folder), k))
        write_json(submission / "submission.json", info)
        (submission / "jobs.pkl").write_bytes(pickle.dumps(jobs_by_cell))
    return info


def _cell_entry(cell: Cell, job_id: str, folder: str, array: int) -> dict[str, Any]:
    return {**cell.as_job_cell(), "job_id": job_id, "folder": folder, "array": array, "resources": as_dict(cell.resources)}


def run_local(submission: Path, cells: list[Cell], opts: Any, max_parallel: int, meta: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """Run the cells as local submitit jobs, at most `max_parallel` at once; returns the ledger
    when all have ended. Ctrl-C cancels the running jobs (nothing half-written is stored)."""
    submitit = require_submitit()
    info = {**meta, "launcher": "local", "created_at": now(), "arrays": [], "cells": []}
    waiting = list(cells)
    running: list[tuple[Cell, Any]] = []
    jobs_by_cell: dict[str, CellJob] = {}
    done = 0
    try:
        while waiting or running:
            while waiting and len(running) < max_parallel:
                cell = waiting.pop(0)
                ex = submitit.LocalExecutor(folder=str(submission / "jobs" / "%j"), max_num_timeout=MAX_TIMEOUTS)
                r = cell.resources
                ex.update_parameters(timeout_min=r.time, tasks_per_node=r.processes, gpus_per_node=r.gpus_per_node, signal_delay_s=30)
                job = CellJob(cell.as_job_cell(), opts, str(submission), "local", threads=r.cpus_per_task)
                future = ex.submit(job)
                jobs_by_cell[cell.id] = job
                info["cells"].append(_cell_entry(cell, str(future.job_id), str(future.paths.folder), 0))
                write_json(submission / "submission.json", info)
                (submission / "jobs.pkl").write_bytes(pickle.dumps(jobs_by_cell))
                running.append((cell, future))
            time.sleep(0.2)
            for item in [x for x in running if x[1].done()]:
                running.remove(item)
                done += 1
                if progress:
                    progress(done, len(cells), item[0], item[1])
    except KeyboardInterrupt:
        for _, future in running:
            future.cancel(check=False)
        raise
    return info


def log_line(future: Any) -> str:
    """How a finished local job ended, in one line."""
    try:
        exc = future.exception()
    except Exception as err:  # the job died without writing its result (killed)
        return f"failed: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
    if exc is not None:
        text = str(exc).strip().splitlines()
        return "failed: " + (text[-1] if text else type(exc).__name__)
    result = future.result()
    return "found stored" if result.get("cached") else "done"
