"""Run bench with deterministic interruption points, for tests that stop a run part-way (Ctrl-C,
SIGKILL) or make processes meet, without racing a run that may finish between two polls.

    python tests/interrupt_point.py [OPTIONS] -- BENCH ARGS...

--block TARGET N     after the N-th call of TARGET returns, print "INTERRUPT POINT" on stdout and
                     block; the test then signals the process
--barrier TARGET DIR N
                     before each call of TARGET, wait until N processes have reached it (files
                     in DIR), so that they all make the call at once
--serial-zoo         train the mini backbones in this process (so that patches apply to them)

TARGET is MODULE:FUNCTION or MODULE:Class.method. `zoo` as the bench command builds only the
mini data and backbones (arguments: workdir, train scenes, val scenes, epochs) and prints their
training records as JSON.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
import time
from pathlib import Path


def _resolve(target: str):
    module_name, path = target.split(":")
    owner = importlib.import_module(module_name)
    *parents, name = path.split(".")  # a function, or Class.method
    for attr in parents:
        owner = getattr(owner, attr)
    return owner, name, getattr(owner, name)


def barrier_before(target: str, folder: str, parties: int) -> None:
    import os

    owner, name, real = _resolve(target)

    @functools.wraps(real)
    def wrapper(*args, **kwargs):
        Path(folder).mkdir(parents=True, exist_ok=True)
        Path(folder, str(os.getpid())).touch()
        deadline = time.time() + 120
        while len(list(Path(folder).iterdir())) < parties:
            if time.time() > deadline:
                raise RuntimeError(f"barrier {folder}: the other processes never came")
            time.sleep(0.01)
        return real(*args, **kwargs)

    setattr(owner, name, wrapper)


def block_after(target: str, count: int) -> None:
    owner, name, real = _resolve(target)
    calls = [0]

    @functools.wraps(real)
    def wrapper(*args, **kwargs):
        out = real(*args, **kwargs)
        calls[0] += 1
        if calls[0] == count:
            print("INTERRUPT POINT", flush=True)
            while True:
                time.sleep(1)
        return out

    setattr(owner, name, wrapper)


def serial_zoo() -> None:
    import bench.demo as demo
    import bench.mini.build as build

    real = build.ensure_zoo
    build.ensure_zoo = demo.ensure_zoo = lambda *args, **kwargs: real(*args, **{**kwargs, "parallel": 1})


def zoo(workdir: str, train: str, val: str, epochs: str) -> None:
    from bench.mini.build import MiniSpec, ensure_data, ensure_zoo

    spec = MiniSpec(seed=0, train=int(train), val=int(val), epochs=int(epochs))
    infos = ensure_zoo(ensure_data(Path(workdir), spec), Path(workdir), spec, progress=False, parallel=1)
    print(json.dumps(infos))


if __name__ == "__main__":
    import signal

    # Ctrl-C as in a terminal, even when the test runner was started in the background (a shell
    # starts background jobs with SIGINT ignored, and Python then installs no handler of its own)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    split = sys.argv.index("--")
    opts, argv = sys.argv[1:split], sys.argv[split + 1:]
    while opts:
        opt = opts.pop(0)
        if opt == "--serial-zoo":
            serial_zoo()
        elif opt == "--block":
            block_after(opts.pop(0), int(opts.pop(0)))
        elif opt == "--barrier":
            barrier_before(opts.pop(0), opts.pop(0), int(opts.pop(0)))
        else:
            raise SystemExit(f"unknown option {opt}")
    if argv[0] == "zoo":
        zoo(*argv[1:])
    else:
        from bench.cli import main

        sys.exit(main(argv))


def run_to_point(argv: list[str], point: str, count: int = 1, options: tuple[str, ...] = (), env: dict | None = None, cwd: Path | None = None):
    """Start bench under this script and return the process once it blocks at the point (its
    stdout read up to "INTERRUPT POINT"); fails with its stderr if it ends first."""
    import subprocess

    proc = subprocess.Popen([sys.executable, str(Path(__file__)), "--block", point, str(count), *options, "--", *map(str, argv)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    for line in proc.stdout:
        if line.strip() == "INTERRUPT POINT":
            return proc
    proc.wait()
    raise AssertionError(f"the run ended (exit {proc.returncode}) before the interrupt point {point}: {proc.stderr.read()[-2000:]}")
