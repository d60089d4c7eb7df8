"""One cell as a submitit job: what runs on the node.

The job runs the cell through the same `run_cell` as `bench run`, with the store a job may use
(bench.store.incoming.JobStore: reads the database, delivers into results/incoming/). A job of
several tasks (GPUs) runs DDP from submitit's environment: TorchDistributedEnvironment exports
RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT (a port drawn from the job id, so two jobs on
one node do not collide), the variables torchrun sets, and the rest is torchrun's code path.

Preemption and time limits: Slurm sends USR2 before it stops the job (sbatch --signal); submitit
calls `checkpoint`, which resubmits the same cell, and requeues the job (`scontrol requeue`, the
same job id). The requeued job finds the training stage's last checkpoint and resumes from it.
A job killed without warning (SIGKILL, out of memory, a node lost) leaves its state at running
and its Slurm state terminal: `bench status` calls it failed.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Any

from bench.launch.ledger import write_state


class CellJob:
    """Picklable: the cell, the run's options and where to report."""

    def __init__(self, cell: dict[str, Any], opts: Any, submission: str, launcher: str, threads: int = 0):
        self.cell = cell
        self.opts = opts
        self.submission = submission
        self.launcher = launcher
        self.threads = threads
        self.requeues = 0

    def __repr__(self) -> str:
        return f"CellJob({self.cell['backbone']} x {self.cell['task']} seed {self.cell['seed']})"

    def _env(self) -> dict[str, Any]:
        try:
            import submitit

            env = submitit.JobEnvironment()
            return {"job_id": env.job_id, "rank": env.global_rank, "tasks": env.num_tasks, "active": True}
        except RuntimeError:  # called outside a job (tests, debugging)
            return {"job_id": None, "rank": 0, "tasks": 1, "active": False}

    def __call__(self) -> dict[str, Any]:
        import torch

        from bench.errors import BenchError, one_line
        from bench.evaluation import init_distributed, world
        from bench.runner import resolve_device, run_cell, select_tasks
        from bench.store.incoming import JobStore

        started = time.time()
        env = self._env()
        if env["tasks"] > 1:
            import submitit

            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        if self.threads:
            torch.set_num_threads(self.threads)
        rank, size = world()
        restarts = max(self.requeues, int(os.environ.get("SLURM_RESTART_COUNT", 0) or 0))
        launch = {"launcher": self.launcher, "job_id": env["job_id"], "node": socket.gethostname(), "requeues": restarts,
                  "submission": Path(self.submission).name, "world_size": size}
        cid = self.cell["id"]
        if rank == 0:
            write_state(self.submission, cid, state="running", job_id=env["job_id"], node=launch["node"], pid=os.getpid(), requeues=restarts, started_unix=started)
        lock = None
        try:
            if rank == 0:
                lock = self._lock(cid)
            opts = self.opts
            opts.seed = self.cell["seed"]
            device = resolve_device(opts.device)
            init_distributed(device)
            store = JobStore(opts.results) if rank == 0 else None
            try:
                outcome = run_cell(self.cell["spec"], select_tasks(self.cell["task"])[0], opts, store, device, rank, size, self.cell.get("name"), launch=launch)
            finally:
                if store is not None:
                    store.close()
        except BenchError as exc:
            if rank == 0:
                write_state(self.submission, cid, state="failed", error=one_line(exc))
            raise
        except Exception as exc:
            if rank == 0:
                write_state(self.submission, cid, state="failed", error=f"{type(exc).__name__}: {one_line(exc)}")
            raise
        finally:
            if lock is not None:
                lock.close()
        record = outcome.record or {}
        if rank == 0:
            write_state(self.submission, cid, state="cached" if outcome.cached else "done", run_id=record.get("run_id"), ended_unix=time.time())
        return {"run_id": record.get("run_id"), "cached": outcome.cached, "metrics": record.get("metrics")}

    def _lock(self, cid: str) -> Any:
        """The cell's lock: a second job of the same cell waits here, then finds the record."""
        folder = Path(self.opts.results) / "launch" / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / f"{self.cell['key']}.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            write_state(self.submission, cid, state="waiting", note="another job runs this cell; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
            write_state(self.submission, cid, state="running", note=None)
        except OSError:  # a file system without locks: the ingest still keeps one record a cell
            return handle
        return handle

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's hook on preemption or a time limit: run this cell again after the requeue
        (its training stage resumes from the last checkpoint written)."""
        import submitit

        again = CellJob(self.cell, self.opts, self.submission, self.launcher, self.threads)
        again.requeues = self.requeues + 1
        write_state(self.submission, self.cell["id"], state="requeued", requeues=again.requeues)
        return submitit.helpers.DelayedSubmission(again)
