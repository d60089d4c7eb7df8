"""`bench score ood` on 10,000 in-distribution and 7 x 10,000 out-of-distribution scores (the
paper's CIFAR-100 setting) against a naive threshold loop as ODIN's calMetric.py runs it: for
each of 100,000 grid thresholds, count the ID and OOD scores on each side (its TNR at TPR 95%
and detection loops only; ODIN also loops for AUROC and both AUPRs). bench's side is the whole
command in-process (reading 8 .npy files, every metric, the JSON). Prints both times, the
speed-up, and how far the grid's answer is from bench's exact one.

    python benchmarks/ood_scoring.py [--grid 100000] [--n 10000] [--sets 7]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def naive(ins: np.ndarray, outs: np.ndarray, grid: int) -> tuple[float, float]:
    """ODIN's loops: TPR = ID >= delta, FPR = OOD > delta over np.arange(start, end, gap)."""
    start, end = min(ins.min(), outs.min()), max(ins.max(), outs.max())
    gap = (end - start) / grid
    total = fpr_sum = 0.0
    error = 1.0
    for delta in np.arange(start, end, gap):
        tpr = np.sum(ins >= delta) / len(ins)
        fpr = np.sum(outs > delta) / len(outs)
        if 0.9495 <= tpr <= 0.9505:
            fpr_sum += fpr
            total += 1
        error = min(error, (np.sum(ins < delta) / len(ins) + fpr) / 2)
    return 100 * (1 - fpr_sum / max(total, 1)), 100 * (1 - error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=int, default=100_000)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--sets", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="bench-ood-"))
    # MSP-like scores: ID mostly confident, OOD spread; float64 with some exact ties at 1.0
    ins = np.where(rng.random(args.n) < 0.3, 1.0, rng.beta(8, 1.5, args.n))
    np.save(work / "in.npy", ins)
    outs = {}
    for k in range(args.sets):
        outs[f"set{k}"] = np.where(rng.random(args.n) < 0.05, 1.0, rng.beta(2 + k, 2, args.n))
        np.save(work / f"set{k}.npy", outs[f"set{k}"])

    from bench.cli import main as bench

    start = time.perf_counter()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = bench(["score", "ood", "--in", str(work / "in.npy"), "--out", *[str(work / f"{n}.npy") for n in outs]])
    t_bench = time.perf_counter() - start
    assert code == 0
    result = json.loads(buffer.getvalue())
    start = time.perf_counter()
    grid = {n: naive(ins, o, args.grid) for n, o in outs.items()}
    t_naive = time.perf_counter() - start
    gaps = [max(abs(grid[n][0] - result["sets"][n]["tnr_at_tpr95"]), abs(grid[n][1] - result["sets"][n]["detection_acc"])) for n in outs]
    print(f"{args.n:,} ID + {args.sets} x {args.n:,} OOD scores")
    print(f"  bench score ood (all 7 metrics, files, JSON): {t_bench:.3f} s")
    print(f"  naive ODIN loop ({args.grid:,} thresholds, TNR@TPR95 and detection only): {t_naive:.1f} s")
    print(f"  speed-up {t_naive / t_bench:.0f}x; largest difference of the grid's answer from bench's exact one: {max(gaps):.3f} points")


if __name__ == "__main__":
    main()
