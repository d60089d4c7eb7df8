"""A real one-node Slurm for the tests: munge, slurmctld and slurmd in the foreground, in a folder
of their own, stopped by the pids they were started with (never by name: another Slurm on the
machine may belong to someone else).

    python tests/slurm_cluster.py start DIR [--max-array-size N]   # prints SLURM_CONF=...
    python tests/slurm_cluster.py stop DIR

The tests start it once per session (tests/test_slurm.py's fixture); `.ci/run` installs slurm-wlm
and munge when they are missing. The configuration is the one of
../shared/reference/slurm-one-node.md, with preempt_send_user_signal (submitit's requeue needs the
USR2 before a time limit) and a low MaxArraySize, so that a small grid is split into arrays.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


def available() -> str | None:
    """None when a cluster can be started here, else why not (the skip reason)."""
    missing = [d for d in DAEMONS if not _find(d)]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge; .ci/run does it)"
    if os.geteuid() != 0:
        return "starting munge and slurmd needs root"
    return None


def _find(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None)


def config(folder: Path, max_array_size: int, cpus: int = 2, memory_mb: int = 8000) -> str:
    host = socket.gethostname().split(".")[0]
    return f"""ClusterName=benchtest
SlurmctldHost={host}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
SlurmctldParameters=preempt_send_user_signal
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MaxArraySize={max_array_size}
MinJobAge=3600
# a TERM to a job step is a cancel to slurmstepd: KILL follows after KillWait. That is a preempted
# job's grace time to checkpoint and requeue itself (submitit's USR2 handler), which on a loaded
# 2-core machine can take longer than a few seconds
KillWait=30
NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL MaxTime=60 State=UP
"""


def start(folder: Path, max_array_size: int = 4, timeout: float = 60) -> dict[str, str]:
    """Start the three daemons; returns the environment variables that point Slurm's commands at
    the cluster. Raises RuntimeError (with the daemons' logs) when the node never becomes idle."""
    folder = folder.resolve()
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    conf = folder / "slurm.conf"
    cpus = min(2, os.cpu_count() or 1)
    conf.write_text(config(folder, max_array_size, cpus=cpus))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    # munge: the socket folder (nothing creates it without systemd) and a key
    subprocess.run(["install", "-d", "-o", "munge", "-g", "munge", "-m", "0755", "/run/munge"], check=False)
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run([_find("mungekey") or "mungekey", "--create"], check=False)
        subprocess.run(["chown", "munge:munge", "/etc/munge/munge.key"], check=False)
    pids = {}
    if subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode != 0:
        pids["munged"] = _spawn([_find("munged"), "--force", "-F"], folder / "munged.out", env)
        _wait(lambda: subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0, 20, "munge", folder)
    pids["slurmctld"] = _spawn([_find("slurmctld"), "-D", "-i", "-f", str(conf)], folder / "slurmctld.out", env)
    pids["slurmd"] = _spawn([_find("slurmd"), "-D", "-f", str(conf)], folder / "slurmd.out", env)
    (folder / "pids").write_text("".join(f"{name} {pid}\n" for name, pid in pids.items()))

    def idle() -> bool:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
        return out.returncode == 0 and out.stdout.split()[:1] == ["idle"]

    _wait(idle, timeout, "the Slurm node", folder)
    return {"SLURM_CONF": str(conf)}


def _spawn(argv: list[str], log: Path, env: dict[str, str]) -> int:
    return subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True).pid


def _wait(ready, timeout: float, what: str, folder: Path) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ready():
            return
        time.sleep(0.5)
    logs = "".join(f"\n--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(folder.glob("*.log")) + sorted(folder.glob("*.out")))
    stop(folder)
    raise RuntimeError(f"{what} did not come up in {timeout:.0f} s{logs}")


def stop(folder: Path) -> None:
    """SIGTERM each daemon started by `start` (by its pid), then SIGKILL any still alive."""
    pid_file = folder / "pids"
    if not pid_file.exists():
        return
    pids = [int(line.split()[1]) for line in pid_file.read_text().splitlines() if line.strip()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.2)
    pid_file.unlink()


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


if __name__ == "__main__":
    cmd, where = sys.argv[1], Path(sys.argv[2])
    if cmd == "start":
        size = int(sys.argv[sys.argv.index("--max-array-size") + 1]) if "--max-array-size" in sys.argv else 4
        for key, value in start(where, size).items():
            print(f"{key}={value}")
    else:
        stop(where)
