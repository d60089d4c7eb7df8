"""benchmarks/gpu_check.sh runs on a CPU with --small: every check runs and passes, and the
figures and projections it prints are the ones its records hold."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_gpu_check_runs_on_the_cpu(tmp_path):
    env = {**os.environ, "BENCH_CACHE": str(tmp_path / "cache"), "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([str(REPO / "benchmarks" / "gpu_check.sh"), "--small", "--workers", "0"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert "gpu_check on CPU" in text and "10 of 10 checks passed" in text, text
    for line in ("imagenet_cls bench / bare", "voc_det_frcnn training, fp32", "voc_det_ssd training, fp32", "WSOL fine-tuning (cub_loc --mini, 1 epoch)",
                 "CAM overhead (forward + CAMs vs forward)", "imagenet_cls (50,000 val images)", "voc_det_frcnn training (120,000 it x batch 8)",
                 "voc_det_ssd training (120,000 it x batch 32)", "cub_loc fine-tuning (600 epochs x 5,994 images)"):
        assert line in text, (line, text)
    checks = [line for line in text.splitlines() if line.endswith(("of fp32", "finite loss", "finite losses")) or " ok  " in line or "FAILED" in line]
    assert checks and not any("FAILED" in line for line in checks)
    # the projection is the arithmetic of the figure it names
    rate = float(next(line for line in text.splitlines() if line.startswith("imagenet_cls bench loop")).split()[-2])
    hours = float(next(line for line in text.splitlines() if line.startswith("imagenet_cls (50,000 val images)")).split()[-1])
    assert abs(hours - 50_000 / rate / 3600) <= 0.006 + 0.01 * hours
