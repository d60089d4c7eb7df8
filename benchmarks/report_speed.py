"""Speed of `bench report --table` over a large store, each against a baseline in the same command:

1. `--table all --format html` over a store of about 10,000 synthetic records (every card x every
   task, seeds and copies; tests/report_store.py), in a fresh process (goal: under 2 s);
2. `--table transfer --format md` over the same store, in a fresh process (goal: under 0.5 s,
   without importing torch);
baseline: `bench report` without --table over the same store, which reads every record whole
(the path the paper-style tables avoid by having SQLite extract the fields they show).

    python benchmarks/report_speed.py [--records 10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    best, out = float("inf"), None
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
        best = min(best, time.perf_counter() - t)
        if out.returncode != 0:
            raise SystemExit(out.stderr)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--keep", help="build the store in this folder and keep it")
    args = ap.parse_args()
    from report_store import synthetic_records, write_store

    one = len(synthetic_records(seeds=2, copies=1))
    records = synthetic_records(seeds=2, copies=max(1, round(args.records / one)))
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench-report-speed-")) / "results"
    write_store(folder, records)
    bench = [sys.executable, "-m", "bench", "report", "--results", str(folder)]
    base, _ = timed(bench)
    html, _ = timed(bench + ["--format", "html", "--output", str(folder.parent / "report.html")])
    md, out = timed(bench + ["--table", "transfer"])
    probe = subprocess.run([sys.executable, "-c", "import sys; from bench.cli import main; main(sys.argv[1:]); print('torch' in sys.modules, file=sys.stderr)",
                            "report", "--results", str(folder), "--table", "transfer"], capture_output=True, text=True, cwd=ROOT)
    rows = sum(1 for line in out.stdout.splitlines() if line.startswith("| ") and not line.startswith("| Backbone"))
    size = (folder.parent / "report.html").stat().st_size / 1e6
    print(f"store: {len(records)} records ({folder})")
    print(f"--table all --format html: {html:.2f} s (goal < 2 s), {size:.1f} MB; bench report without --table (every record read whole) {base:.2f} s; ratio {html / base:.2f}")
    print(f"--table transfer --format md: {md:.2f} s (goal < 0.5 s), {rows} rows, torch imported: {probe.stderr.strip().splitlines()[-1]}; ratio {md / base:.2f}")


if __name__ == "__main__":
    main()
