"""`bench demo`: the embedded mini benchmark, end to end, offline.

Builds (or reuses) the mini datasets and the four mini backbones (baseline, Mixup, Cutout,
CutMix), runs every task that has a mini variant through the normal runner and results store,
and writes the comparison table, like the paper's transfer table, to reports/demo/.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.mini.build import MiniSpec, ensure_data, ensure_zoo, require_writable
from bench.mini.recipes import RECIPES
from bench.paths import cache_dir, shown
from bench.progress import duration

# Planned seconds per phase of a cold demo on a 2-core CPU, printed beside what each took. The
# whole demo must stay within 600 s; robustness (imagenet_fgsm, imagenet_c; ECE comes with
# imagenet_cls) has at most 40 s, OOD detection (imagenet_ood) 20. Faster R-CNN (voc_det_frcnn) is too slow for the budget on a CPU and has
# a mini variant for `bench run --mini` only.
BUDGET = {"data": 15, "training": 200, "imagenet_cls": 10, "cub_loc": 65, "imagenet_loc": 65, "voc_det_ssd": 150, "coco_cap": 60, "imagenet_fgsm": 10, "imagenet_c": 25,
          "imagenet_ood": 20, "report": 30}
TOTAL_BUDGET = 600


def comparison_table(records: list[dict[str, Any]]) -> str:
    """One row per recipe, one column per task's headline metric (declared in its MetricSpecs and
    kept in the records), signed difference to the baseline: bench report's table model."""
    from bench.report.markdown import grid
    from bench.report.model import HEADLINE, build

    return grid(build(records, HEADLINE, baseline="mini_baseline"))


def html_report(records: list[dict[str, Any]], results: Path, data: Path, output: Path) -> tuple[Path, bool]:
    """reports/demo/index.html: bench report's HTML page of the mini benchmark (every table, the
    CAM grids, the robustness and OOD figures, per-image drill-downs, provenance)."""
    import hashlib

    from bench.report import build
    from bench.store import ResultsStore
    from bench.task import DataLocator

    # a warm demo with the same runs and the same code behind the page (tables, figures, statistics) keeps the page it wrote
    root = Path(build.__file__).parents[1]
    code = sorted(p for folder in ("report", "checks", "stats") for p in (root / folder).rglob("*") if p.suffix in (".py", ".j2"))
    code += [root / "tables.py", root / "figures.py"]
    key = hashlib.sha256("\n".join(sorted(r["run_id"] for r in records) + [hashlib.sha256(p.read_bytes()).hexdigest() for p in code]).encode()).hexdigest()
    stamp = output / ".index.html.key"
    if (output / "index.html").is_file() and stamp.is_file() and stamp.read_text() == key:
        return output / "index.html", False
    tables = build.select(records, "all", "mini_baseline")
    store = ResultsStore.open(results, write=False)
    try:
        text, _ = build.render(tables, "html", False, results, store.by_run_ids, DataLocator(str(data)))
    finally:
        store.close()
    page = build.write(text, output / "index.html")
    stamp.write_text(key)
    return page, True


class Stages:
    """One line on stderr as each stage of the demo starts and ends: what, how long it took, and
    an estimate of what is left (the plan of the stages to come, scaled by how the done ones went)."""

    def __init__(self, plan: dict[str, float], log: bool):
        self.plan, self.log = plan, log
        self.took: dict[str, float] = {}
        self.started = 0.0

    def _say(self, text: str) -> None:
        if self.log:
            print(f"bench demo: {text}", file=sys.stderr, flush=True)

    def left(self, after: str) -> float:
        names = list(self.plan)
        done_plan = sum(self.plan[n] for n in self.took)
        pace = min(max(sum(self.took.values()) / done_plan, 0.05), 10.0) if done_plan else 1.0
        return pace * sum(self.plan[n] for n in names[names.index(after) + 1:])

    def start(self, name: str, what: str) -> None:
        k = list(self.plan).index(name) + 1
        self.started = time.perf_counter()
        self._say(f"[{k}/{len(self.plan)}] {name}: {what} (plan {self.plan[name]:.0f} s) ...")

    def end(self, name: str, note: str = "") -> None:
        k = list(self.plan).index(name) + 1
        self.took[name] = time.perf_counter() - self.started
        rest = f"; ~{duration(self.left(name))} left" if k < len(self.plan) else ""
        self._say(f"[{k}/{len(self.plan)}] {name}: done in {duration(self.took[name])}{f' ({note})' if note else ''}{rest}")


def next_steps(workdir: Path, data_root: Path, output: Path) -> str:
    """The demo's folders and commands to paste next (every one works as printed)."""
    results, data = shown(workdir / "results"), shown(data_root)
    return "\n".join([
        f"results: {results}   (the results store: bench list results --results {results})",
        f"data:    {data}   (the mini data sets, in the real layouts)",
        f"report:  {shown(output / 'index.html')}   (every table, figures and provenance; open it in a browser)",
        "next:",
        f"  bench report --results {results} --backbones 'mini_*'",
        f"  bench report --results {results} --table transfer --format latex",
        f"  bench report --results {results} --figure robustness --backbones 'mini_*' --output {output}/robustness.png",
        f"  bench report --results {results} --figure ood --backbones 'mini_*' --tasks imagenet_ood --output {output}/ood.png",
        f"  bench report --results {results} --figure cam --backbones 'mini_*' --tasks cub_loc --data-root {data} --output {output}/cam_cub.png",
        f"  bench run --backbone mini_cutmix --task imagenet_cls --mini --data-root {data} --results {results}",
    ])


def run_demo(workdir: Path | None, output: Path, progress: bool = True, spec: MiniSpec | None = None, settings: dict[str, dict[str, Any]] | None = None,
             log: bool = True) -> int:
    """`settings` adds per-task settings on top of the mini ones (tests shorten trainings with it).
    stdout gets the comparison table, the folders and the next commands; stderr a line per stage."""
    from bench.runner import RunOptions, run_grid
    from bench.tables import run_table
    from bench.task import DataLocator
    from tasks import TASKS

    spec = spec or MiniSpec()
    workdir = workdir or cache_dir() / "mini"
    require_writable(workdir, "demo folder")
    entries = [e for e in TASKS.entries() if e.mini is not None and e.demo]
    stages = Stages({"data": BUDGET["data"], "training": BUDGET["training"], **{e.name: BUDGET.get(e.name, 30) for e in entries}, "report": BUDGET["report"]}, log)
    stages.start("data", f"mini data sets ({spec.train} train, {spec.val} val scenes, seed {spec.seed})")
    fresh = not (workdir / "data" / spec.data_key() / ".complete").is_file()
    data_root = ensure_data(workdir, spec)
    current = point_current(data_root)
    stages.end("data", "built" if fresh else "cached")
    stages.start("training", f"the four mini backbones ({spec.epochs} epochs each, two at a time)")
    zoo = ensure_zoo(data_root, workdir, spec, progress)
    trained = [r for r, info in zoo.items() if info.get("fresh")]
    stages.end("training", ", ".join(f"{r} {info['seconds']:.0f} s" for r, info in zoo.items() if r in trained and "seconds" in info) if trained else "cached")
    backbones = ",".join(f"mini_{r}" for r in RECIPES)
    outcomes, records = [], []
    for entry in entries:
        stages.start(entry.name, entry.description.split(":")[0].split("(")[0].strip() + f", {len(RECIPES)} backbones")
        opts = RunOptions(data=DataLocator(str(data_root)), results=workdir / "results", workers=0, batch_size=100,
                          seed=spec.seed, progress=progress, overrides={**entry.mini, **(settings or {}).get(entry.name, {})})
        cells = run_grid(backbones, entry.name, opts)
        outcomes += cells
        records += [c.record for c in cells if c.record is not None]
        states = sorted({"failed" if c.error else "cached" if c.cached else "new" for c in cells})
        stages.end(entry.name, f"{len(cells)} cells, " + "/".join(states))
    table = comparison_table(records)
    output.mkdir(parents=True, exist_ok=True)
    (output / "README.md").write_text(
        "# bench demo: the mini benchmark\n\n"
        "What it is: handwritten digits (scikit-learn's bundled set, real handwriting) placed on cluttered "
        f"64x64 canvases, {spec.train} train and {spec.val} val scenes (seed {spec.seed}), written in the real "
        "dataset layouts, and a 0.3M-parameter ResNet with torchvision's module names trained four ways "
        f"(baseline, Mixup, Cutout, CutMix; {spec.epochs} epochs each, final epoch kept) on a CPU. Every number "
        "comes from the same readers, loaders, tasks and results store as real runs.\n\n"
        "What it is not: a reproduction of the paper's numbers. The scenes are small and simple, the "
        "training is short, and differences between recipes of a few tenths of a point are within noise.\n\n"
        + table + "\n\n(difference to mini_baseline in parentheses)\n\n"
        "## Every metric of every cell\n\n'new': computed by the demo run that wrote this file; 'cached': taken from the results store.\n\n"
        + run_table(outcomes) + "\n\n## Where things are\n\n```\n" + next_steps(workdir, current, output) + "\n```\n"
    )
    stages.start("report", "the HTML report: every table, CAM grids, figures")
    page, fresh = html_report(records, workdir / "results", current, output)
    stages.end("report", f"{page}" + ("" if fresh else " (cached: the same runs)"))
    failed = [o for o in outcomes if o.error]
    print(table + "\n\n(difference to mini_baseline in parentheses; every metric of every cell: " + f"{output / 'README.md'})")
    for o in failed:
        print(f"bench: error: {o.backbone} x {o.task}: {o.error}", file=sys.stderr)
    print("\n" + next_steps(workdir, current, output))
    total = sum(stages.took.values())
    print(f"time: {total:.0f} s of the {TOTAL_BUDGET} s budget (" + ", ".join(f"{k} {v:.0f} s" for k, v in stages.took.items()) + ")", file=sys.stderr)
    return 1 if failed else 0


def point_current(data_root: Path) -> Path:
    """<workdir>/data/current -> the data folder this demo used (a stable path for the README's
    commands), replaced atomically; returns the link."""
    link = data_root.parent / "current"
    tmp = data_root.parent / f".current-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(data_root.name, tmp)
    os.replace(tmp, link)
    return link
