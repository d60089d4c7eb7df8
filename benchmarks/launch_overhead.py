"""What launching costs: 16 small cells through `bench run --launcher local --max-parallel 2`
against the same 16 in one `bench run` process (wall-time ratio), and, where a Slurm answers
(SLURM_CONF, or one started here as root by tests/slurm_cluster.py), the per-job overhead of the
Slurm path: submission to the first line of the job's cell, and the ingest of its record.

    python benchmarks/launch_overhead.py [--cells 16] [--no-slurm]

Cells: 8 names of small random ResNet-18 checkpoints x imagenet_cls and imagenet_fgsm on 96
generated ImageNet-layout images, one thread per process (both ways).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def bench(args: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "bench", *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench {' '.join(args[:3])} failed:\n{out.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=16, help="an even number: half imagenet_cls, half imagenet_fgsm")
    parser.add_argument("--no-slurm", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import make_val, save_cutmix_format, tiny_model

    work = Path(tempfile.mkdtemp(prefix="bench-launch-"))
    cluster = None
    try:
        data = make_val(work / "data", per_class=8)
        ckpt = save_cutmix_format(tiny_model(), work / "m.pth.tar")
        names = ",".join(f"b{i}={ckpt}" for i in range(args.cells // 2))
        env = {**os.environ, "BENCH_CACHE": str(work / "cache"), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
        common = ["run", "--backbone", names, "--arch", "resnet18", "--num-classes", "12", "--task", "imagenet_cls,imagenet_fgsm",
                  "--data-root", str(data), "--workers", "0", "--batch-size", "16", "--quiet"]
        bench(["list", "tasks"], env)  # warm the file cache
        one = bench([*common, "--results", str(work / "process")], env)
        local = bench([*common, "--results", str(work / "local"), "--launcher", "local", "--max-parallel", "2", "--cpus-per-task", "1"], env)
        print(f"{args.cells} cells in one process:                 {one:6.1f} s")
        print(f"{args.cells} cells, --launcher local --max-parallel 2: {local:6.1f} s")
        print(f"ratio local / one process: {local / one:.2f} (each job starts Python and imports torch; 2 at once on {os.cpu_count()} cores)")
        if args.no_slurm:
            return
        if not (os.environ.get("SLURM_CONF") and shutil.which("sinfo") and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0):
            import slurm_cluster

            why = slurm_cluster.available()
            if why:
                print(f"slurm: not measured ({why})")
                return
            cluster = work / "slurm"
            env.update(slurm_cluster.start(cluster, 1001))
        slurm = ["--launcher", "slurm", "--cpus-per-task", "1", "--mem", "1G", "--time", "10", "--gpus-per-node", "0"]
        results = work / "slurm-results"
        total = bench([*common, "--results", str(results), *slurm, "--wait", "--max-parallel", "2"], env)
        (sub,) = list((results / "launch").glob("*/submission.json"))
        info = json.loads(sub.read_text())
        submitted = min(a["submitted_unix"] for a in info["arrays"])
        states = [json.loads(p.read_text()) for p in (sub.parent / "state").glob("*.json")]
        starts = sorted(s["started_unix"] for s in states)
        first = starts[0] - submitted
        import sqlite3

        from bench.store.incoming import deliver  # the ingest of one job's record, timed on a copy

        (record,) = sqlite3.connect(results / "bench.sqlite").execute("SELECT record FROM results LIMIT 1").fetchone()
        rec = json.loads(record)
        rec["run_id"], rec["cell_key"] = rec["run_id"] + "-copy", "f" * 64
        deliver(work / "one", rec)
        from bench.store import ResultsStore

        t = time.perf_counter()
        ResultsStore.open(work / "one").close()
        ingest = time.perf_counter() - t
        tasks = [json.loads(r)["timing"]["total_s"] for (r,) in sqlite3.connect(results / "bench.sqlite").execute("SELECT record FROM results")]
        busy = [s["ended_unix"] - s["started_unix"] for s in states]
        print(f"slurm: {args.cells} cells in {total:.1f} s (--wait, 2 at once); submission to the first job's first line {first:.1f} s")
        print(f"slurm: per job, first line to record delivered {sum(busy) / len(busy):.2f} s, of which the cell itself {sum(tasks) / len(tasks):.2f} s "
              f"(the rest: imports and loading)")
        print(f"slurm: ingesting one job's record {ingest * 1000:.0f} ms")
    finally:
        if cluster is not None:
            import slurm_cluster

            slurm_cluster.stop(cluster)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
