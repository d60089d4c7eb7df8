"""Detector training throughput (images/s) on the mini VOCdevkit: one process, then two under
torchrun (gloo on CPU, one thread each; NCCL on GPUs), same total batch; prints the speed-up.

    python benchmarks/det_throughput.py [--task voc_det_ssd] [--iterations 30] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr[-2000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="voc_det_ssd", choices=["voc_det_ssd", "voc_det_frcnn"])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    from bench.mini.build import MiniSpec, ensure_data
    from bench.paths import cache_dir

    data = ensure_data(cache_dir() / "mini", MiniSpec())
    speeds = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BENCH_CACHE": str(Path(tmp) / "cache"), "TQDM_DISABLE": "1"}
        weights = cache_dir() / "weights"
        if weights.is_dir():  # reuse the demo's mini backbones
            (Path(tmp) / "cache").mkdir()
            os.symlink(weights, Path(tmp) / "cache" / "weights")
        for procs in (1, 2):
            results = Path(tmp) / f"results{procs}"
            bench = ["-m", "bench", "run", "--backbone", "mini_baseline", "--task", args.task, "--mini", "--data-root", str(data), "--results", str(results),
                     "--workers", "0", "--device", args.device, "--set", f"iterations={args.iterations}", "--set", f"checkpoint_every={args.iterations}", "--seed", str(procs)]
            prefix = [sys.executable] if procs == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
            run(prefix + bench, {**env, "OMP_NUM_THREADS": str(os.cpu_count() if procs == 1 else max(1, (os.cpu_count() or 2) // 2))})
            record = json.loads(subprocess.run([sys.executable, "-m", "bench", "export", "--results", str(results)], cwd=REPO, env=env, capture_output=True, text=True).stdout)[0]
            speeds[procs] = record["details"][args.task.rsplit("_", 1)[1]]["train"]["images_per_s"]
    print(f"{args.task} training on the mini VOCdevkit ({args.iterations} iterations, {args.device}): "
          f"1 process {speeds[1]:.1f} images/s, 2 processes {speeds[2]:.1f} images/s, speed-up {speeds[2] / speeds[1]:.2f}x")


if __name__ == "__main__":
    main()
