"""The runner-owned evaluation loop changed no number: every task's metrics, per-sample rows and
details on the mini data equal those of the task code before the port (commit BEFORE).

"Before" is recomputed on this machine from that commit's code when the clone has the history
(trained mini results are exact on one machine but may differ in the last bits on another CPU);
without history the stored outputs (tests/data/port_before.json.gz, made on the machine that
wrote the port) are the reference.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEFORE = "acf35e1b165117475c758730464b06d431681674"  # the last commit with the task-owned loops


def start(code_root: Path, out: Path) -> subprocess.Popen:
    """port_outputs.py on one copy of the code, in a process of its own (one thread: the two copies run side by side)."""
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    return subprocess.Popen([sys.executable, str(code_root / "tests" / "port_outputs.py"), str(out)], cwd=code_root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen, out: Path) -> dict:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.read_text())


def start_before(tmp_path: Path) -> tuple[subprocess.Popen | None, Path | None]:
    """The code at BEFORE, started; (None, None) when this clone has no history."""
    try:
        tar = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE, "bench", "tasks", "tests", "checkpoints"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        tar = None
    if tar is None or tar.returncode != 0:
        return None, None
    old = tmp_path / "before"
    old.mkdir()
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        archive.extractall(old, filter="data")
    return start(old, tmp_path / "before.json"), tmp_path / "before.json"


def test_every_task_gives_the_same_outputs_as_before_the_port(tmp_path):
    running = start(REPO, tmp_path / "after.json")
    before_proc, before_out = start_before(tmp_path)
    after = result(running, tmp_path / "after.json")
    if before_proc is None:  # no history in this clone: the stored reference
        before = json.loads(gzip.decompress((REPO / "tests" / "data" / "port_before.json.gz").read_bytes()))
    else:
        before = result(before_proc, before_out)
    assert sorted(after) == sorted(before)
    for task in before:  # what existed before is unchanged; metrics and details added since (imagenet_cls's calibration) are extra
        assert {k: after[task]["metrics"][k] for k in before[task]["metrics"]} == before[task]["metrics"], task
        assert after[task]["n_samples"] == before[task]["n_samples"], task
        # rows gained keys since (their split, per-sample statistics) and WSOL gained the wsoleval protocol's rows
        rows = after[task]["samples"]
        if len(rows) != len(before[task]["samples"]):
            rows = [r for r in rows if r.get("split") != "wsoleval"]
        assert [{k: r.get(k) for k in b} for r, b in zip(rows, before[task]["samples"])] == before[task]["samples"] and len(rows) == len(before[task]["samples"]), task
        assert {k: after[task]["details"].get(k) for k in before[task]["details"]} == before[task]["details"], task
