"""Loaded by the jobs of tests/test_slurm.py (PYTHONPATH): a pause after a training stage's first
checkpoint, so that a test can preempt or kill a job mid-training at a known point instead of
racing it. BENCH_TEST_PAUSE=DIR:SECONDS: the first job to write a stage checkpoint (one marker
file in DIR) writes DIR/paused (its pid) and sleeps; every later one runs straight through."""

import os

_spec = os.environ.get("BENCH_TEST_PAUSE")
if _spec:
    import functools
    import time
    from pathlib import Path

    import bench.finetune as _ft

    _folder, _seconds = _spec.rsplit(":", 1)
    _real = _ft.save_atomic

    @functools.wraps(_real)
    def _save_then_pause(obj, path):
        _real(obj, path)
        if Path(path).name == "state.pt":
            try:
                fd = os.open(Path(_folder) / "claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.close(fd)
            (Path(_folder) / "paused").write_text(str(os.getpid()))
            time.sleep(float(_seconds))

    _ft.save_atomic = _save_then_pause
