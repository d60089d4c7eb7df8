"""Progress of a training stage: its size before the first step, a time estimate after the first
steps, and (when stderr is no terminal, e.g. a batch job's log) a line at a steady interval.

A stage that would take seven hours says so in its first minute, bar or no bar.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

ESTIMATE_AFTER = 5  # steps timed before the estimate (the first step also pays for start-up)


def interval_s() -> float:
    """Seconds between progress lines without a terminal (BENCH_PROGRESS_INTERVAL, default 60)."""
    try:
        return max(0.0, float(os.environ.get("BENCH_PROGRESS_INTERVAL", "60")))
    except ValueError:
        return 60.0


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class StageProgress:
    """Thin lifecycle wrapper: announce, update per step, close.

    bar: a tqdm bar (a terminal); log: the announcement, the estimate and, without a bar, steady
    lines on stderr (off with --quiet and on ranks other than 0)."""

    def __init__(self, what: str, total: int, done: int, unit: str, size: str, bar: bool, log: bool):
        from tqdm import tqdm

        self.what, self.total, self.done, self.unit, self.log = what, total, done, unit, log
        self.start_done = done
        self.bar = tqdm(total=total, initial=done, desc=what, unit=unit, leave=False) if bar else None
        self.started = self.last_line = time.perf_counter()
        self.estimated = False
        self.interval = interval_s()
        self._say(f"{what}: {size}" + (f"; resuming at {unit} {done}" if done else ""))

    def _say(self, text: str) -> None:
        if not self.log:
            return
        if self.bar is not None:
            self.bar.write(f"bench: {text}", file=sys.stderr)
        else:
            print(f"bench: {text}", file=sys.stderr, flush=True)

    def update(self, **postfix: Any) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            if postfix:
                self.bar.set_postfix(**postfix)
        now = time.perf_counter()
        steps = self.done - self.start_done
        if not self.estimated and (steps >= ESTIMATE_AFTER or self.done == self.total):
            self.estimated = True
            per = (now - self.started) / steps
            self._say(f"{self.what}: ~{duration(per * (self.total - self.done))} left at {per:.2f} s/{self.unit} (timed over {steps} {self.unit}s)")
            self.last_line = now
        elif self.estimated and self.bar is None and now - self.last_line >= self.interval and self.done < self.total:
            self.last_line = now
            per = (now - self.started) / steps
            extra = "".join(f", {k} {v}" for k, v in postfix.items())
            self._say(f"{self.what}: {self.unit} {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), "
                      f"{duration(now - self.started)} elapsed, ~{duration(per * (self.total - self.done))} left{extra}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.done > self.start_done:
            self._say(f"{self.what}: done, {self.done - self.start_done} {self.unit}s in {duration(time.perf_counter() - self.started)}")
