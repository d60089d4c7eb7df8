"""`bench demo` cold (empty cache) and warm: wall time and peak memory of the whole process tree.

Goals (2-core CPU): cold at most 10 minutes, warm under 1 minute, peak memory under 4 GiB.
Memory is the largest sum of resident memory over bench and its workers, sampled every 0.2 s
from /proc (Linux). Each figure is printed with its ratio to the goal.

    python benchmarks/demo_budget.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOALS = {"cold_s": 600.0, "warm_s": 60.0, "peak_gib": 4.0}


def tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += [p for p, pp in parents.items() if pp == pid]
    return total


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.2)
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"bench demo failed:\n{err[-2000:]}")
    return time.perf_counter() - start, peak, out + err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", help="use this folder as the cache (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.keep or tmp)
        env = {**os.environ, "BENCH_CACHE": str(cache), "TQDM_DISABLE": "1"}
        cmd = [sys.executable, "-m", "bench", "demo", "--output", str(cache / "report")]
        cold, cold_peak, log = run(cmd, env)
        phases = [line for line in log.splitlines() if line.startswith("time:")]
        warm, warm_peak, _ = run(cmd, env)
        peak = max(cold_peak, warm_peak) / 2**30
        print(phases[-1] if phases else "")
        print(f"cold {cold:6.1f} s   ratio to the 600 s goal {cold / GOALS['cold_s']:.2f}")
        print(f"warm {warm:6.1f} s   ratio to the 60 s goal  {warm / GOALS['warm_s']:.2f}")
        print(f"peak {peak:6.2f} GiB ratio to the 4 GiB goal {peak / GOALS['peak_gib']:.2f}")


if __name__ == "__main__":
    main()
