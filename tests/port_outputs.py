"""Every task's outputs on small mini data, as JSON: the metrics, the per-sample rows and the
numbers in the details (paths and timings left out). Run once on the code before a refactor of
the task machinery and once after; the two files must be equal (tests/test_port_equality.py).

It drives only the command line and the mini generators, so the same script runs on old and new
code alike:

    python tests/port_outputs.py OUT.json      (with PYTHONPATH pointing at the code to run)
"""

from __future__ import annotations

import json
import os
import sys
import shutil
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DROP = {"seconds", "timing", "stage_dir", "images_per_s", "artifact_dir", "cached", "resumed_from_epoch", "resumed_from_iteration", "steps_this_run"}
LEARN = {"frcnn": ["iterations=30", "checkpoint_every=30", "steps=[30]", "warmup_iters=5", "lr=0.02", "box_score_thresh=0.0"],
         "ssd": ["iterations=40", "checkpoint_every=40", "steps=[40]", "warmup_iters=5", "lr=0.01"]}


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if k not in DROP}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def main(out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-port-"))
    try:
        _run(out, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(out: Path, work: Path) -> None:
    os.environ.update({"BENCH_CACHE": str(work / "cache"), "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"})
    sys.path.insert(0, str(HERE))
    import torch

    from bench.cli import main as bench
    from bench.mini.build import MiniSpec, ensure_data
    from bench.mini.model import mini_resnet
    from conftest import save_cutmix_format
    from test_detection import write_learnable_voc

    torch.set_num_threads(1)
    data = ensure_data(work / "mini", MiniSpec(seed=3, train=100, val=40))
    voc = write_learnable_voc(work / "voc")
    torch.manual_seed(0)
    ckpt = save_cutmix_format(mini_resnet(10), work / "mini.pth.tar")
    common = ["--backbone", str(ckpt), "--arch", "bench.mini.model:mini_resnet", "--num-classes", "10", "--workers", "0", "--batch-size", "8", "--quiet"]
    wsol = ["--mini", "--set", "epochs=1", "--set", "batch_size=16", "--set", "interval=0.05"]
    runs = {
        "imagenet_cls": ["--data-root", str(data)],
        "cub_loc": ["--data-root", str(data), *wsol],
        "imagenet_loc": ["--data-root", str(data), *wsol, "--set", "protocols=[paper,wsoleval]", "--set", "cam_method=gradcam", "--limit", "20"],
        "voc_det_frcnn": ["--data-root", str(voc), "--mini", *[a for s in LEARN["frcnn"] for a in ("--set", s)]],
        "voc_det_ssd": ["--data-root", str(voc), "--mini", *[a for s in LEARN["ssd"] for a in ("--set", s)]],
        "voc_det": ["--data-root", str(voc), "--mini", *[a for k, ss in LEARN.items() for s in ss for a in ("--set", f"{k}.{s}")]],
    }
    found: dict[str, Any] = {}
    for task, extra in runs.items():
        results = work / "results" / task
        code = bench(["run", "--task", task, "--results", str(results), *common, *extra])
        if code != 0:
            raise SystemExit(f"{task} failed with exit code {code}")
        import sqlite3

        (text,) = sqlite3.connect(results / "bench.sqlite").execute("SELECT record FROM results").fetchone()
        record = json.loads(text)
        samples = [json.loads(line) for line in Path(record["artifacts"]["samples"]).read_text().splitlines()]
        found[task] = {"metrics": record["metrics"], "n_samples": record["n_samples"], "samples": samples, "details": _clean(record["details"])}
    out.write_text(json.dumps(found, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
