"""What was submitted, kept beside the results so that `bench status` and --resubmit-failed can
find it from any node:

    results/launch/<submission>/submission.json   launcher, command, arrays, cells and job ids
    results/launch/<submission>/jobs.pkl          the cells' jobs, for --resubmit-failed
    results/launch/<submission>/jobs/             submitit's folder: pickles and logs (%j_0_log.out/err)
    results/launch/<submission>/state/<cell>.json what each job said last: running, done, failed (with
                                                  its error line), requeued, on which node, restarts
    results/launch/locks/<cell key>.lock          held while a job runs its cell

Every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.errors import BenchError


def launch_dir(results: Path) -> Path:
    return Path(results) / "launch"


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_submission(results: Path) -> Path:
    """A fresh submission folder (proving the results folder is writable before anything is submitted)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    folder = launch_dir(results) / f"{stamp}-{secrets.token_hex(3)}"
    try:
        (folder / "state").mkdir(parents=True)
        probe = folder / ".writable"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise BenchError(f"results folder {results} is not writable ({exc.strerror})", "pass --results DIR on a shared, writable file system") from None
    return folder


def write_state(submission: Path, cell_id: str, **fields: Any) -> None:
    path = Path(submission) / "state" / f"{cell_id}.json"
    old = read_json(path) or {}
    write_json(path, {**old, **fields, "at": now()})


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def submissions(results: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every submission with a readable submission.json, oldest first."""
    folder = launch_dir(results)
    out = []
    for sub in sorted(folder.iterdir()) if folder.is_dir() else []:
        info = read_json(sub / "submission.json")
        if info is not None:
            out.append((sub, info))
    return out


def states(submission: Path) -> dict[str, dict[str, Any]]:
    folder = Path(submission) / "state"
    return {p.stem: s for p in sorted(folder.glob("*.json")) if (s := read_json(p)) is not None}
