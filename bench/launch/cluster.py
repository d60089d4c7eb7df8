"""Asking Slurm: its limits, partitions and job states, through its own commands (sinfo,
scontrol, squeue, sbatch --test-only; sacct only where an accounting daemon answers it).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED", "SPECIAL_EXIT", "REVOKED"}


def _run(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise BenchError(f"{argv[0]} is not on the PATH", "run bench on a Slurm login node, or use --launcher local") from None
    except subprocess.TimeoutExpired:
        raise BenchError(f"'{' '.join(argv)}' did not answer in {timeout:.0f} s", "is slurmctld up? (scontrol ping)") from None


def require_slurm() -> None:
    missing = [c for c in ("sbatch", "squeue", "scontrol", "sinfo") if shutil.which(c) is None]
    if missing:
        raise BenchError(f"--launcher slurm needs Slurm's commands, and {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not on the PATH",
                         "run bench on a Slurm login node, or use --launcher local on this machine")


def show_config() -> dict[str, str]:
    out = _run(["scontrol", "show", "config"])
    if out.returncode != 0:
        raise BenchError(f"scontrol show config failed ({out.stderr.strip() or out.returncode})", "is slurmctld up? (scontrol ping)")
    config = {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip()
    return config


def max_array_size(config: dict[str, str]) -> int:
    """Slurm's MaxArraySize: array indices must be below it (default 1001)."""
    try:
        return int(config.get("MaxArraySize", "1001").split()[0])
    except ValueError:
        return 1001


@dataclass
class Partition:
    name: str
    default: bool
    max_minutes: int | None  # None: no limit
    state: str


def partitions() -> dict[str, Partition]:
    out = _run(["sinfo", "-h", "-o", "%P|%l|%a"])
    if out.returncode != 0:
        raise BenchError(f"sinfo failed ({out.stderr.strip() or out.returncode})", "is slurmctld up? (scontrol ping)")
    from bench.launch.resources import parse_minutes

    found = {}
    for line in out.stdout.splitlines():
        name, limit, state = (line.split("|") + ["", ""])[:3]
        default = name.endswith("*")
        name = name.rstrip("*")
        try:
            minutes = None if limit.strip() in ("infinite", "UNLIMITED", "") else parse_minutes(limit.strip())
        except BenchError:
            minutes = None
        found[name] = Partition(name, default, minutes, state)
    return found


def queue(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """Pending and running jobs among these (array tasks one a line): id -> state, node, reason."""
    if not job_ids:
        return {}
    bases = sorted({j.split("_")[0] for j in job_ids})
    out = _run(["squeue", "-h", "-r", "-j", ",".join(bases), "-o", "%i|%T|%N|%r"])
    if out.returncode != 0:
        if "Invalid job id" in out.stderr:  # none of them is known any more: all ended
            return {}
        # a timeout or a slurmctld that is down must not read as "every job ended"
        raise BenchError(f"squeue failed ({out.stderr.strip() or out.returncode})", "is slurmctld up? (scontrol ping)")
    found = {}
    for line in out.stdout.splitlines():
        parts = line.split("|")
        if len(parts) >= 4:
            found[parts[0].strip()] = {"state": parts[1].strip(), "node": parts[2].strip(), "reason": parts[3].strip()}
    return found


def show_job(job_id: str) -> dict[str, str] | None:
    """scontrol show job (for a while after the job ended: MinJobAge): JobState, Restarts, NodeList, ..."""
    out = _run(["scontrol", "show", "job", "-o", job_id])
    if out.returncode != 0 or not out.stdout.strip():
        return None
    fields: dict[str, str] = {}
    for token in out.stdout.split():
        key, sep, value = token.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def accounting(job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """sacct's states of these jobs, or {} where no accounting daemon answers (sacct fails)."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    out = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(sorted(set(job_ids))), "-o", "JobID,State,NodeList,ExitCode"])
    if out.returncode != 0:
        return {}
    found = {}
    for line in out.stdout.splitlines():
        parts = line.split("|")
        if len(parts) >= 4:
            found[parts[0]] = {"state": parts[1].split()[0], "node": parts[2], "exit": parts[3]}
    return found
