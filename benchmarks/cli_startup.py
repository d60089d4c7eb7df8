"""`bench --help` and `bench list tasks` wall time, and whether they import torch (they must not).

Baseline in the same command: a bare `python -c pass` start-up, so the ratio shows what bench
adds on top of the interpreter. Goal: each under 1 s, zero torch modules.

    python benchmarks/cli_startup.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COUNT_TORCH = (
    "import sys\nfrom bench.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
    "print(sum(1 for m in sys.modules if m == 'torch' or m.startswith('torch.')), file=sys.stderr)"
)


def wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    base = wall([sys.executable, "-c", "pass"], args.repeat)
    print(f"python -c pass (baseline)   {base * 1000:7.1f} ms")
    for argv in (["--help"], ["list", "tasks"], ["list", "backbones"]):
        t = wall([sys.executable, "-m", "bench", *argv], args.repeat)
        torch_modules = subprocess.run([sys.executable, "-c", COUNT_TORCH % argv], cwd=REPO, capture_output=True, text=True).stderr.strip().splitlines()[-1]
        verdict = "ok" if t < 1.0 and torch_modules == "0" else "TOO SLOW or imports torch"
        print(f"bench {' '.join(argv):<20} {t * 1000:7.1f} ms  ratio to baseline {t / base:5.2f}x  torch modules imported: {torch_modules}  [{verdict}]")


if __name__ == "__main__":
    main()
