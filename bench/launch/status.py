"""Where each submitted cell stands, from the store, Slurm and the job folders.

A cell is done when its record is in the store (after ingesting incoming/). Otherwise Slurm says
whether its job is pending or running (squeue), or how it ended (scontrol show job for a while
after the end, sacct where an accounting daemon answers). Where Slurm does not answer (another
machine, slurmctld down), the job's state file says what it last wrote. A job that ended (or that Slurm no longer knows) with no record is failed: its
last error line is the one its state file recorded (bench's own message), else the last line of
its stderr log. A local job is running while its process is alive.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.launch import cluster
from bench.launch.ledger import states, submissions

PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED"}
RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING"}


@dataclass
class CellStatus:
    backbone: str
    task: str
    seed: int
    state: str  # pending, running, waiting, done, failed
    job_id: str
    node: str
    requeues: int
    log: str
    error: str
    key: str
    submission: str
    launcher: str
    entry: dict[str, Any]


def last_line(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            lines = [line.strip() for line in fh.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def log_paths(entry: dict[str, Any]) -> tuple[Path, Path]:
    folder, job = Path(entry["folder"]), entry["job_id"]
    return folder / f"{job}_0_log.out", folder / f"{job}_0_log.err"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def cell_statuses(results: Path, store: Any) -> list[CellStatus]:
    """One row per submitted cell (its newest submission), submission order."""
    newest: dict[str, tuple[Path, dict[str, Any], dict[str, Any]]] = {}
    for folder, info in submissions(results):
        for entry in info.get("cells", []):
            newest.pop(entry["key"], None)
            newest[entry["key"]] = (folder, info, entry)
    by_sub: dict[Path, list[str]] = {}
    for key, (folder, _, _) in newest.items():
        by_sub.setdefault(folder, []).append(key)
    slurm_ids = [e["job_id"] for f, i, e in newest.values() if i.get("launcher") == "slurm"]
    try:
        queue = cluster.queue(slurm_ids) if slurm_ids else {}
        acct = cluster.accounting(slurm_ids) if slurm_ids else {}
        slurm_ok = True
    except (BenchError, OSError):  # no Slurm here (status read on another machine): state files and logs only
        queue, acct, slurm_ok = {}, {}, False
    state_files = {folder: states(folder) for folder in by_sub}
    rows = []
    for key, (folder, info, entry) in newest.items():
        launcher = info.get("launcher", "slurm")
        st = state_files[folder].get(entry["id"], {})
        out, err = log_paths(entry)
        row = CellStatus(entry["backbone"], entry["task"], entry["seed"], "pending", entry["job_id"], st.get("node", ""), int(st.get("requeues") or 0),
                         str(err), "", key, folder.name, launcher, entry)
        record = store.lookup(key) if store is not None else None
        if record is not None:
            launch = record.get("launch") or {}
            row.state = "done"
            row.node = launch.get("node", row.node)
            row.requeues = int(launch.get("requeues", row.requeues) or 0)
            rows.append(row)
            continue
        job = entry["job_id"]
        if launcher == "slurm":
            if job in queue:
                q = queue[job]
                row.state = "running" if q["state"] in RUNNING else "pending"
                row.node = q["node"] or row.node
                if st.get("state") == "waiting" and row.state == "running":
                    row.state = "waiting"
                if q["state"] in PENDING and q["reason"] and q["reason"] != "None":
                    row.error = f"({q['reason']})"
                shown = cluster.show_job(job) if slurm_ok else None
                if shown:
                    row.requeues = max(row.requeues, int(shown.get("Restarts", 0) or 0))
            elif not slurm_ok:  # Slurm did not answer: what the job's state file last said
                said = st.get("state")
                row.state = {"running": "running", "waiting": "waiting", "requeued": "pending", None: "pending"}.get(said, "failed")
                if row.state == "failed":  # failed, or done with no record stored
                    row.error = st.get("error") or last_line(err) or "the job ended without a record"
                else:
                    row.error = "(Slurm did not answer: as the job's state file says)"
            else:
                shown = cluster.show_job(job)
                ended = (acct.get(job) or {}).get("state") or (shown or {}).get("JobState")
                row.state = "failed"
                if shown:
                    row.requeues = max(row.requeues, int(shown.get("Restarts", 0) or 0))
                row.error = st.get("error") or last_line(err) or (f"Slurm state {ended}" if ended else "the job ended without a record")
                if ended and ended not in ("FAILED", "COMPLETED"):
                    row.error = f"{ended}: {row.error}" if row.error != f"Slurm state {ended}" else row.error
        else:
            here = st.get("node") in (None, socket.gethostname())
            if st.get("state") in ("running", "waiting") and here and _alive(st.get("pid")):
                row.state = st["state"]
            elif st.get("state") is None and here and _alive(_int(job)):
                row.state = "pending"
            else:
                row.state = "failed"
                row.error = st.get("error") or last_line(err) or "the job's process ended without a record"
        rows.append(row)
    return rows


def _int(text: str) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def active_keys(results: Path) -> dict[str, str]:
    """Cell key -> job id of submitted cells not yet ended (pending, running, waiting)."""
    if not (Path(results) / "launch").is_dir():
        return {}
    return {r.key: r.job_id for r in cell_statuses(results, _store(results)) if r.state in ("pending", "running", "waiting")}


def _store(results: Path) -> Any:
    from bench.store import DB_NAME, ResultsStore

    if (Path(results) / DB_NAME).is_file() or (Path(results) / "incoming").is_dir():
        return ResultsStore.open(Path(results), write=False)
    return None
